"""information-plane: do hidden layers compress? Tanh layers do; ReLU layers need not.

Shwartz-Ziv & Tishby, "Opening the Black Box of Deep Neural Networks via Information" (2017),
and Saxe, Bansal, Dapello, Advani, Kolchinsky, Tracey & Cox, "On the Information Bottleneck
Theory of Deep Learning" (ICLR 2018). Their net: a narrowing MLP 12-10-7-5-4-3-2 with tanh
units on all 4096 12-bit binary inputs and a binary label, trained for thousands of epochs;
each layer's activations T binned into 30 equal bins, X uniform over the inputs so
I(X;T) = H(T), and I(T;Y) = H(T) - H(T|Y). Shwartz-Ziv & Tishby: each layer's I(X;T) first
rises (fitting), then falls (compression) while I(T;Y) keeps rising. Saxe et al.: with ReLU
units (binned over [0, the layer's largest activation over all recorded epochs]) the
compression does not appear, and the ReLU net generalises as well.

Ours. Their 12-bit data set is not shipped offline, so we build one of the same kind: all
4096 inputs x in {-1, +1}^12; bit i puts a charge x_i at a fixed random point u_i of the unit
sphere (seed ``LABEL_SEED``, whatever ``--seed``); the label is 1 when the squared norm of the
total dipole |sum_i x_i u_i|^2 exceeds its median. Like theirs, the label is a spherically
symmetric (rotation-invariant) function of the configuration, thresholded so the classes
balance (exactly 2048 / 2048: the function is even in x). No label noise. 80% of the inputs
train (3277, the default of Shwartz-Ziv & Tishby's code), 20% test (819), split by ``--seed``.
The optimiser is Adam, lr 0.0004, batch 256: the papers speak of SGD, but both groups' released
code (ravidziv/IDNNs, artemyk/ibsgd) trains with Adam at these settings, and it fits this task
in hundreds of epochs, so a run takes minutes on one core. Hidden weights are truncated normal
with std 1/sqrt(layer width), zero biases, softmax output (Saxe et al.'s code). Epochs default
to 5000 rather than their 10000, for time (compression showed within 1000 in our pilots). The
tanh and ReLU nets share each seed's initial weights and batch order, and are trained stacked
(``bmm``). The information is measured at ``snapshots`` log-spaced epochs (and at the start)
on all the inputs, train and test (their code's "full MI"). ReLU layers are binned as Saxe et
al. did, over [0, that net's largest activation in the layer over all recorded epochs].
``data="digits"``: scikit-learn's 8x8 digits (1347 train / 450 test), pixels scaled to
[-1, 1], a net of the same kind 64-32-24-16-12-8-10, information over all 1797 images (at most
log2 1797 = 10.8 bits; H(Y) = 3.3 bits).
"""

from __future__ import annotations

import itertools
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
from dip_cli.experiments.datasets import load_digits

DATA = ("bits12", "digits")
ACTIVATIONS = ("tanh", "relu")
HIDDEN = {"bits12": (10, 7, 5, 4, 3), "digits": (32, 24, 16, 12, 8)}
BITS = 12
LABEL_SEED = 2017  # the bits12 labelling rule is fixed, as the paper's data set was
TRAIN_FRACTION = 0.8
BINS = 30
LR, BATCH = 4e-4, 256
# Shwartz-Ziv & Tishby: with tanh the layers compress; the last hidden layer's I(X;T) ends
# at least this far (%) below its peak.
TANH_COMPRESSION = 10.0
# Saxe et al.: with ReLU no compression phase; the last hidden layer ends at most this far below.
RELU_COMPRESSION = 5.0
# Saxe et al.: the ReLU net generalises as well: its test accuracy at most this many points lower.
ACCURACY_SLACK = 2.0
COLUMNS = ("activation", "seed", "epoch", "layer", "width", "i_xt", "i_ty", "train_accuracy", "test_accuracy")


@dataclass
class Config:
    data: str = "bits12"
    epochs: int = 5000
    snapshots: int = 80  # log-spaced epochs at which I(X;T) and I(T;Y) are measured (+ the start)
    seeds: int = 3  # nets per activation; figures are medians over them
    seed: int = 0  # seeds used: seed, seed + 1, ...; the split uses seed
    out: Path = Path("experiments/information-plane")
    device: str = "cpu"  # tiny nets: the GPU's launch overhead would dominate
    threads: int | None = 1


