"""optimizers: different optimizers, from one initialisation, end in different minima.

Im, Tao & Branson, "An Empirical Analysis of Deep Network Loss Surfaces" (2016). They train
networks (NIN, VGG, LSTM on MNIST, CIFAR-10 and others) with SGD, SGD with momentum, Adam,
RMSprop, Adadelta... from the same initial weights, and find that the training loss rises
between any two solutions on the straight line joining them (distinct minima), that switching
optimizer late in training still changes the minimum reached, and yet that the solutions' test
accuracies are close. They show 1-D interpolation paths and 2-D slices through three solutions.

Ours: scikit-learn's 8x8 digits (1347 train / 450 test, stratified) and a ReLU MLP
64-128-128-10, one net per optimizer, all from ONE shared initialisation and fed the same
mini-batches in the same order (batch 32, the same epochs for all, constant learning rates, no
regulariser): SGD (lr 0.1), SGD + momentum 0.9 (lr 0.01), Adam (lr 0.001), RMSprop (lr 0.001).
A fifth net trains with Adam for the first 75% of the epochs, then with SGD + momentum. We
measure the training loss (mean cross-entropy over the whole training set, nats) at evenly
spaced points of the straight path θ(α) = (1 − α) θ_a + α θ_b, α in [0, 1], for three pairs
(SGD–Adam, SGD+momentum–RMSprop, Adam–RMSprop) and for the switched net against the
Adam-only one; the barrier is the path's highest loss less the higher of its two ends. The
2-D slice is the training loss on a grid over the plane through the SGD, Adam and RMSprop
solutions (first seed). Figures are medians over seeds (each seed: its own initialisation and
batch order; one data split). Differences from the paper: a tiny MLP on tiny data instead of
large nets on images (one CPU core), four optimizers and one switch instead of a grid of them.
``data="breast-cancer"`` reruns it on scikit-learn's breast cancer set (569 samples, 30
features standardised with the training statistics, 2 classes, 25% stratified test split).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dip_cli.errors import InputError
from dip_cli.experiments.common import (
    Progress,
    Result,
    Timer,
    Verdict,
    prepare_out_dir,
    setup_device,
    write_csv,
    write_results,
)
from dip_cli.experiments.datasets import DATA_SETS, Split, load_data

HIDDEN = (128, 128)  # ReLU layers between the input and the class logits
BATCH = 32
# name: (label, torch.optim class, its settings): ordinary, untuned choices.
OPTIMIZERS = {
    "sgd": ("SGD", "SGD", {"lr": 0.1}),
    "momentum": ("SGD+momentum", "SGD", {"lr": 0.01, "momentum": 0.9}),
    "adam": ("Adam", "Adam", {"lr": 1e-3}),
    "rmsprop": ("RMSprop", "RMSprop", {"lr": 1e-3}),
}
SWITCHED = "adam>momentum"  # Adam for the first SWITCH_AT of the epochs, then SGD+momentum
SWITCH = ("adam", "momentum")
SWITCH_AT = 0.75
SOLUTIONS = (*OPTIMIZERS, SWITCHED)
PAIRS = (("sgd", "adam"), ("momentum", "rmsprop"), ("adam", "rmsprop"))
SWITCH_PAIR = (SWITCHED, "adam")  # the switched net against the one that kept Adam
PLANE = ("sgd", "adam", "rmsprop")  # the three solutions the 2-D slice passes through
PLANE_MARGIN = 0.3  # the slice reaches this fraction of its span beyond the solutions
# Thresholds, fixed from the paper's claims before any run:
BARRIER = 0.1  # nats: the loss on the straight path rises this much above the higher end
# (distinct minima; the paper sees barriers between every pair of optimizers)
MOST_PAIRS = 2  # ... for at least this many of the three pairs checked
SWITCH_BARRIER = 0.1  # nats: switching at 75% still ends in another basin (the paper's switches)
ACCURACY_SPREAD = 2.0  # points: the solutions' test accuracies are close (max − min)
COLUMNS = ("seed", "path", "alpha", "train_loss", "train_accuracy")
SLICE_COLUMNS = ("x", "y", "train_loss")


@dataclass
class Config:
    epochs: int = 100  # the same for every optimizer; the switch comes after 75 of them
    seeds: int = 5
    points: int = 41  # points α on each straight path, ends included
    grid: int = 25  # the 2-D slice is grid x grid points
    data: str = "digits"  # or "breast-cancer"
    seed: int = 0  # seeds used: seed, seed + 1, ...; the data split uses seed
    out: Path = Path("experiments/optimizers")
    device: str = "cpu"  # tiny nets: the GPU's launch overhead would dominate
    threads: int | None = 1


QUICK = {"epochs": 4, "seeds": 1, "points": 11, "grid": 7}


@dataclass
class Measured:
    """Per seed (lists in seed order): each path's barrier and each solution's figures."""

    barrier: dict[str, list[float]]  # path name -> nats
    distance: dict[str, list[float]]  # path name -> ||θ_a − θ_b||
    train_loss: dict[str, list[float]]  # solution -> nats
    test_accuracy: dict[str, list[float]]  # solution -> %


def path_name(a: str, b: str) -> str:
    return f"{a} vs {b}"


def run(cfg: Config, progress: Progress | None = None) -> Result:
    _check(cfg)
    timer = Timer()
    out = prepare_out_dir(cfg.out)
    device = setup_device(cfg.device, cfg.threads, 0)
    data = load_data(cfg.data, cfg.seed)
    sizes = layer_sizes(data)
    steps = cfg.seeds * (cfg.epochs + 1) + 1
    report = _Counter(progress, steps)
    measured = Measured({}, {}, {}, {})
    rows: list[dict] = []
    plane_points = None
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        solutions = train(data, sizes, seed, cfg.epochs, device, report)
        rows += _measure(solutions, data, sizes, seed, cfg.points, measured)
        if plane_points is None:
            plane_points = solutions
        report.step("interpolating")
    report.step("2-D slice", 0)
    x, y = _tensors(data.x_train, data.y_train, device)
    grid = plane_slice(*(plane_points[name] for name in PLANE), x, y, sizes, cfg.grid)
    report.step("done")
    figures, verdicts = judge(measured)
    result = Result("optimizers", _settings(cfg), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "paths.csv", rows, COLUMNS)
    result.paths["slice"] = write_csv(out / "slice.csv", _slice_rows(grid), SLICE_COLUMNS)
    first = [r for r in rows if r["seed"] == cfg.seed]
    result.paths["plot"] = plot(out / "optimizers.png", first, grid, cfg.data)
    write_results(out, result, str(device))
    return result


def _check(cfg: Config) -> None:
    if cfg.data not in DATA_SETS:
        raise InputError(f"--data must be one of {', '.join(DATA_SETS)}, got {cfg.data!r}")
    if cfg.epochs < 4 or cfg.seeds < 1:
        raise InputError(
            f"--epochs must be >= 4 (the switch comes after 75% of them) and --seeds >= 1, "
            f"got {cfg.epochs} and {cfg.seeds}"
        )
    if cfg.points < 3 or cfg.grid < 3:
        raise InputError(f"--points and --grid must be >= 3, got {cfg.points} and {cfg.grid}")


class _Counter:
    """Calls ``progress`` with a running count of the steps done."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def step(self, label: str, count: int = 1) -> None:
        self.done += count
        if self.progress:
            self.progress(label, self.done, self.total)


