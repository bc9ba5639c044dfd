"""sharpness: large batches find sharper minima and generalise worse; a rescaled net is as good, sharper.

Keskar, Mudigere, Nocedal, Smelyanskiy & Tang, "On Large-Batch Training for Deep Learning:
Generalization Gap and Sharp Minima" (ICLR 2017): fully connected and convolutional nets on
MNIST, TIMIT and CIFAR-10/100, trained with Adam, small batch 256 vs large batch 10% of the
training set, the same number of epochs; the large-batch minima are sharper and test accuracy
is lower. Their sharpness is the largest relative rise of the training loss within a box of
radius ε (|θ_i| + 1) around the minimum, maximised with L-BFGS-B (ε = 1e-3 and 5e-4).
Dinh, Pascanu, Bengio & Bengio, "Sharp Minima Can Generalize For Deep Nets" (ICML 2017): a
ReLU net's layers can be rescaled (W1·α, b1·α, W2/α) without changing its function at all,
while the Hessian's spectral norm and the ε-sharpness can be made as large as one likes; so
flatness, as measured, cannot by itself explain generalisation.

Ours: scikit-learn's 8x8 digits (1347 train / 450 test), or the breast-cancer data set
(standardised, 426 / 143), and an MLP in-256-256-classes with ReLU. Adam (lr 1e-3) with
batch 32 against the whole training set as one batch (1347 digits), the same initial weights
per seed, 3 seeds, medians. Unlike Keskar, both regimes train until the same training loss
(mean cross-entropy <= 0.01, so 100% train accuracy) rather than for the same epochs: at equal
epochs batch 32 takes 43x the steps and ends at a far lower loss, and a cross-entropy
Hessian shrinks with the loss, so the comparison would measure the loss reached, not the
shape of the minimum. Two sharpness measures on the full training loss: the Hessian's top
eigenvalue, by power iteration on Hessian-vector products (double backward) -- the verdict's
measure -- and Keskar's ε-sharpness (ε = 1e-3, full space), maximised by projected
sign-gradient ascent from a random point in the box instead of L-BFGS-B. Dinh's rescaling is
applied to the first seed's small-batch solution for α = 0.1 ... 10 and checked on every
output for the training and test inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    import torch

REGIMES = ("small", "large")
SMALL_BATCH = 32  # the large batch is the whole training set
LR = 1e-3  # Adam, both regimes (Keskar used Adam with its defaults)
LOSS_TARGET = 0.01  # both regimes train until the mean training cross-entropy is this low
EPSILON = 1e-3  # Keskar's box radius, relative to |θ_i| + 1
ASCENT_STEPS = 30
POWER_ITERS = 200  # the most; power iteration stops once the estimate settles
POWER_TOL = 1e-4  # relative change between iterations
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)  # Dinh's rescaling factors, swept
DINH_ALPHA = 10.0  # the factor the verdict reads
# Thresholds, fixed before any run, one per claim:
SHARPER = 2.0  # Keskar: large-batch top Hessian eigenvalue >= 2x small-batch's (medians)
WORSE = 0.5  # Keskar: small-batch test accuracy beats large-batch's by >= 0.5 points (medians)
SAME_OUTPUT = 1e-5  # Dinh: every output unchanged by the rescaling, relative to 1 + |output|
RESHARPENED = 10.0  # Dinh: the top eigenvalue changes >= 10x at α = DINH_ALPHA
COLUMNS = ("regime", "batch", "seed", "epoch", "train_loss", "train_accuracy", "test_accuracy")


@dataclass
class Config:
    data: str = "digits"  # or "breast-cancer"
    epochs: int = 1000  # the most per run; a run stops at the loss target (batch 1347 took ~200)
    seeds: int = 3
    width: int = 256  # units in each of the two hidden layers
    seed: int = 0  # seeds used: seed, seed + 1, ...; the data split uses seed
    out: Path = Path("experiments/sharpness")
    device: str = "cpu"  # tiny nets: the GPU's launch overhead would dominate
    threads: int | None = 1


QUICK = {"epochs": 2, "seeds": 1, "width": 16}


@dataclass
class Run:
    """One trained net: how far it trained, how well it generalises, how sharp its minimum is."""

    regime: str  # "small" or "large"
    seed: int
    batch: int
    epochs: int
    reached: bool  # the loss target was reached within the epoch budget
    train_loss: float
    train_accuracy: float  # %
    test_accuracy: float  # %
    top_eigenvalue: float
    eps_sharpness: float  # Keskar's, in %
    curve: list[dict] = field(default_factory=list)


@dataclass
class Rescaled:
    """The small-batch net after Dinh's rescaling by ``alpha``."""

    alpha: float
    top_eigenvalue: float
    eps_sharpness: float
    output_change: float  # max |f_α(x) - f(x)| / (1 + |f(x)|) over every output, train and test