QUICK = {"epochs": 12, "snapshots": 5, "seeds": 1}


@dataclass
class Task:
    x: np.ndarray  # (n, d) float32: every input, train and test (the information is over all)
    y: np.ndarray  # (n,) int64 labels
    train: np.ndarray  # (n,) bool: in the training split
    classes: int


@dataclass
class Summary:
    """One trained net: per hidden layer, I(X;T) at the start, its peak and the end; final accuracies."""

    activation: str
    seed: int
    i_xt_start: tuple[float, ...]
    i_xt_peak: tuple[float, ...]
    peak_epoch: tuple[int, ...]
    i_xt_end: tuple[float, ...]
    i_ty_end: tuple[float, ...]
    train_accuracy: float  # %
    test_accuracy: float  # %


def run(cfg: Config, progress: Progress | None = None) -> Result:
    _check(cfg)
    timer = Timer()
    out = prepare_out_dir(cfg.out)
    device = setup_device(cfg.device, cfg.threads, 0)
    task = make_task(cfg.data, cfg.seed)
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    epochs = snapshot_epochs(cfg.epochs, cfg.snapshots)
    history = train(task, HIDDEN[cfg.data], seeds, epochs, device, progress)
    rows = information(task, history, seeds, device, progress)
    summaries = summarise(rows, seeds)
    figures, verdicts = judge(summaries)
    result = Result("information-plane", _settings(cfg), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "information.csv", rows, COLUMNS)
    chosen = [r for r in rows if r["seed"] == cfg.seed]
    result.paths["plot"] = plot(out / "information-plane.png", chosen, task, cfg)
    write_results(out, result, str(device))
    return result


def _check(cfg: Config) -> None:
    if cfg.data not in DATA:
        raise InputError(f"--data must be one of {', '.join(DATA)}, got {cfg.data!r}")
    if cfg.epochs < 1 or cfg.seeds < 1:
        raise InputError(f"--epochs and --seeds must be >= 1, got {cfg.epochs} and {cfg.seeds}")
    if cfg.snapshots < 2:
        raise InputError(f"--snapshots must be >= 2, got {cfg.snapshots}")


# --- data ------------------------------------------------------------------------------------


def make_task(data: str, seed: int) -> Task:
    if data == "bits12":
        return bits12(seed)
    digits = load_digits(seed)
    x = np.concatenate([digits.x_train, digits.x_test]) * 2 - 1  # [-1, 1], as the bits
    y = np.concatenate([digits.y_train, digits.y_test])
    train = np.arange(len(y)) < len(digits.y_train)
    return Task(x.astype(np.float32), y, train, 10)


def bits12(seed: int) -> Task:
    """All 4096 inputs in {-1, 1}^12, labelled by a fixed rotation-invariant rule, split 80/20 by seed."""
    x = 1 - 2 * ((np.arange(2**BITS)[:, None] >> np.arange(BITS)) & 1)
    points = np.random.default_rng(LABEL_SEED).normal(size=(BITS, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)  # 12 points on the unit sphere
    dipole = np.sum((x @ points) ** 2, axis=1)
    y = (dipole > np.median(dipole)).astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    train = np.zeros(len(y), bool)
    train[order[: round(TRAIN_FRACTION * len(y))]] = True
    return Task(x.astype(np.float32), y, train, 2)


def snapshot_epochs(epochs: int, snapshots: int) -> list[int]:
    """0 (the initial weights), then ``snapshots`` log-spaced epochs to ``epochs`` (fewer if any coincide)."""
    spaced = np.unique(np.round(np.geomspace(1, epochs, snapshots)).astype(int))
    return [0, *spaced.tolist()]


# --- the nets --------------------------------------------------------------------------------


def init_params(widths: tuple[int, ...], seeds: list[int]):
    """Stacked weights for len(ACTIVATIONS) x len(seeds) nets: each seed's draw is shared by both activations.

    Hidden weights: truncated normal, std 1/sqrt(width) (Saxe et al.'s code); output: Glorot uniform.
    """
    import torch

    per_seed = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        layers = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            w = torch.empty(fan_in, fan_out)
            if i < len(widths) - 2:
                std = fan_out**-0.5
                torch.nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=g)
            else:
                torch.nn.init.xavier_uniform_(w, generator=g)
            layers.append((w, torch.zeros(1, fan_out)))
        per_seed.append(layers)
    stacked = []
    for layer in zip(*per_seed, strict=True):
        w = torch.stack([w for w, _ in layer] * len(ACTIVATIONS))
        b = torch.stack([b for _, b in layer] * len(ACTIVATIONS))
        stacked += [w, b]
    return stacked


