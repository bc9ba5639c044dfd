"""random-features: a linear classifier on an untrained random conv net's features.

Zhang, Bengio, Hardt, Recht & Vinyals, "Understanding deep learning requires rethinking
generalization" (ICLR 2017), §5: on CIFAR-10, kernel regression on raw pixels has 46% test
error; on the features of a random conv net (32,000 random filters) it has 17%. Saxe, Koh,
Chen, Bhand, Suresh & Ng, "On random weights and unsupervised feature learning" (ICML 2011):
one layer of random filters + rectification + pooling, then a linear classifier, comes close
to the same architecture with trained filters (Jarrett et al.'s 53% vs 54.2% on Caltech-101).
That accuracy grows with the number of random features is our reading of both (Zhang
et al. use 32,000 filters); we test it as a third finding.

Ours, on scikit-learn's digits (1347 train / 450 test): one random conv layer (K filters of
5x5, "same" padding, PyTorch's default init, seeded) + ReLU + max pooling to a 4x4 grid gives
16K features; K = 16 ... 256 gives 256 ... 4096 features, nested (the first K of the same 256
filters). The same linear classifier, an L2 logistic regression with C = 1 on standardised
features, is fitted on them and on the raw pixels. The trained CNN is the same net (256
filters, then a linear layer on its 4096 pooled features) trained end to end from the same
initial weights with Adam (lr 1e-3, batch 32, 30 epochs, no regulariser); its final-epoch
test accuracy counts. Figures are medians over seeds (random weights, CNN init and batch
order; the data split is fixed by ``seed``).

Plain 8x8 digits leave no room (linear on pixels is ~96%, a CNN ~98-99%), so by default every
digit is pasted at a random position in a blank 16x16 canvas (top-left corner uniform in
0..8 on each axis, drawn once per image from ``seed``): a linear model on pixels cannot undo
the shifts, and pooled conv features can. ``data="digits"`` is the plain 8x8 set (pooling
cells of 2x2 instead of 4x4). A one-layer net on a small, easy task instead of CIFAR-10 and
an L2 logistic regression instead of a kernel machine or SVM: all CPU-sized.
"""

from __future__ import annotations

import itertools
import math
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
from dip_cli.experiments.datasets import TEST_SIZE, load_digits

DATA = ("shifted", "digits")
CANVAS = 16  # side of the blank canvas a digit is pasted into (data="shifted")
DIGIT = 8  # side of a scikit-learn digit
KERNEL = 5
GRID = 4  # max pooling to a GRID x GRID map: each filter gives GRID² features
CELLS = GRID * GRID
C_REGULARISATION = 1.0  # LogisticRegression's C (L2), the same for every feature set
MAX_ITER = 1000
LR, BATCH = 1e-3, 32
CHUNK = 128  # images per forward pass outside training: bounds the memory of wide feature maps
# Zhang et al. §5 and Saxe et al.: random conv features beat a linear model on pixels ...
BEATS_PIXELS = 1.0  # points: random features (largest count) - raw pixels, at least
# ... and come close to the same architecture trained end to end ...
NEAR_CNN = 2.0  # points: trained CNN - random features (largest count), at most
# ... and more random features do better (our reading of both papers: many filters help).
MONOTONE_SLACK = 0.5  # points: the largest drop allowed between neighbouring feature counts
COLUMNS = ("model", "seed", "features", "epoch", "train_loss", "train_accuracy", "test_accuracy")


@dataclass
class Config:
    data: str = "shifted"  # or "digits": the plain 8x8 images
    features: tuple[int, ...] = (256, 512, 1024, 2048, 4096)  # multiples of 16 (a filter's share)
    epochs: int = 30  # the trained CNN's: enough to fit the training set (100%) on both data sets
    seeds: int = 5
    seed: int = 0  # the data split and shifts; nets use seed, seed + 1, ...
    out: Path = Path("experiments/random-features")
    device: str = "cpu"  # tiny nets: the GPU's launch overhead would dominate
    threads: int | None = 1


QUICK = {"features": (64, 128), "epochs": 1, "seeds": 1}


@dataclass
class Images:
    x_train: np.ndarray  # (n, side, side) float32 in [0, 1]
    y_train: np.ndarray  # (n,) int64
    x_test: np.ndarray
    y_test: np.ndarray