def run(cfg: Config, progress: Progress | None = None) -> Result:
    _check(cfg)
    timer = Timer()
    out = prepare_out_dir(cfg.out)
    device = setup_device(cfg.device, cfg.threads, 0)
    tensors = _tensors(load_data(cfg.data, cfg.seed), device)
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    total = 2 * cfg.seeds + len(ALPHAS)
    runs: list[Run] = []
    for seed in seeds:
        for regime in REGIMES:
            if progress:
                progress(f"{regime} batch, seed {seed}", len(runs), total)
            net, trained = train(regime, tensors, cfg.epochs, cfg.width, seed)
            runs.append(trained)
            if (regime, seed) == ("small", cfg.seed):
                dinh_net = net  # Dinh's rescaling starts from the first small-batch solution
    rescaled = []
    for alpha in ALPHAS:
        if progress:
            progress(f"rescaling the small-batch net by α = {alpha:g}", len(runs) + len(rescaled), total)
        rescaled.append(rescale_and_measure(dinh_net, alpha, tensors))
    if progress:
        progress("done", total, total)

    figures, verdicts = judge(runs, rescaled)
    rows = [{"regime": r.regime, "batch": r.batch, "seed": r.seed, **row} for r in runs for row in r.curve]
    result = Result("sharpness", _settings(cfg, tensors), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "training.csv", rows, COLUMNS)
    result.paths["plot"] = plot(out / "sharpness.png", runs, rescaled)
    write_results(out, result, str(device))
    return result


def _check(cfg: Config) -> None:
    if cfg.data not in DATA_SETS:
        raise InputError(f"--data must be one of {', '.join(DATA_SETS)}, got {cfg.data!r}")
    if cfg.seeds < 1 or cfg.epochs < 1 or cfg.width < 1:
        raise InputError(
            f"--seeds, --epochs and --width must be >= 1, got {cfg.seeds}, {cfg.epochs} and {cfg.width}"
        )


# --- data ------------------------------------------------------------------------------------


@dataclass
class _Tensors:
    x: torch.Tensor  # on the device
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _tensors(data: Split, device) -> _Tensors:
    import torch

    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    return _Tensors(*(torch.as_tensor(a, device=device) for a in arrays))


# --- the net and its training ----------------------------------------------------------------