def forward(params, x, nets_per_activation: int):
    """(hidden activations per layer, logits) of the stacked nets: the first group tanh, then ReLU."""
    import torch

    h = x
    hidden = []
    for i in range(0, len(params) - 2, 2):
        z = torch.baddbmm(params[i + 1], h, params[i])
        tanh, relu = z.split(nets_per_activation)
        h = torch.cat([torch.tanh(tanh), torch.relu(relu)])
        hidden.append(h)
    return hidden, torch.baddbmm(params[-1], h, params[-2])


def accuracy(params, x, y, nets_per_activation: int) -> np.ndarray:
    """% correct of each stacked net on (x, y)."""
    import torch

    with torch.no_grad():
        _, logits = forward(params, x.expand(len(params[0]), -1, -1), nets_per_activation)
        return ((logits.argmax(-1) == y).float().mean(1) * 100).cpu().numpy()


def train(task: Task, hidden: tuple[int, ...], seeds: list[int], epochs: list[int], device, progress):
    """Adam on the stacked nets; returns {epoch: (weights, train %, test %)} at the snapshot epochs."""
    import torch

    n = len(seeds)
    params = [
        p.to(device).requires_grad_() for p in init_params((task.x.shape[1], *hidden, task.classes), seeds)
    ]
    optimizer = _adam(params)
    x, y = torch.as_tensor(task.x, device=device), torch.as_tensor(task.y, device=device)
    x_train, y_train = x[task.train], y[task.train]
    x_test, y_test = x[~task.train], y[~task.train]
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    history = {}
    for epoch in range(epochs[-1] + 1):
        if epoch:
            order = torch.stack([torch.randperm(len(y_train), generator=g) for g in orders])
            for batch in order.repeat(len(ACTIVATIONS), 1).split(BATCH, dim=1):
                flat = batch.flatten().to(device)  # index_select: much cheaper than fancy indexing here
                _, logits = forward(params, x_train.index_select(0, flat).view(*batch.shape, -1), n)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y_train.index_select(0, flat))
                optimizer.zero_grad(set_to_none=True)
                (loss * len(logits)).backward()  # each net's own mean loss: the nets stay independent
                optimizer.step()
        if epoch in epochs:
            weights = [p.detach().clone() for p in params]
            history[epoch] = (
                weights,
                accuracy(weights, x_train, y_train, n),
                accuracy(weights, x_test, y_test, n),
            )
        if progress and (epoch % 50 == 0 or epoch == epochs[-1]):
            progress("training (tanh and ReLU nets together)", epoch, epochs[-1])
    return history


def _adam(params):
    """Adam, fused where this torch can (CPU since torch 2.4: a quarter faster on these tiny nets)."""
    import torch

    try:
        return torch.optim.Adam(params, lr=LR, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=LR, foreach=True)


# --- information -----------------------------------------------------------------------------


def bin_activations(t: np.ndarray, low: float, high: float, bins: int = BINS) -> np.ndarray:
    """Each value's bin among ``bins`` equal bins over [low, high] (``high`` itself in the last)."""
    if high <= low:
        return np.zeros(t.shape, np.int64)
    index = np.floor((t - low) / (high - low) * bins).astype(np.int64)
    return np.clip(index, 0, bins - 1)


def entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float((p * np.log2(1 / p)).sum())  # not -sum(p log p): one bin would give -0.0


