"""random-labels: deep nets memorise anything, and generalise only when the data has structure.

Zhang, Bengio, Hardt, Recht & Vinyals, "Understanding deep learning requires rethinking
generalization" (ICLR 2017), Fig. 1 and Table 1, on scikit-learn's 8x8 digits (1347 train /
450 test, stratified). An MLP (one hidden layer of 512) and a small CNN are trained with
plain SGD (momentum 0.9, lr 0.01, batch 32, constant lr, no regulariser) until they fit the
training set exactly or run out of epochs, on: true labels; random labels; shuffled pixels
(one permutation for all images); random pixels (a permutation per image); Gaussian pixels
(the data's mean and variance); and labels corrupted with probability p. Figures are medians
over seeds. This is a classifier's own training loop, not DIP's fit loop: a different problem.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
from dip_cli.experiments.datasets import TEST_SIZE, Split, load_digits

CONDITIONS = ("true labels", "random labels", "shuffled pixels", "random pixels", "gaussian")
RANDOMISED = ("random labels", "random pixels", "gaussian")  # nothing to generalise from
CORRUPTIONS = (0.2, 0.4, 0.6, 0.8)  # p = 0 and 1 are "true labels" and "random labels"
MODELS = ("mlp", "cnn")
LR, MOMENTUM, BATCH = 0.01, 0.9, 32
WEIGHT_DECAY = 5e-4  # the one regulariser tried, on true labels
TRUE_TEST = 95.0  # % test accuracy on true labels, at least
CHANCE_TEST = 15.0  # % test accuracy on randomised data, at most
SLOWER = (1.5, 10.0)  # random labels / true labels, epochs to 100% train accuracy
MONOTONE_SLACK = 2.0  # points: the largest rise allowed between neighbouring p
DECAY_EFFECT = 2.0  # points: weight decay changes test accuracy by at most this
COLUMNS = ("model", "condition", "seed", "epoch", "loss", "train_accuracy")


@dataclass
class Config:
    epochs: int = 400  # the most per run; a run stops once it fits (the MLP took 343 on random labels)
    seeds: int = 3
    seed: int = 0  # seeds used: seed, seed + 1, ...
    out: Path = Path("experiments/random-labels")
    device: str = "cpu"  # tiny nets: the GPU's launch overhead would dominate
    threads: int | None = 1


QUICK = {"epochs": 3, "seeds": 1}


@dataclass
class Run:
    model: str
    condition: str
    seed: int
    epochs_to_fit: float  # inf when it never fitted within the budget
    train_accuracy: float  # %
    test_accuracy: float  # %
    curve: list[dict]


def run(cfg: Config, progress: Progress | None = None) -> Result:
    from dip_cli.errors import InputError

    if cfg.seeds < 1 or cfg.epochs < 1:
        raise InputError(f"--seeds and --epochs must be >= 1, got {cfg.seeds} and {cfg.epochs}")
    timer = Timer()
    out = prepare_out_dir(cfg.out)
    device = setup_device(cfg.device, cfg.threads, 0)
    data = load_digits(cfg.seed)
    plan = [
        (model, condition, decay, seed)
        for seed in range(cfg.seed, cfg.seed + cfg.seeds)
        for model in MODELS
        for condition, decay in [
            *((c, 0.0) for c in CONDITIONS),
            *((f"p={p}", 0.0) for p in CORRUPTIONS),
            ("true labels", WEIGHT_DECAY),
        ]
    ]
    runs: list[Run] = []
    for done, (model, condition, decay, seed) in enumerate(plan):
        if progress:
            progress(f"{model}: {condition}" + (" + weight decay" if decay else ""), done, len(plan))
        name = condition if not decay else "true labels + weight decay"
        runs.append(train(model, name, corrupt(data, condition, seed), cfg.epochs, decay, seed, device))
    if progress:
        progress("done", len(plan), len(plan))

    summary = summarise(runs)
    figures, verdicts = judge(summary, cfg.epochs)
    rows = [
        {"model": r.model, "condition": r.condition, "seed": r.seed, **row} for r in runs for row in r.curve
    ]
    result = Result("random-labels", _settings(cfg), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "training.csv", rows, COLUMNS)
    from dip_cli.experiments import plots

    curves = [_median_run(runs, m, c) for m in MODELS for c in CONDITIONS]
    sweep = [
        {"model": m, "p": p, "test_accuracy": summary[m, _condition_of(p)]["test_accuracy"] / 100}
        for m in MODELS
        for p in (0.0, *CORRUPTIONS, 1.0)
    ]
    result.paths["plot"] = plots.random_labels(out / "random-labels.png", curves, sweep)
    write_results(out, result, str(device))
    return result


# --- data ------------------------------------------------------------------------------------


def corrupt(data: Split, condition: str, seed: int) -> Split:
    """One of Zhang et al.'s randomisations. Pixel corruptions apply to train and test alike;
    label corruptions to the training labels only (the test labels stay true)."""
    rng = np.random.default_rng(seed + 1000)
    if condition == "true labels":
        return data
    if condition == "random labels":
        return Split(data.x_train, rng.integers(0, 10, len(data.y_train)), data.x_test, data.y_test)
    if condition.startswith("p="):
        p = float(condition[2:])
        flip = rng.random(len(data.y_train)) < p
        labels = np.where(flip, rng.integers(0, 10, len(data.y_train)), data.y_train)
        return Split(data.x_train, labels, data.x_test, data.y_test)
    if condition == "shuffled pixels":
        order = rng.permutation(data.x_train.shape[1])
        return Split(data.x_train[:, order], data.y_train, data.x_test[:, order], data.y_test)
    if condition == "random pixels":
        return Split(
            rng.permuted(data.x_train, axis=1), data.y_train, rng.permuted(data.x_test, axis=1), data.y_test
        )
    if condition == "gaussian":
        mean, std = data.x_train.mean(), data.x_train.std()
        noise = [rng.normal(mean, std, x.shape).astype(np.float32) for x in (data.x_train, data.x_test)]
        return Split(noise[0], data.y_train, noise[1], data.y_test)
    raise ValueError(f"unknown condition {condition!r}")


def _condition_of(p: float) -> str:
    return {0.0: "true labels", 1.0: "random labels"}.get(p, f"p={p}")


# --- models and training ---------------------------------------------------------------------


def build_model(kind: str):
    from torch import nn

    if kind == "mlp":
        return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10))
    if kind == "cnn":
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    raise ValueError(f"unknown model {kind!r}")


def train(
    model: str, condition: str, data: Split, epochs: int, weight_decay: float, seed: int, device
) -> Run:
    """SGD until the training set is fitted exactly (100% accuracy) or ``epochs`` run out."""
    import torch

    torch.manual_seed(seed)
    net = build_model(model).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=weight_decay)
    x, y = (torch.as_tensor(a, device=device) for a in (data.x_train, data.y_train))
    order_rng = torch.Generator().manual_seed(seed)
    curve: list[dict] = []
    fitted_at = float("inf")
    for epoch in range(1, epochs + 1):
        net.train()
        total = torch.zeros((), device=device)
        for batch in torch.randperm(len(y), generator=order_rng).split(BATCH):
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
        train_accuracy = accuracy(net, x, y)
        curve.append({"epoch": epoch, "loss": float(total) / len(y), "train_accuracy": train_accuracy})
        if train_accuracy == 100.0:
            fitted_at = epoch
            break
    test = accuracy(
        net, torch.as_tensor(data.x_test, device=device), torch.as_tensor(data.y_test, device=device)
    )
    return Run(model, condition, seed, fitted_at, curve[-1]["train_accuracy"], test, curve)


def accuracy(net, x, y) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean()) * 100


# --- judging ---------------------------------------------------------------------------------


def summarise(runs: list[Run]) -> dict[tuple[str, str], dict[str, float]]:
    """Median over seeds of each (model, condition)'s figures."""
    summary: dict[tuple[str, str], dict[str, float]] = {}
    for key in dict.fromkeys((r.model, r.condition) for r in runs):
        group = [r for r in runs if (r.model, r.condition) == key]
        summary[key] = {
            "epochs_to_fit": float(np.median([r.epochs_to_fit for r in group])),
            "train_accuracy": float(np.median([r.train_accuracy for r in group])),
            "test_accuracy": float(np.median([r.test_accuracy for r in group])),
        }
    return summary