def build_mlp(inputs: int, width: int, classes: int):
    """inputs -> width -> width -> classes, ReLU between (nn.Linear's default initialisation)."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, classes)
    )


def train(regime: str, data: _Tensors, epochs: int, width: int, seed: int):
    """Adam from the seed's initial weights until the training loss is <= LOSS_TARGET or
    ``epochs`` run out; then both sharpness measures. Returns (net, Run)."""
    import torch

    torch.manual_seed(seed)  # the same initial weights for both regimes
    net = build_mlp(data.x.shape[1], width, int(data.y.max()) + 1).to(data.x.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    batch = SMALL_BATCH if regime == "small" else len(data.y)
    order = torch.Generator().manual_seed(seed)
    curve: list[dict] = []
    for epoch in range(1, epochs + 1):
        for rows in torch.randperm(len(data.y), generator=order).split(batch):
            loss = torch.nn.functional.cross_entropy(net(data.x[rows]), data.y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        curve.append({"epoch": epoch, **_evaluate(net, data)})
        if curve[-1]["train_loss"] <= LOSS_TARGET:
            break
    last = curve[-1]
    loss_fn = _loss_fn(net, data)
    params = list(net.parameters())
    return net, Run(
        regime,
        seed,
        batch,
        last["epoch"],
        last["train_loss"] <= LOSS_TARGET,
        last["train_loss"],
        last["train_accuracy"],
        last["test_accuracy"],
        top_eigenvalue(loss_fn, params),
        epsilon_sharpness(loss_fn, params),
        curve,
    )


def _evaluate(net, data: _Tensors) -> dict:
    import torch

    with torch.no_grad():
        logits = net(data.x)
        return {
            "train_loss": float(torch.nn.functional.cross_entropy(logits, data.y)),
            "train_accuracy": float((logits.argmax(1) == data.y).float().mean()) * 100,
            "test_accuracy": float((net(data.x_test).argmax(1) == data.y_test).float().mean()) * 100,
        }


def _loss_fn(net, data: _Tensors) -> Callable:
    import torch

    return lambda: torch.nn.functional.cross_entropy(net(data.x), data.y)


# --- sharpness -------------------------------------------------------------------------------


def top_eigenvalue(
    loss_fn: Callable, params: Sequence, iters: int = POWER_ITERS, tol: float = POWER_TOL, seed: int = 0
) -> float:
    """The Hessian's eigenvalue of largest magnitude (near a minimum: the top one), by power
    iteration on Hessian-vector products. ``loss_fn()`` computes the loss from ``params``."""
    import torch

    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
    generator = torch.Generator().manual_seed(seed)  # the same start for every net
    vector = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    estimate = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((v * v).sum() for v in vector))
        vector = [v / norm for v in vector]
        product = torch.autograd.grad(grads, params, vector, retain_graph=True)
        previous, estimate = estimate, float(sum((v * h).sum() for v, h in zip(vector, product, strict=True)))
        vector = [h.detach() for h in product]
        if abs(estimate - previous) <= tol * abs(estimate):
            break
    return estimate


def epsilon_sharpness(
    loss_fn: Callable, params: Sequence, epsilon: float = EPSILON, steps: int = ASCENT_STEPS, seed: int = 0
) -> float:
    """Keskar's ε-sharpness in %: 100 (max f(θ + δ) - f(θ)) / (1 + f(θ)) over the box
    |δ_i| <= ε (|θ_i| + 1), by projected sign-gradient ascent from a random point in the box
    (at a minimum the gradient is ~0: a start at θ would not move). ``params`` are restored."""
    import torch

    origin = [p.detach().clone() for p in params]
    radius = [epsilon * (o.abs() + 1) for o in origin]
    generator = torch.Generator().manual_seed(seed)
    offset = [
        (2 * torch.rand(o.shape, generator=generator, dtype=o.dtype).to(o.device) - 1) * r
        for o, r in zip(origin, radius, strict=True)
    ]
    with torch.no_grad():
        base = float(loss_fn())
    highest = base
    try:
        for _ in range(steps):
            with torch.no_grad():
                for p, o, d in zip(params, origin, offset, strict=True):
                    p.copy_(o + d)
            value = loss_fn()
            grads = torch.autograd.grad(value, params)
            highest = max(highest, float(value.detach()))
            # Steps of a quarter of the box: a corner in a few steps, then it moves along edges.
            offset = [
                torch.clamp(d + 0.25 * r * g.sign(), -r, r)
                for d, r, g in zip(offset, radius, grads, strict=True)
            ]
    finally:
        with torch.no_grad():
            for p, o in zip(params, origin, strict=True):
                p.copy_(o)
    return 100 * (highest - base) / (1 + base)


def rescale(net, alpha: float):
    """Dinh's α-scale transformation: a copy with layer 1 (weights and bias) times α and layer
    2's weights divided by α. ReLU(αz) = α ReLU(z), so the function is unchanged."""
    import torch

    scaled = copy.deepcopy(net)
    with torch.no_grad():
        scaled[0].weight.mul_(alpha)
        scaled[0].bias.mul_(alpha)
        scaled[2].weight.div_(alpha)
    return scaled


