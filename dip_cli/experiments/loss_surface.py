"""loss-surface: the wider the net, the narrower the band of losses its minima share.

Choromanska, Henaff, Mathieu, Ben Arous & LeCun, "The Loss Surfaces of Multilayer Networks"
(AISTATS 2015). Their setting: one-hidden-layer ReLU nets on MNIST down-sampled to 10x10,
hidden sizes 25 to 500, hundreds of random initialisations per size, each trained with SGD to
convergence; one histogram per size of the test losses reached. Claims: (a) the spread of the
losses at the minima found shrinks as the network grows; (b) a large net's minima lie in a
narrow band near the best one found, while small nets often stop in poor minima.

Ours: scikit-learn's 8x8 digits (1347 train / 450 test, stratified), nets 64 -> H -> 10 with
cross-entropy, H from 2 to 256 (the digits are an easier problem than MNIST, so the small
widths that still land in poor minima are smaller than 25), 100 initialisations per width
(PyTorch's default for a linear layer: weights and biases uniform in +-1/sqrt(fan-in)). Every
net is trained the same way for a fixed number of epochs: SGD with momentum 0.9, batch 64, no
regulariser, the learning rate 0.05 annealed to 0 along a cosine, so that each run ends at rest
near a minimum rather than at a snapshot of SGD's noise. The batches come in one shuffled order
shared by every net of every width: two nets of a width differ only by their initial weights.
The nets of one width train at once as stacked weights, (N, 64, H) and (N, H, 10), with one
optimiser over the stack; the loss is the sum of the nets' own mean losses, so each net gets
exactly its own gradient. ``data="breast-cancer"`` reruns it on scikit-learn's breast-cancer
table (30 features standardised by the training set's mean and deviation, 2 classes, 426 / 143
split, stratified). The test loss and accuracy are the held-out set's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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

LR, MOMENTUM, BATCH = 0.05, 0.9, 64
CURVE_POINTS = 10  # the losses are also recorded this many times along training (and at the start)
PERCENTILES = (5.0, 95.0)  # the spread of a width's losses: p95 - p5 over its initialisations
# Claim (a), the spread of the losses at the minima shrinks as the net grows: at the largest
# width, p95 - p5 is at most a third of the smallest width's (train loss and test loss alike).
SPREAD_RATIO = 1 / 3
# Claim (b), small nets land in poor minima, large ones near the best: the largest width's
# median test loss is below the smallest's (a ratio <= 1; a tie of continuous losses is moot).
MEDIAN_RATIO = 1.0
LOSSES = ("train_loss", "test_loss")
LOSS_TICKS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10)  # the histograms' log axes
COLUMNS = ("width", "init", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")


@dataclass
class Config:
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256)
    inits: int = 100  # random initialisations per width
    epochs: int = 100  # the same for every net; the learning rate reaches 0 at the last
    data: str = "digits"  # or "breast-cancer"
    seed: int = 0  # the split, the batch order and every width's initial weights
    out: Path = Path("experiments/loss-surface")
    device: str = "cpu"  # tiny nets: the GPU's launch overhead would dominate
    threads: int | None = 1


QUICK = {"widths": (2, 16), "inits": 8, "epochs": 3}


# --- data ------------------------------------------------------------------------------------


@dataclass
class Nets:
    """N one-hidden-layer ReLU nets stacked: w1 (N, d, H), b1 (N, 1, H), w2 (N, H, K), b2 (N, 1, K)."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    def parameters(self) -> list[torch.Tensor]:
        return [self.w1, self.b1, self.w2, self.b2]

    def __len__(self) -> int:
        return self.w1.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, B, K) of every net for the same inputs ``x`` (B, d)."""
        import torch

        hidden = torch.relu(torch.matmul(x, self.w1) + self.b1)
        return torch.baddbmm(self.b2, hidden, self.w2)


def init_nets(count: int, inputs: int, hidden: int, classes: int, generator: torch.Generator) -> Nets:
    """``count`` nets with PyTorch's default linear-layer init, uniform in +-1/sqrt(fan-in)."""
    import torch

    def uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
        bound = 1 / math.sqrt(fan_in)
        return ((torch.rand(shape, generator=generator) * 2 - 1) * bound).requires_grad_()

    return Nets(
        uniform((count, inputs, hidden), inputs),
        uniform((count, 1, hidden), inputs),
        uniform((count, hidden, classes), hidden),
        uniform((count, 1, classes), hidden),
    )


def per_net_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each net's mean cross-entropy over the batch: shape (N,)."""
    import torch

    count, size, classes = logits.shape
    losses = torch.nn.functional.cross_entropy(logits.reshape(-1, classes), y.repeat(count), reduction="none")
    return losses.view(count, size).mean(1)