# --- data ------------------------------------------------------------------------------------


def layer_sizes(data: Split) -> tuple[int, ...]:
    return (data.x_train.shape[1], *HIDDEN, int(data.y_train.max()) + 1)


def _tensors(x: np.ndarray, y: np.ndarray, device):
    import torch

    return torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)


# --- nets as flat weight vectors -------------------------------------------------------------


def init_weights(sizes: tuple[int, ...], seed: int):
    """One net's initial weights (torch.nn.Linear's default init), flattened: layer by layer,
    the (in, out) weight matrix then the bias."""
    import torch

    torch.manual_seed(seed)
    layers = [torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes)]
    return torch.cat([t.detach().reshape(-1) for m in layers for t in (m.weight.T, m.bias)])


def unflatten(vectors, sizes: tuple[int, ...]) -> list:
    """(K, P) flat weights -> [W1 (K, in, out), b1 (K, out), W2, b2, ...] (views)."""
    tensors, start = [], 0
    for a, b in itertools.pairwise(sizes):
        tensors.append(vectors[:, start : start + a * b].reshape(-1, a, b))
        tensors.append(vectors[:, start + a * b : start + a * b + b])
        start += a * b + b
    return tensors


def forward(tensors: list, x):
    """Logits (K, B, classes) of K nets on the same inputs x (B, features)."""
    import torch

    h = x
    for i in range(0, len(tensors), 2):
        h = torch.baddbmm(tensors[i + 1].unsqueeze(1), h.expand(len(tensors[i]), *h.shape[-2:]), tensors[i])
        if i + 2 < len(tensors):
            h = torch.relu(h)
    return h