def output_change(net, other, inputs: Sequence) -> float:
    """The largest |f'(x) - f(x)| / (1 + |f(x)|) over every output for every input in ``inputs``."""
    import torch

    with torch.no_grad():
        return max(float(((other(x) - net(x)).abs() / (1 + net(x).abs())).max()) for x in inputs)


def rescale_and_measure(net, alpha: float, data: _Tensors) -> Rescaled:
    scaled = rescale(net, alpha)
    loss_fn = _loss_fn(scaled, data)
    params = list(scaled.parameters())
    return Rescaled(
        alpha,
        top_eigenvalue(loss_fn, params),
        epsilon_sharpness(loss_fn, params),
        output_change(net, scaled, (data.x, data.x_test)),
    )


# --- judging ---------------------------------------------------------------------------------


def _median(runs: Sequence[Run], regime: str, key: str) -> float:
    return float(np.median([getattr(r, key) for r in runs if r.regime == regime]))


def judge(runs: Sequence[Run], rescaled: Sequence[Rescaled]) -> tuple[dict[str, float], list[Verdict]]:
    """Figures and verdicts from the runs' measurements and the rescaled nets' alone."""
    figures: dict[str, float] = {}
    for regime in REGIMES:
        name = f"{regime} batch ({next(r.batch for r in runs if r.regime == regime)})"
        for key, label in (
            ("epochs", "epochs trained"),
            ("train_loss", "train loss"),
            ("train_accuracy", "train accuracy (%)"),
            ("test_accuracy", "test accuracy (%)"),
            ("top_eigenvalue", "top Hessian eigenvalue"),
            ("eps_sharpness", f"ε-sharpness, ε={EPSILON:g} (%)"),
        ):  # medians over seeds
            figures[f"{name}: {label}"] = _median(runs, regime, key)
        for r in (r for r in runs if r.regime == regime):
            figures[f"{name}, seed {r.seed}: top Hessian eigenvalue"] = r.top_eigenvalue
            figures[f"{name}, seed {r.seed}: test accuracy (%)"] = r.test_accuracy
    for r in rescaled:
        figures[f"rescaled α={r.alpha:g}: top Hessian eigenvalue"] = r.top_eigenvalue
        figures[f"rescaled α={r.alpha:g}: ε-sharpness (%)"] = r.eps_sharpness
        # In parts per million: the printed table shows three decimals.
        figures[f"rescaled α={r.alpha:g}: max output change (ppm)"] = r.output_change * 1e6
    return figures, [*_keskar(runs), *_dinh(rescaled)]


def _keskar(runs: Sequence[Run]) -> list[Verdict]:
    missed = sum(not r.reached for r in runs)
    caveat = f"; {missed} of {len(runs)} runs stopped short of loss {LOSS_TARGET:g}" if missed else ""
    ratio = _median(runs, "large", "top_eigenvalue") / _median(runs, "small", "top_eigenvalue")
    eps_ratio = _median(runs, "large", "eps_sharpness") / _median(runs, "small", "eps_sharpness")
    gap = _median(runs, "small", "test_accuracy") - _median(runs, "large", "test_accuracy")
    return [
        Verdict(
            "large batches find sharper minima",
            f"the large batch's top Hessian eigenvalue is >= {SHARPER:g}x the small batch's (medians)",
            ratio,
            ">=",
            SHARPER,
            "x",
            f"ε-sharpness ratio {eps_ratio:.3g}x{caveat}",
        ),
        Verdict(
            "large batches generalise worse",
            f"the small batch's test accuracy beats the large batch's by >= {WORSE:g} points (medians)",
            gap,
            ">=",
            WORSE,
            " pts",
            f"small minus large{caveat}",
        ),
    ]