def mutual_information(codes: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in bits for binned T, one row per input, X uniform over the rows.

    T is a function of X, so I(X;T) = H(T); I(T;Y) = H(T) + H(Y) - H(T,Y) = H(T) - H(T|Y).
    """
    _, t = np.unique(codes.reshape(len(codes), -1), axis=0, return_inverse=True)
    t = t.ravel()
    h_t = entropy_bits(np.bincount(t))
    h_y = entropy_bits(np.bincount(labels))
    h_ty = entropy_bits(np.bincount(t * (labels.max() + 1) + labels))
    return h_t, h_t + h_y - h_ty


def information(task: Task, history: dict, seeds: list[int], device, progress) -> list[dict]:
    """One row per (net, snapshot, hidden layer): I(X;T), I(T;Y) over all inputs, and the accuracies."""
    import torch

    n = len(seeds)
    x = torch.as_tensor(task.x, device=device)

    def hidden_at(epoch: int) -> list:
        weights = history[epoch][0]
        with torch.no_grad():
            return [h.cpu() for h in forward(weights, x.expand(len(weights[0]), -1, -1), n)[0]]

    # ReLU layers are binned over [0, their largest activation over all recorded epochs] (Saxe et al.):
    # one pass for the largest, one to bin (cheaper than holding every epoch's activations).
    tops = np.max([[h.amax(dim=(1, 2)).numpy() for h in hidden_at(e)] for e in history], axis=0)
    rows = []
    for done, epoch in enumerate(history):
        hidden = hidden_at(epoch)
        _, train_acc, test_acc = history[epoch]
        for net in range(len(ACTIVATIONS) * n):
            activation = ACTIVATIONS[net // n]
            for layer, h in enumerate(hidden):
                low, high = (-1.0, 1.0) if activation == "tanh" else (0.0, float(tops[layer, net]))
                i_xt, i_ty = mutual_information(bin_activations(h[net].numpy(), low, high), task.y)
                rows.append(
                    {
                        "activation": activation,
                        "seed": seeds[net % n],
                        "epoch": epoch,
                        "layer": layer + 1,
                        "width": h.shape[-1],
                        "i_xt": i_xt,
                        "i_ty": i_ty,
                        "train_accuracy": float(train_acc[net]),
                        "test_accuracy": float(test_acc[net]),
                    }
                )
        if progress:
            progress("information per layer and epoch", done + 1, len(history))
    return rows


# --- judging ---------------------------------------------------------------------------------


def compression(values: list[float]) -> float:
    """How far (%) the last value ends below the largest one."""
    peak = max(values)
    return 100 * (peak - values[-1]) / peak if peak > 0 else 0.0


def summarise(rows: list[dict], seeds: list[int]) -> list[Summary]:
    summaries = []
    for activation in ACTIVATIONS:
        for seed in seeds:
            mine = [r for r in rows if r["activation"] == activation and r["seed"] == seed]
            layers = sorted({r["layer"] for r in mine})
            curves = [
                sorted((r["epoch"], r["i_xt"], r["i_ty"]) for r in mine if r["layer"] == k) for k in layers
            ]
            peaks = [max(curve, key=lambda c: c[1]) for curve in curves]
            last = max(mine, key=lambda r: r["epoch"])
            summaries.append(
                Summary(
                    activation,
                    seed,
                    tuple(c[0][1] for c in curves),
                    tuple(p[1] for p in peaks),
                    tuple(p[0] for p in peaks),
                    tuple(c[-1][1] for c in curves),
                    tuple(c[-1][2] for c in curves),
                    last["train_accuracy"],
                    last["test_accuracy"],
                )
            )
    return summaries


def judge(summaries: list[Summary]) -> tuple[dict[str, float], list[Verdict]]:
    """Figures (medians over seeds) and the three verdicts, from the per-net summaries alone."""
    figures: dict[str, float] = {}
    for activation in ACTIVATIONS:
        figures.update(_figures(activation, [s for s in summaries if s.activation == activation]))
    tanh = {s.seed: s.test_accuracy for s in summaries if s.activation == "tanh"}
    gap = _median(s.test_accuracy - tanh[s.seed] for s in summaries if s.activation == "relu")
    figures["ReLU minus tanh test accuracy (points)"] = gap
    squeeze = {
        a: figures[f"{a}, last hidden layer: I(X;T) below its peak at the end (%)"] for a in ACTIVATIONS
    }
    return figures, _verdicts(squeeze, gap)


def _figures(activation: str, group: list[Summary]) -> dict[str, float]:
    figures = {}
    layers = len(group[0].i_xt_end)
    for k in range(layers - 1):
        below = _median(compression([s.i_xt_peak[k], s.i_xt_end[k]]) for s in group)
        figures[f"{activation}, layer {k + 1}: I(X;T) below its peak at the end (%)"] = below
    last = {
        "I(X;T) at the start (bits)": [s.i_xt_start[-1] for s in group],
        "I(X;T) at its peak (bits)": [s.i_xt_peak[-1] for s in group],
        "epoch of the peak": [s.peak_epoch[-1] for s in group],
        "I(X;T) at the end (bits)": [s.i_xt_end[-1] for s in group],
        "I(X;T) below its peak at the end (%)": [
            compression([s.i_xt_peak[-1], s.i_xt_end[-1]]) for s in group
        ],
        "I(T;Y) at the end (bits)": [s.i_ty_end[-1] for s in group],
    }
    for name, values in last.items():
        figures[f"{activation}, last hidden layer: {name}"] = _median(values)
    figures[f"{activation}: train accuracy (%)"] = _median(s.train_accuracy for s in group)
    figures[f"{activation}: test accuracy (%)"] = _median(s.test_accuracy for s in group)
    return figures


def _median(values) -> float:
    return float(np.median(list(values)))


def _verdicts(squeeze: dict[str, float], gap: float) -> list[Verdict]:
    return [
        Verdict(
            "tanh layers compress",
            f"with tanh, the last hidden layer's I(X;T) ends >= {TANH_COMPRESSION:g}% below its peak",
            squeeze["tanh"],
            ">=",
            TANH_COMPRESSION,
            "%",
            "median over seeds",
        ),
        Verdict(
            "ReLU layers do not",
            f"with ReLU, the last hidden layer's I(X;T) ends at most {RELU_COMPRESSION:g}% below its peak",
            squeeze["relu"],
            "<=",
            RELU_COMPRESSION,
            "%",
            "median over seeds",
        ),
        Verdict(
            "ReLU generalises as well",
            f"ReLU's test accuracy >= tanh's - {ACCURACY_SLACK:g} points",
            gap,
            ">=",
            -ACCURACY_SLACK,
            " pts",
            "ReLU minus tanh, median over seeds",
        ),
    ]


# --- plot ------------------------------------------------------------------------------------


def plot(path: Path, rows: list[dict], task: Task, cfg: Config) -> Path:
    """The two information planes side by side: one line per layer, points coloured by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import SymLogNorm

    norm = SymLogNorm(linthresh=1, vmin=0, vmax=max(cfg.epochs, 2))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True, layout="constrained")
    for ax, activation in zip(axes, ACTIVATIONS, strict=True):
        mine = [r for r in rows if r["activation"] == activation]
        for layer in sorted({r["layer"] for r in mine}):
            points = sorted((r["epoch"], r["i_xt"], r["i_ty"]) for r in mine if r["layer"] == layer)
            epochs, i_xt, i_ty = (np.array(v) for v in zip(*points, strict=True))
            ax.plot(i_xt, i_ty, color="grey", lw=0.6, alpha=0.6, zorder=1)
            dots = ax.scatter(i_xt, i_ty, c=epochs, cmap="viridis", norm=norm, s=12, zorder=2)
            ax.annotate(
                str(layer), (i_xt[-1], i_ty[-1]), fontsize=7, xytext=(3, -8), textcoords="offset points"
            )
        ax.set(xlabel="I(X;T) (bits)", xlim=(0, np.log2(len(task.y)) + 0.3))
        ax.set_title(f"{activation}: hidden layers 1–{len(HIDDEN[cfg.data])} (seed {cfg.seed})", fontsize=9)
    axes[0].set_ylabel("I(T;Y) (bits)")
    fig.colorbar(dots, ax=axes, label="epoch")
    fig.suptitle(f"Information plane, {cfg.data}: 30 equal bins per unit", fontsize=9)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _settings(cfg: Config) -> dict:
    return {
        **cfg.__dict__,
        "hidden": list(HIDDEN[cfg.data]),
        "optimizer": "adam",
        "lr": LR,
        "batch": BATCH,
        "bins": BINS,
        "label_seed": LABEL_SEED,
        "train_fraction": TRAIN_FRACTION if cfg.data == "bits12" else None,
    }