def evaluate(vectors, x, y, sizes: tuple[int, ...]):
    """Mean cross-entropy (nats) and accuracy (%) of each of K flat nets on (x, y): two (K,)."""
    import torch

    chunk = max(1, 2**22 // (len(x) * max(sizes)))  # bounds the memory of one batched pass
    losses, accuracies = [], []
    with torch.no_grad():
        for part in vectors.split(chunk):
            logits = forward(unflatten(part, sizes), x)
            target = y.expand(len(part), -1)
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            losses.append(loss.mean(1))
            accuracies.append((logits.argmax(2) == target).float().mean(1) * 100)
    return torch.cat(losses), torch.cat(accuracies)


# --- training --------------------------------------------------------------------------------


def _optimizer(name: str, params: list):
    import torch

    _, kind, settings = OPTIMIZERS[name]
    return getattr(torch.optim, kind)(params, **settings)


def train(data: Split, sizes: tuple[int, ...], seed: int, epochs: int, device, report=None) -> dict:
    """Every solution in SOLUTIONS from one initialisation and one batch order: {name: flat (P,)}.

    The nets train side by side: one batched forward pass, each net's gradient from its own
    loss (the losses are summed, so they do not mix), each net stepped by its own optimizer.
    """
    import torch

    start = init_weights(sizes, seed).to(device)
    nets = {name: start.clone().requires_grad_() for name in SOLUTIONS}
    optimizers = {name: _optimizer(name, [nets[name]]) for name in OPTIMIZERS}
    optimizers[SWITCHED] = _optimizer(SWITCH[0], [nets[SWITCHED]])
    x, y = _tensors(data.x_train, data.y_train, device)
    order = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        if epoch == round(SWITCH_AT * epochs):
            optimizers[SWITCHED] = _optimizer(SWITCH[1], [nets[SWITCHED]])
        for batch in torch.randperm(len(y), generator=order).split(BATCH):
            logits = forward(unflatten(torch.stack(list(nets.values())), sizes), x[batch])
            target = y[batch].repeat(len(nets))
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target, reduction="sum")
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            (loss / len(batch)).backward()
            for optimizer in optimizers.values():
                optimizer.step()
        if report:
            report.step(f"seed {seed}: training")
    return {name: net.detach() for name, net in nets.items()}


# --- the loss surface ------------------------------------------------------------------------


def path_losses(a, b, x, y, sizes: tuple[int, ...], points: int):
    """α (points,), and the loss and accuracy (%) at θ(α) = (1 − α) a + α b on (x, y)."""
    import torch

    alphas = torch.linspace(0, 1, points, device=a.device)
    vectors = (1 - alphas)[:, None] * a + alphas[:, None] * b
    return (alphas, *evaluate(vectors, x, y, sizes))