def judge(
    summary: dict[tuple[str, str], dict[str, float]], epochs: int
) -> tuple[dict[str, float], list[Verdict]]:
    """Figures and verdicts from the per-(model, condition) medians alone."""
    figures: dict[str, float] = {}
    for (model, condition), s in summary.items():
        figures[f"{model}, {condition}: train accuracy (%)"] = s["train_accuracy"]
        figures[f"{model}, {condition}: test accuracy (%)"] = s["test_accuracy"]
        figures[f"{model}, {condition}: epochs to 100% train"] = s["epochs_to_fit"]
    fit_all = min(s["train_accuracy"] for s in summary.values())
    verdicts = [
        Verdict(
            "everything is memorised",
            "every model reaches 100% training accuracy on every condition",
            fit_all,
            ">=",
            100.0,
            "%",
            "the lowest median",
        ),
        Verdict(
            "true labels generalise",
            f"test accuracy with true labels >= {TRUE_TEST:g}%",
            min(summary[m, "true labels"]["test_accuracy"] for m in MODELS),
            ">=",
            TRUE_TEST,
            "%",
            "the lower model",
        ),
        Verdict(
            "randomised data does not",
            f"test accuracy <= {CHANCE_TEST:g}% with random labels, random pixels or Gaussian inputs",
            max(summary[m, c]["test_accuracy"] for m in MODELS for c in RANDOMISED),
            "<=",
            CHANCE_TEST,
            "%",
            "the highest",
        ),
    ]
    for model in MODELS:
        verdicts.append(_slowdown(model, summary, epochs))
    rises = []
    for model in MODELS:
        sweep = [summary[model, _condition_of(p)]["test_accuracy"] for p in (0.0, *CORRUPTIONS, 1.0)]
        rises.append(max(b - a for a, b in itertools.pairwise(sweep)))
    verdicts.append(
        Verdict(
            "corruption hurts steadily",
            f"test accuracy falls monotonically with label corruption p (no rise > {MONOTONE_SLACK:g} pts)",
            max(rises),
            "<=",
            MONOTONE_SLACK,
            " pts",
            "the largest rise between neighbouring p",
        )
    )
    verdicts.append(
        Verdict(
            "weight decay changes little",
            f"weight decay {WEIGHT_DECAY:g} moves test accuracy on true labels by <= {DECAY_EFFECT:g} points",
            max(
                abs(
                    summary[m, "true labels + weight decay"]["test_accuracy"]
                    - summary[m, "true labels"]["test_accuracy"]
                )
                for m in MODELS
            ),
            "<=",
            DECAY_EFFECT,
            " pts",
            "the larger model's change",
        )
    )
    return figures, verdicts