def _dinh(rescaled: Sequence[Rescaled]) -> list[Verdict]:
    base = next(r for r in rescaled if r.alpha == 1.0).top_eigenvalue
    scaled = next(r for r in rescaled if r.alpha == DINH_ALPHA).top_eigenvalue
    return [
        Verdict(
            "rescaling keeps the function",
            f"every output, train and test, within {SAME_OUTPUT:g} of the original, relative to 1 + |output|",
            max(r.output_change for r in rescaled),
            "<=",
            SAME_OUTPUT,
            "",
            f"the largest over α = {', '.join(f'{r.alpha:g}' for r in rescaled)}",
        ),
        Verdict(
            "rescaling changes the sharpness",
            f"W1·α, W2/α with α = {DINH_ALPHA:g} changes the top Hessian eigenvalue >= {RESHARPENED:g}x",
            max(scaled / base, base / scaled),
            ">=",
            RESHARPENED,
            "x",
            f"{base:.3g} -> {scaled:.3g}",
        ),
    ]


# --- the plot --------------------------------------------------------------------------------


def plot(path: Path, runs: Sequence[Run], rescaled: Sequence[Rescaled]) -> Path:
    """Left: top eigenvalue per seed and median; middle: test accuracy; right: Dinh's sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.9))
    labels = [f"{regime} batch ({next(r.batch for r in runs if r.regime == regime)})" for regime in REGIMES]
    for axis, key, ylabel in (
        (left, "top_eigenvalue", "top Hessian eigenvalue"),
        (middle, "test_accuracy", "test accuracy (%)"),
    ):
        for i, regime in enumerate(REGIMES):
            values = [getattr(r, key) for r in runs if r.regime == regime]
            axis.plot([i] * len(values), values, "o", color=f"C{i}", alpha=0.6, label=None if i else "a seed")
            axis.hlines(np.median(values), i - 0.25, i + 0.25, color="k", label=None if i else "median")
        axis.set(
            xticks=range(len(REGIMES)), xticklabels=labels, xlim=(-0.6, len(REGIMES) - 0.4), ylabel=ylabel
        )
        axis.legend(fontsize=7)
    left.set_ylim(bottom=0)
    left.set_title("Sharpness at the end of training (same train loss)", fontsize=9)
    middle.set_title("Test accuracy", fontsize=9)
    alphas = [r.alpha for r in rescaled]
    right.loglog(alphas, [r.top_eigenvalue for r in rescaled], "o-", label="top Hessian eigenvalue")
    right.loglog(alphas, [r.eps_sharpness for r in rescaled], "s--", label=f"ε-sharpness (%), ε={EPSILON:g}")
    right.set(xlabel="α (layer 1 × α, layer 2 ÷ α)", ylabel="sharpness")
    right.set_title("Dinh: the same function, rescaled", fontsize=9)
    change = max(r.output_change for r in rescaled)
    right.text(0.03, 0.04, f"max output change: {change:.1e}", transform=right.transAxes, fontsize=8)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _settings(cfg: Config, data: _Tensors) -> dict:
    return {
        **cfg.__dict__,
        "architecture": f"{data.x.shape[1]}-{cfg.width}-{cfg.width}-{int(data.y.max()) + 1} ReLU MLP",
        "optimiser": f"Adam, lr {LR:g}",
        "batches": [SMALL_BATCH, len(data.y)],
        "train_size": len(data.y),
        "test_size": len(data.y_test),
        "loss_target": LOSS_TARGET,
        "epsilon": EPSILON,
        "ascent_steps": ASCENT_STEPS,
        "power_iterations": POWER_ITERS,
        "power_tolerance": POWER_TOL,
        "alphas": list(ALPHAS),
    }