def barrier(losses) -> float:
    """How far the path's loss rises above the higher of its two ends (0 if it never does)."""
    values = [float(v) for v in losses]
    return max(values) - max(values[0], values[-1])


def plane_slice(a, b, c, x, y, sizes: tuple[int, ...], grid: int) -> dict:
    """The loss on a grid x grid lattice over the plane through a, b and c.

    Orthonormal axes (b − a, then c − a less its part along b − a), so distances on the plot
    are distances between weights. Returns the axes' coordinates, the losses (grid, grid), and
    each of the three points' (x, y).
    """
    import torch

    u = b - a
    e1 = u / u.norm()
    v = c - a - ((c - a) @ e1) * e1
    e2 = v / v.norm()
    marks = [(0.0, 0.0), (float(u.norm()), 0.0), (float((c - a) @ e1), float((c - a) @ e2))]
    axes = []
    for values in zip(*marks, strict=True):
        low, high = min(values), max(values)
        pad = PLANE_MARGIN * (high - low)
        axes.append(torch.linspace(low - pad, high + pad, grid, device=a.device))
    gx, gy = torch.meshgrid(axes[0], axes[1], indexing="xy")
    vectors = a + gx.reshape(-1, 1) * e1 + gy.reshape(-1, 1) * e2
    losses, _ = evaluate(vectors, x, y, sizes)
    return {
        "x": axes[0].cpu().numpy(),
        "y": axes[1].cpu().numpy(),
        "loss": losses.reshape(grid, grid).cpu().numpy(),
        "marks": dict(zip(PLANE, marks, strict=True)),
    }


def _measure(solutions: dict, data: Split, sizes, seed: int, points: int, measured: Measured) -> list:
    """Each solution's figures and each path's barrier into ``measured``; the paths' CSV rows."""
    import torch

    x, y = _tensors(data.x_train, data.y_train, solutions["sgd"].device)
    x_test, y_test = _tensors(data.x_test, data.y_test, x.device)
    stacked = torch.stack([solutions[name] for name in SOLUTIONS])
    train_loss, _ = evaluate(stacked, x, y, sizes)
    _, test_accuracy = evaluate(stacked, x_test, y_test, sizes)
    for i, name in enumerate(SOLUTIONS):
        measured.train_loss.setdefault(name, []).append(float(train_loss[i]))
        measured.test_accuracy.setdefault(name, []).append(float(test_accuracy[i]))
    rows = []
    for a, b in (*PAIRS, SWITCH_PAIR):
        name = path_name(a, b)
        alphas, losses, accuracies = path_losses(solutions[a], solutions[b], x, y, sizes, points)
        measured.barrier.setdefault(name, []).append(barrier(losses))
        measured.distance.setdefault(name, []).append(float((solutions[a] - solutions[b]).norm()))
        rows += [
            {
                "seed": seed,
                "path": name,
                "alpha": float(t),
                "train_loss": float(v),
                "train_accuracy": float(c),
            }
            for t, v, c in zip(alphas, losses, accuracies, strict=True)
        ]
    return rows


# --- judging ---------------------------------------------------------------------------------