def batch_order(samples: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's mini-batches: a fresh permutation of the samples, cut into ``BATCH``-sized runs."""
    import torch

    return list(torch.randperm(samples, generator=generator).split(BATCH))


def learning_rate(step: int, steps: int) -> float:
    """``LR`` annealed to 0 along a half cosine over ``steps`` optimiser steps."""
    return LR * 0.5 * (1 + math.cos(math.pi * step / steps))


def train(
    nets: Nets,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    seed: int,
    on_epoch: Callable[[int], None] | None = None,
) -> None:
    """SGD with momentum on every net at once, batches in the order ``seed`` fixes.

    The summed loss gives each net the gradient of its own mean loss, and SGD's update (and its
    momentum) is elementwise: the stack trains exactly as its nets would one by one.
    """
    import torch

    optimizer = torch.optim.SGD(nets.parameters(), lr=LR, momentum=MOMENTUM)
    order = torch.Generator().manual_seed(seed)
    steps, step = epochs * math.ceil(len(y) / BATCH), 0
    for epoch in range(1, epochs + 1):
        for batch in batch_order(len(y), order):
            optimizer.param_groups[0]["lr"] = learning_rate(step, steps)
            loss = per_net_loss(nets(x[batch]), y[batch]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if on_epoch:
            on_epoch(epoch)


def evaluate(nets: Nets, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Each net's mean cross-entropy and accuracy (%) on ``x``, ``y``."""
    import torch

    with torch.no_grad():
        logits = nets(x)
        losses = per_net_loss(logits, y)
        accuracy = (logits.argmax(2) == y).float().mean(1) * 100
    return losses.cpu().numpy().astype(float), accuracy.cpu().numpy().astype(float)


# --- the experiment --------------------------------------------------------------------------


@dataclass
class Width:
    """One width's nets: the final losses per init, and the recorded rows along training."""

    width: int
    final: dict[str, np.ndarray]  # "train_loss", "test_loss", "test_accuracy" -> (inits,)
    rows: list[dict] = field(default_factory=list)


def run(cfg: Config, progress: Progress | None = None) -> Result:
    _check(cfg)
    timer = Timer()
    data = load_data(cfg.data, cfg.seed)
    out = prepare_out_dir(cfg.out)
    device = setup_device(cfg.device, cfg.threads, 0)
    widths = [
        train_width(width, data, cfg, device, progress, index * cfg.epochs)
        for index, width in enumerate(cfg.widths)
    ]
    if progress:
        progress("done", len(cfg.widths) * cfg.epochs, len(cfg.widths) * cfg.epochs)

    figures, verdicts = judge({w.width: w.final for w in widths})
    rows = [row for w in widths for row in w.rows]
    result = Result("loss-surface", _settings(cfg), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "losses.csv", rows, COLUMNS)
    result.paths["plot"] = plot(out / "loss-surface.png", widths, cfg.data)
    write_results(out, result, str(device))
    return result


def _check(cfg: Config) -> None:
    if cfg.data not in DATA_SETS:
        raise InputError(f"--data must be one of {', '.join(DATA_SETS)}, got {cfg.data!r}")
    if len(cfg.widths) < 2 or min(cfg.widths) < 1 or len(set(cfg.widths)) != len(cfg.widths):
        raise InputError(f"--width needs at least two different widths, each >= 1, got {list(cfg.widths)}")
    if cfg.inits < 2 or cfg.epochs < 1:
        raise InputError(f"--inits must be >= 2 and --epochs >= 1, got {cfg.inits} and {cfg.epochs}")


def train_width(
    width: int, data: Split, cfg: Config, device: torch.device, progress: Progress | None, done: int
) -> Width:
    """Train ``cfg.inits`` nets of one width as a stack, recording their losses along the way.

    ``done``: the epochs the earlier widths trained, for the progress bar.
    """
    import torch

    x, y, x_test, y_test = (
        torch.as_tensor(a, device=device) for a in (data.x_train, data.y_train, data.x_test, data.y_test)
    )
    # Each width's initial weights from its own stream: adding a width changes no other's.
    state = int(np.random.SeedSequence([cfg.seed, width]).generate_state(1)[0])
    nets = init_nets(cfg.inits, x.shape[1], width, int(y.max()) + 1, torch.Generator().manual_seed(state))
    nets = Nets(*(p.detach().to(device).requires_grad_() for p in nets.parameters()))
    record = set(np.linspace(0, cfg.epochs, CURVE_POINTS + 1).round().astype(int).tolist())
    result = Width(width, {})

    def measure(epoch: int) -> None:
        if epoch in record:
            train_loss, train_accuracy = evaluate(nets, x, y)
            test_loss, test_accuracy = evaluate(nets, x_test, y_test)
            result.final = {"train_loss": train_loss, "test_loss": test_loss, "test_accuracy": test_accuracy}
            result.rows += [
                {
                    "width": width,
                    "init": i,
                    "epoch": epoch,
                    "train_loss": float(train_loss[i]),
                    "train_accuracy": float(train_accuracy[i]),
                    "test_loss": float(test_loss[i]),
                    "test_accuracy": float(test_accuracy[i]),
                }
                for i in range(len(nets))
            ]
        if progress:
            progress(f"width {width}", done + epoch, len(cfg.widths) * cfg.epochs)

    measure(0)
    train(nets, x, y, cfg.epochs, cfg.seed, measure)
    return result


# --- judging ---------------------------------------------------------------------------------


def spread(values: np.ndarray) -> float:
    """p95 - p5: the width of the band holding the middle 90% of the losses."""
    low, high = np.percentile(values, PERCENTILES)
    return float(high - low)


def judge(final: dict[int, dict[str, np.ndarray]]) -> tuple[dict[str, float], list[Verdict]]:
    """Figures and verdicts from each width's final losses per initialisation alone."""
    figures: dict[str, float] = {}
    for width in sorted(final):
        losses = {k: np.asarray(v, dtype=float) for k, v in final[width].items()}
        figures[f"H={width}: median train loss"] = float(np.median(losses["train_loss"]))
        figures[f"H={width}: train loss p95-p5"] = spread(losses["train_loss"])
        figures[f"H={width}: median test loss"] = float(np.median(losses["test_loss"]))
        figures[f"H={width}: test loss p95-p5"] = spread(losses["test_loss"])
        figures[f"H={width}: median test accuracy (%)"] = float(np.median(losses["test_accuracy"]))
    small, large = min(final), max(final)
    verdicts = []
    for loss in LOSSES:
        name = loss.replace("_", " ")
        ratio = figures[f"H={large}: {name} p95-p5"] / figures[f"H={small}: {name} p95-p5"]
        figures[f"{name} spread, H={large} / H={small}"] = ratio
        verdicts.append(
            Verdict(
                f"{name}es narrow as the net grows",
                f"the {name}es spread less with width: p95 - p5 at H={large} <= 1/3 of H={small}'s",
                ratio,
                "<=",
                SPREAD_RATIO,
                "x",
                f"H={large} / H={small}",
            )
        )
    ratio = figures[f"H={large}: median test loss"] / figures[f"H={small}: median test loss"]
    figures[f"median test loss, H={large} / H={small}"] = ratio
    verdicts.append(
        Verdict(
            "large nets' minima lie lower",
            f"small nets stop in poor minima: H={large}'s median test loss below H={small}'s",
            ratio,
            "<=",
            MEDIAN_RATIO,
            "x",
            f"H={large} / H={small}",
        )
    )
    return figures, verdicts


# --- the figure ------------------------------------------------------------------------------


def plot(path: Path, widths: list[Width], data: str) -> Path:
    """The paper's figure: histograms of the final test (and train) losses, one colour per width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    colours = plt.get_cmap("viridis")(np.linspace(0, 0.92, len(widths)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, loss in zip(axes[:2], ("test_loss", "train_loss"), strict=True):
        bins = _log_bins(np.concatenate([w.final[loss] for w in widths]))
        for w, colour in zip(widths, colours, strict=True):
            ax.hist(w.final[loss], bins=bins, histtype="stepfilled", alpha=0.25, color=colour)
            ax.hist(w.final[loss], bins=bins, histtype="step", lw=1.3, color=colour, label=f"H={w.width}")
        ax.set(xscale="log", xlabel=f"final {loss.replace('_', ' ')}", ylabel="nets (initialisations)")
        ticks = [t for t in LOSS_TICKS if bins[0] <= t <= bins[-1]]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())  # matplotlib's own minor labels overlap
        ax.set_title(f"{loss.split('_')[0].capitalize()} loss at the end, per width ({data})", fontsize=9)
    axes[0].legend(fontsize=7, ncol=2)
    for w, colour in zip(widths, colours, strict=True):
        epochs = sorted({r["epoch"] for r in w.rows})
        medians = [np.median([r["train_loss"] for r in w.rows if r["epoch"] == e]) for e in epochs]
        axes[2].plot(epochs, medians, "o-", ms=3, color=colour, label=f"H={w.width}")
    axes[2].set(yscale="log", xlabel="epoch", ylabel="median train loss")
    axes[2].set_title("Training: the median net per width", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _log_bins(values: np.ndarray, count: int = 60) -> np.ndarray:
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size == 0:
        return np.geomspace(1e-3, 10, count + 1)
    # A little room either side, so the axis reaches the ticks around the data.
    return np.geomspace(finite.min() / 1.15, finite.max() * 1.15, count + 1)


def _settings(cfg: Config) -> dict:
    return {
        **cfg.__dict__,
        "widths": list(cfg.widths),
        "optimiser": "SGD",
        "lr": LR,
        "lr_schedule": "cosine to 0",
        "momentum": MOMENTUM,
        "batch": BATCH,
        "percentiles": list(PERCENTILES),
    }