def _slowdown(model: str, summary, epochs: int) -> Verdict:
    true_epochs = summary[model, "true labels"]["epochs_to_fit"]
    random_epochs = summary[model, "random labels"]["epochs_to_fit"]
    note = ""
    ratio = random_epochs / true_epochs
    if not np.isfinite(ratio):
        ratio, note = float("nan"), f"not both fitted within {epochs} epochs"
    return Verdict(
        f"random labels cost a small factor ({model})",
        f"random labels take {SLOWER[0]:g}–{SLOWER[1]:g}x the epochs of true labels to fit",
        ratio,
        "between",
        SLOWER,
        "x",
        note,
    )


def _median_run(runs: list[Run], model: str, condition: str) -> dict:
    group = sorted(
        (r for r in runs if (r.model, r.condition) == (model, condition)), key=lambda r: r.epochs_to_fit
    )
    chosen = group[len(group) // 2]
    return {
        "model": model,
        "condition": condition,
        "curve_epochs": [c["epoch"] for c in chosen.curve],
        "curve_train_accuracy": [c["train_accuracy"] / 100 for c in chosen.curve],
    }


def _settings(cfg: Config) -> dict:
    return {
        **cfg.__dict__,
        "models": list(MODELS),
        "lr": LR,
        "momentum": MOMENTUM,
        "batch": BATCH,
        "weight_decay_tried": WEIGHT_DECAY,
        "test_size": TEST_SIZE,
    }