def judge(measured: Measured) -> tuple[dict[str, float], list[Verdict]]:
    """Figures (medians over seeds) and verdicts from the measured numbers alone."""
    median = statistics.median
    figures: dict[str, float] = {}
    for name in SOLUTIONS:
        figures[f"{_label(name)}: train loss (nats)"] = median(measured.train_loss[name])
        figures[f"{_label(name)}: test accuracy (%)"] = median(measured.test_accuracy[name])
    for a, b in (*PAIRS, SWITCH_PAIR):
        name = path_name(a, b)
        figures[f"{_label(a)} – {_label(b)}: barrier (nats)"] = median(measured.barrier[name])
        figures[f"{_label(a)} – {_label(b)}: distance ||θa − θb||"] = median(measured.distance[name])
    spreads = [
        max(values) - min(values)
        for values in zip(*(measured.test_accuracy[name] for name in SOLUTIONS), strict=True)
    ]
    figures["test accuracy spread, max − min (points)"] = median(spreads)
    pairs = sorted((median(measured.barrier[path_name(a, b)]) for a, b in PAIRS), reverse=True)
    verdicts = [
        Verdict(
            "different optimizers, different minima",
            f"the loss on the straight path rises >= {BARRIER:g} nats above the higher end "
            f"for >= {MOST_PAIRS} of the {len(PAIRS)} pairs",
            pairs[MOST_PAIRS - 1],
            ">=",
            BARRIER,
            " nats",
            f"the barrier of the pair ranked {MOST_PAIRS} of {len(PAIRS)}",
        ),
        Verdict(
            "a late switch still changes the minimum",
            f"{_label(SWITCH[0])} → {_label(SWITCH[1])} at {SWITCH_AT:.0%} of the epochs ends "
            f">= {SWITCH_BARRIER:g} nats of barrier away from {_label(SWITCH[0])} alone",
            median(measured.barrier[path_name(*SWITCH_PAIR)]),
            ">=",
            SWITCH_BARRIER,
            " nats",
        ),
        Verdict(
            "yet they generalise alike",
            f"all solutions' test accuracies within {ACCURACY_SPREAD:g} points (max − min)",
            median(spreads),
            "<=",
            ACCURACY_SPREAD,
            " pts",
            "median over seeds",
        ),
    ]
    return figures, verdicts


def _label(name: str) -> str:
    if name == SWITCHED:
        return f"{_label(SWITCH[0])}→{_label(SWITCH[1])}"
    return OPTIMIZERS[name][0]


def _slice_rows(grid: dict) -> list[dict]:
    return [
        {"x": float(gx), "y": float(gy), "train_loss": float(grid["loss"][j, i])}
        for j, gy in enumerate(grid["y"])
        for i, gx in enumerate(grid["x"])
    ]


def _settings(cfg: Config) -> dict:
    return {
        **cfg.__dict__,
        "layers": list(HIDDEN),
        "batch": BATCH,
        "optimizers": {name: {"torch": kind, **s} for name, (_, kind, s) in OPTIMIZERS.items()},
        "switch": f"{SWITCH[0]} then {SWITCH[1]} from {SWITCH_AT:.0%} of the epochs",
        "pairs": [path_name(a, b) for a, b in PAIRS],
        "plane": list(PLANE),
    }


# --- plot ------------------------------------------------------------------------------------


def plot(path: Path, rows: list[dict], grid: dict, data: str) -> Path:
    """Left: the training loss along each straight path. Right: the 2-D slice, log10 loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for a, b in (*PAIRS, SWITCH_PAIR):
        points = [r for r in rows if r["path"] == path_name(a, b)]
        style = "--" if (a, b) == SWITCH_PAIR else "-"
        label = f"{_label(a)} – {_label(b)}"
        left.plot([r["alpha"] for r in points], [r["train_loss"] for r in points], style, label=label)
    # Log scale, with the bar's size drawn: on a linear scale a rise of 0.001 nats looks like a wall.
    left.axhline(BARRIER, color="grey", ls=":", label=f"{BARRIER:g} nats: the size of the bar")
    left.set(xlabel="α  (θ = (1 − α) θa + α θb)", ylabel="training loss (nats)", yscale="log")
    left.set_title(f"Straight paths between solutions ({data}, first seed)", fontsize=9)
    left.legend(fontsize=7)
    levels = np.log10(np.maximum(grid["loss"], 1e-6))
    shown = right.contourf(grid["x"], grid["y"], levels, levels=20, cmap="viridis")
    fig.colorbar(shown, ax=right, label="log10 training loss")
    for name, (mx, my) in grid["marks"].items():
        right.plot(mx, my, "o", color="white", mec="black")
        right.annotate(
            _label(name), (mx, my), textcoords="offset points", xytext=(5, 5), color="white", fontsize=8
        )
    right.set(xlabel="weights along θb − θa", ylabel="orthogonal, towards θc")
    right.set_title("Training loss on the plane through three solutions (first seed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
