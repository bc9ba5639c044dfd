"""random-weights: an untrained, random conv net's features already describe an image.

He, Wang & Hopcroft, "A Powerful Generative Model Using Random Weights for the Deep Image
Representation" (NeurIPS 2016), the inversion part. A VGG-like stack of 3x3 convs + ReLU with
average pooling between stages keeps its random (Kaiming) initial weights; pixels are
optimised from noise until their features at depth d match the image's, and the PSNR of the
result against the image should fall as d grows. This optimises pixels, not a generator's
weights, so it is its own short loop, not DIP's fit loop. (The paper's texture synthesis is
not included: we found no trustworthy number to judge it by.)
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
    load_target,
    prepare_out_dir,
    setup_device,
    write_csv,
    write_results,
)

STAGES = (32, 64, 128, 128)  # two convs per stage, 2x2 average pooling between stages
DEPTHS = (1, 2, 4, 6, 8)  # conv layers whose features are matched
LR = 0.05
SHALLOW_DB = 25.0  # depth-1 features invert the image to at least this PSNR (our bar)
MONOTONE_SLACK_DB = 0.5  # PSNR may rise by at most this between neighbouring depths
COLUMNS = ("depth", "iteration", "loss", "psnr")


@dataclass
class Config:
    image: str = "astronaut"
    size: int = 64
    iters: int = 500
    seed: int = 0
    out: Path = Path("experiments/random-weights")
    device: str = "auto"
    threads: int | None = None


QUICK = {"size": 32, "iters": 10}


def run(cfg: Config, progress: Progress | None = None) -> Result:
    import torch

    from dip_cli.operators import to_pixels, to_tensor

    timer = Timer()
    image = load_target(cfg.image, cfg.size)
    out = prepare_out_dir(cfg.out, cfg.image)
    device = setup_device(cfg.device, cfg.threads, cfg.size * cfg.size)
    target = to_tensor(image).to(device)
    net = random_features(image.shape[2], cfg.seed).to(device)

    rows: list[dict] = []
    strip: list[tuple[str, np.ndarray]] = [("image", image)]
    for depth in DEPTHS:
        with torch.no_grad():
            wanted = net(target, depth)[-1]
        found, curve = optimise_pixels(
            lambda x, depth=depth, wanted=wanted: _relative_mse(net(x, depth)[-1], wanted),
            target,
            cfg,
            progress,
            f"invert depth {depth}",
        )
        rows += [{"depth": depth, **r} for r in curve]
        strip.append((f"from depth {depth}", to_pixels(found)))

    figures, verdicts = judge(rows)
    result = Result("random-weights", _settings(cfg), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "curves.csv", rows, COLUMNS)
    from dip_cli.experiments import plots

    result.paths["plot"] = plots.random_weights(out / "random-weights.png", rows, strip)
    write_results(out, result, str(device))
    return result


def random_features(channels: int, seed: int):
    """The untrained VGG-like net; ``net(x, depth)`` returns the ReLU features of convs 1..depth."""
    import torch
    from torch import nn

    class RandomVGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [channels] + [w for w in STAGES for _ in range(2)]
            self.convs = nn.ModuleList(
                nn.Conv2d(a, b, 3, padding=1, padding_mode="reflect") for a, b in itertools.pairwise(widths)
            )
            for conv in self.convs:  # Kaiming: feature scale kept through the ReLUs
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
            self.requires_grad_(False)

        def forward(self, x: torch.Tensor, depth: int) -> list[torch.Tensor]:
            features = []
            for i, conv in enumerate(self.convs[:depth]):
                if i and i % 2 == 0:
                    x = nn.functional.avg_pool2d(x, 2)
                x = torch.relu(conv(x))
                features.append(x)
            return features

    torch.manual_seed(seed)
    return RandomVGG()


def optimise_pixels(loss_of, like, cfg: Config, progress: Progress | None, label: str):
    """Adam on the logits of an image that starts as uniform noise; returns it and its curve."""
    import torch

    generator = torch.Generator().manual_seed(cfg.seed)
    start = torch.rand(like.shape, generator=generator).clamp(0.01, 0.99).to(like.device)
    logits = torch.logit(start).requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=LR)
    pending = []
    for step in range(1, cfg.iters + 1):
        x = torch.sigmoid(logits)
        loss = loss_of(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            pending.append(torch.stack([loss.detach(), _psnr(x.detach(), like)]))
        if progress and (step % 25 == 0 or step == cfg.iters):
            progress(label, step, cfg.iters)
    values = torch.stack(pending).tolist()  # one host sync per run
    curve = [{"iteration": i + 1, "loss": v[0], "psnr": v[1]} for i, v in enumerate(values)]
    return torch.sigmoid(logits).detach(), curve


def judge(rows: list[dict]) -> tuple[dict[str, float], list[Verdict]]:
    """Figures and verdicts from the inversion curves alone."""
    final = {d: [r for r in rows if r["depth"] == d][-1]["psnr"] for d in DEPTHS}
    figures: dict[str, float] = {f"inversion from depth {d}: PSNR (dB)": final[d] for d in DEPTHS}
    psnrs = [final[d] for d in DEPTHS]
    verdicts = [
        Verdict(
            "random features invert",
            f"depth-1 random features recover the image (our bar: >= {SHALLOW_DB:g} dB)",
            final[DEPTHS[0]],
            ">=",
            SHALLOW_DB,
            " dB",
        ),
        Verdict(
            "deeper is blurrier",
            f"reconstruction PSNR falls with depth (no rise > {MONOTONE_SLACK_DB:g} dB)",
            max(b - a for a, b in itertools.pairwise(psnrs)),
            "<=",
            MONOTONE_SLACK_DB,
            " dB",
            "the largest rise between neighbouring depths",
        ),
    ]
    return figures, verdicts


def _relative_mse(a, b):
    return ((a - b) ** 2).mean() / (b**2).mean().clamp_min(1e-12)


def _psnr(x, y):
    import torch

    return -10 * torch.log10(((x - y) ** 2).mean().clamp_min(1e-12))


def _settings(cfg: Config) -> dict:
    return {**cfg.__dict__, "stages": list(STAGES), "depths": list(DEPTHS), "lr": LR}