def run(cfg: Config, progress: Progress | None = None) -> Result:
    check(cfg)
    timer = Timer()
    out = prepare_out_dir(cfg.out)
    device = setup_device(cfg.device, cfg.threads, 0)
    images = make_images(cfg.data, cfg.seed)
    rows = measure(cfg, images, device, progress)
    random, raw, cnn, cnn_train = summarise(rows, cfg.epochs)
    figures, verdicts = judge(random, raw, cnn)
    figures["trained CNN: train accuracy (%)"] = cnn_train
    result = Result("random-features", _settings(cfg), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "accuracy.csv", rows, COLUMNS)
    result.paths["plot"] = plot(out / "random-features.png", rows, raw, cnn, cfg.data)
    write_results(out, result, str(device))
    return result


def measure(cfg: Config, images: Images, device, progress: Progress | None = None) -> list[dict]:
    """Rows of accuracies: raw pixels once; per seed, each feature count, then the CNN per epoch."""
    total = 1 + cfg.seeds * (len(cfg.features) + cfg.epochs)
    rows = [{"model": "raw pixels", **_linear_row(*_flat(images), images)}]
    for i, seed in enumerate(range(cfg.seed, cfg.seed + cfg.seeds)):
        done = 1 + i * (len(cfg.features) + cfg.epochs)
        if progress:
            progress(f"seed {seed}: random features", done, total)
        rows += _random_feature_rows(images, seed, cfg.features, device)
        done += len(cfg.features)

        def on_epoch(epoch: int, seed=seed, done=done) -> None:
            if progress:
                progress(f"seed {seed}: training the CNN", done + epoch, total)

        rows += train_cnn(images, seed, max(cfg.features) // CELLS, cfg.epochs, device, on_epoch)
    if progress:
        progress("done", total, total)
    return rows


def check(cfg: Config) -> None:
    """Refuse bad settings before anything is written."""
    if cfg.data not in DATA:
        raise InputError(f"--data must be one of {', '.join(DATA)}, got {cfg.data!r}")
    if cfg.seeds < 1 or cfg.epochs < 1:
        raise InputError(f"--seeds and --epochs must be >= 1, got {cfg.seeds} and {cfg.epochs}")
    counts = list(cfg.features)
    if len(counts) < 2 or any(n < CELLS or n % CELLS for n in counts) or counts != sorted(set(counts)):
        raise InputError(
            f"features must be at least two increasing multiples of {CELLS} (one filter's share), "
            f"got {counts}"
        )
    if cfg.threads is not None and cfg.threads < 1:
        raise InputError(f"--threads must be >= 1, got {cfg.threads}")


# --- data ------------------------------------------------------------------------------------


def make_images(data: str, seed: int) -> Images:
    """The digits split by ``seed``: 8x8 as they are, or each pasted into a 16x16 canvas."""
    digits = load_digits(seed)
    if data == "digits":
        return Images(
            digits.x_train.reshape(-1, DIGIT, DIGIT),
            digits.y_train,
            digits.x_test.reshape(-1, DIGIT, DIGIT),
            digits.y_test,
        )
    rng = np.random.default_rng(seed + 1000)  # apart from the split's stream
    return Images(shift(digits.x_train, rng), digits.y_train, shift(digits.x_test, rng), digits.y_test)


def shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each flat 8x8 digit pasted at a uniform random position in a blank CANVAS x CANVAS image."""
    corners = rng.integers(0, CANVAS - DIGIT + 1, size=(len(x), 2))
    canvas = np.zeros((len(x), CANVAS, CANVAS), np.float32)
    for image, digit, (top, left) in zip(canvas, x, corners, strict=True):
        image[top : top + DIGIT, left : left + DIGIT] = digit.reshape(DIGIT, DIGIT)
    return canvas


def _flat(images: Images) -> tuple[np.ndarray, np.ndarray]:
    return images.x_train.reshape(len(images.x_train), -1), images.x_test.reshape(len(images.x_test), -1)


# --- random features and the linear classifier ------------------------------------------------


def draw_filters(rng: np.random.Generator, filters: int) -> np.ndarray:
    """``filters`` rows of 5x5 weights + a bias, PyTorch's default Conv2d init (U(±1/√fan_in)).

    Drawn row by row from one stream, so the first K of 256 filters are the K-filter draw.
    """
    bound = 1 / math.sqrt(KERNEL * KERNEL)
    return rng.uniform(-bound, bound, size=(filters, KERNEL * KERNEL + 1)).astype(np.float32)


def random_features(x: np.ndarray, seed: int, filters: int, device="cpu") -> np.ndarray:
    """(n, filters * 16) features of images ``x`` (n, side, side) from ``filters`` random filters."""
    import torch

    bank = torch.as_tensor(draw_filters(np.random.default_rng(seed), filters), device=device)
    weight, bias = bank[:, :-1].reshape(filters, 1, KERNEL, KERNEL), bank[:, -1]
    with torch.no_grad():
        parts = [
            _pooled(torch.as_tensor(chunk, device=device)[:, None], weight, bias).flatten(1)
            for chunk in np.array_split(x, max(1, math.ceil(len(x) / CHUNK)))
        ]
    return torch.cat(parts).cpu().numpy()


def _pooled(x, weight, bias):
    """Conv (same padding) + ReLU + max pooling to GRID x GRID: the shared front of both models."""
    import torch

    maps = torch.relu(torch.conv2d(x, weight, bias, padding=KERNEL // 2))
    return torch.nn.functional.adaptive_max_pool2d(maps, GRID)


def linear_accuracy(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray
) -> tuple[float, float]:
    """(train %, test %) of L2 logistic regression (C = 1) on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    model = LogisticRegression(C=C_REGULARISATION, max_iter=MAX_ITER)
    model.fit(scaler.transform(train), y_train)
    return (
        100 * float(np.mean(model.predict(scaler.transform(train)) == y_train)),
        100 * float(np.mean(model.predict(scaler.transform(test)) == y_test)),
    )


def _linear_row(train: np.ndarray, test: np.ndarray, images: Images) -> dict:
    train_accuracy, test_accuracy = linear_accuracy(train, images.y_train, test, images.y_test)
    return {"features": train.shape[1], "train_accuracy": train_accuracy, "test_accuracy": test_accuracy}


def _random_feature_rows(images: Images, seed: int, counts: tuple[int, ...], device) -> list[dict]:
    """One seed's filter bank, computed once at the largest count; smaller counts are its first filters."""
    filters = max(counts) // CELLS
    train = random_features(images.x_train, seed, filters, device)
    test = random_features(images.x_test, seed, filters, device)
    return [
        {"model": "random features", "seed": seed, **_linear_row(train[:, :n], test[:, :n], images)}
        for n in counts
    ]


# --- the trained CNN -------------------------------------------------------------------------


def train_cnn(images: Images, seed: int, filters: int, epochs: int, device, on_epoch) -> list[dict]:
    """The random-feature net + a linear layer on its pooled features, trained end to end.

    It starts from the seed's random filters (the ones ``random_features`` uses). One net at a
    time: stacking the seeds' nets as groups of one convolution measured slower on one CPU core.
    """
    import torch

    params = _init_cnn(seed, filters, device)
    optimizer = torch.optim.Adam(params, lr=LR)
    x_train, y_train = (torch.as_tensor(a, device=device) for a in (images.x_train, images.y_train))
    x_test, y_test = (torch.as_tensor(a, device=device) for a in (images.x_test, images.y_test))
    order = torch.Generator().manual_seed(seed)
    rows: list[dict] = []
    for epoch in range(1, epochs + 1):
        total = torch.zeros((), device=device)
        for batch in torch.randperm(len(y_train), generator=order).to(device).split(BATCH):
            loss = torch.nn.functional.cross_entropy(_cnn_logits(params, x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
        rows.append(
            {"model": "trained CNN", "seed": seed, "features": filters * CELLS, "epoch": epoch}
            | {
                "train_loss": float(total) / len(y_train),
                "test_accuracy": _cnn_accuracy(params, x_test, y_test),
            }
        )
        on_epoch(epoch)
    rows[-1]["train_accuracy"] = _cnn_accuracy(params, x_train, y_train)  # once: a full pass costs
    return rows


def _init_cnn(seed: int, filters: int, device) -> list:
    """Conv weight (filters, 1, 5, 5) and bias, then a linear head (filters * 16 -> 10) and bias."""
    import torch

    rng = np.random.default_rng(seed)
    bank = torch.as_tensor(draw_filters(rng, filters))  # first: the same draw as random_features
    bound = 1 / math.sqrt(filters * CELLS)  # PyTorch's default Linear init
    head = torch.as_tensor(rng.uniform(-bound, bound, size=(10, filters * CELLS + 1)).astype(np.float32))
    tensors = (bank[:, :-1].reshape(-1, 1, KERNEL, KERNEL), bank[:, -1], head[:, :-1], head[:, -1])
    return [t.to(device).contiguous().requires_grad_() for t in tensors]


def _cnn_logits(params: list, x):
    """x (n, side, side) -> logits (n, 10)."""
    import torch

    weight, bias, head, head_bias = params
    features = _pooled(x[:, None], weight, bias).flatten(1)
    return torch.nn.functional.linear(features, head, head_bias)


def _cnn_accuracy(params: list, x, y) -> float:
    """Accuracy (%) on all of ``x``, a chunk at a time."""
    import torch

    with torch.no_grad():
        logits = torch.cat([_cnn_logits(params, chunk) for chunk in x.split(CHUNK)])
    return 100 * float((logits.argmax(1) == y).float().mean())


# --- judging ---------------------------------------------------------------------------------


def summarise(rows: list[dict], epochs: int) -> tuple[dict[int, float], float, float, float]:
    """Medians over seeds: random features per count, raw pixels, the CNN's last epoch (test, train)."""
    counts = sorted({r["features"] for r in rows if r["model"] == "random features"})
    random = {
        n: float(
            np.median(
                [r["test_accuracy"] for r in rows if r["model"] == "random features" and r["features"] == n]
            )
        )
        for n in counts
    }
    raw = next(r["test_accuracy"] for r in rows if r["model"] == "raw pixels")
    last = [r for r in rows if r["model"] == "trained CNN" and r["epoch"] == epochs]
    cnn = float(np.median([r["test_accuracy"] for r in last]))
    return random, raw, cnn, float(np.median([r["train_accuracy"] for r in last]))


def judge(random: dict[int, float], raw: float, cnn: float) -> tuple[dict[str, float], list[Verdict]]:
    """Figures and verdicts from test accuracies (%): random features by count, raw pixels, the CNN."""
    counts = sorted(random)
    best = random[counts[-1]]
    figures = {"raw pixels: test accuracy (%)": raw}
    figures.update({f"random features, {n}: test accuracy (%)": random[n] for n in counts})
    figures["trained CNN: test accuracy (%)"] = cnn
    drop = max(random[a] - random[b] for a, b in itertools.pairwise(counts))
    verdicts = [
        Verdict(
            "random features beat pixels",
            f"the same linear classifier does >= {BEATS_PIXELS:g} point better on random conv "
            "features than on raw pixels",
            best - raw,
            ">=",
            BEATS_PIXELS,
            " pts",
            f"{counts[-1]} features - pixels",
        ),
        Verdict(
            "close to a trained CNN",
            f"random features come within {NEAR_CNN:g} points of the same net trained end to end",
            cnn - best,
            "<=",
            NEAR_CNN,
            " pts",
            f"CNN - {counts[-1]} random features",
        ),
        Verdict(
            "more features, more accuracy",
            f"test accuracy does not fall (by > {MONOTONE_SLACK:g} pts) as random features are added",
            drop,
            "<=",
            MONOTONE_SLACK,
            " pts",
            "the largest drop between neighbouring counts; < 0: it rose every time",
        ),
    ]
    return figures, verdicts


# --- the plot --------------------------------------------------------------------------------


def plot(path: Path, rows: list[dict], raw: float, cnn: float, data: str) -> Path:
    """Test accuracy against the number of random features (log x), pixels and the CNN as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = [r for r in rows if r["model"] == "random features"]
    counts = sorted({r["features"] for r in picked})
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(
        [r["features"] for r in picked],
        [r["test_accuracy"] for r in picked],
        "o",
        color="tab:blue",
        alpha=0.35,
    )
    medians = [np.median([r["test_accuracy"] for r in picked if r["features"] == n]) for n in counts]
    ax.plot(
        counts, medians, "o-", color="tab:blue", label="linear on random conv features (median; dots: seeds)"
    )
    ax.axhline(cnn, color="tab:green", ls="--", label="the same net trained end to end (median)")
    ax.axhline(raw, color="tab:red", ls=":", label="linear on raw pixels")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.set(xlabel="number of random features", ylabel="test accuracy (%)")
    ax.set_title(f"Untrained random conv features vs pixels and a trained CNN ({data})", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _settings(cfg: Config) -> dict:
    return {
        **cfg.__dict__,
        "features": list(cfg.features),
        "canvas": CANVAS if cfg.data == "shifted" else DIGIT,
        "kernel": KERNEL,
        "pool_grid": GRID,
        "classifier": f"LogisticRegression(C={C_REGULARISATION:g}, L2) on standardised features",
        "cnn_optimizer": f"Adam lr {LR:g}, batch {BATCH}, no regulariser",
        "test_size": TEST_SIZE,
    }
