"""architectures: which networks carry the prior? (DIP, Sec. 3 and its architecture study)

The same noisy image (sigma 25) is restored with DIP's standard recipe (z-jitter 1/30, EMA
0.99, Adam 0.01) by: hourglass encoder-decoders of depth 2 and 5, DIP's skip net, a U-Net
with full-width skips, a ResNet without downsampling, a per-pixel MLP of 1x1 convs, and
direct optimisation of the pixels. For each: the best PSNR against the clean image over the
run (an oracle stop), the iteration of the best, and the final PSNR. The pixel MLP gets no
z-jitter: jitter as large as the code's spread leaves a per-pixel model nothing to fit (it
stayed at 11.5 dB, below the noisy input), and the question is whether it ever passes the
input, not whether it can fit at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dip_cli.experiments.common import (
    Progress,
    Result,
    Timer,
    Verdict,
    fit_image,
    load_target,
    prepare_out_dir,
    setup_device,
    write_csv,
    write_results,
)
from dip_cli.settings import FitSettings

NETWORKS = {
    "hourglass-2": ("hourglass", {"channels_down": (32,) * 2}),
    "hourglass-5": ("hourglass", {"channels_down": (32,) * 5}),
    "skip": ("skip", {"channels_down": (32,) * 5, "channels_skip": (4,) * 5}),
    "unet": ("unet", {"channels_down": (32,) * 5}),
    "resnet": ("resnet", {"channels": 32, "blocks": 8}),
    "pixel-mlp": ("pixel-mlp", {"channels": 64, "layers": 4}),
    "pixels": ("pixels", {}),
}
ENCODER_DECODERS = ("hourglass-2", "hourglass-5", "skip")
DEEP_NO_BOTTLENECK = ("unet", "resnet")
NO_STRUCTURE = ("pixel-mlp", "pixels")
NO_JITTER = ("pixel-mlp",)  # see the docstring; the pixel image ignores z anyway
SIGMA = 25
MARGIN_DB = 1.5  # encoder-decoders above ResNet / U-Net
GAIN_DB = 3.0  # encoder-decoders above the noisy input
NO_GAIN_DB = 1.0  # pixel MLP and direct optimisation: at most this above the input
COLUMNS = ("network", "iteration", "loss", "psnr_clean")


@dataclass
class Config:
    image: str = "astronaut"
    size: int = 64
    iters: int = 1500
    seed: int = 0
    out: Path = Path("experiments/architectures")
    device: str = "auto"
    threads: int | None = None


QUICK = {"size": 32, "iters": 30}


def run(cfg: Config, progress: Progress | None = None) -> Result:
    from dip_cli.metrics import psnr
    from dip_cli.operators import simulate_noise

    timer = Timer()
    clean = load_target(cfg.image, cfg.size)
    out = prepare_out_dir(cfg.out, cfg.image)
    noisy = simulate_noise(clean, SIGMA, seed=cfg.seed)
    device = setup_device(cfg.device, cfg.threads, cfg.size * cfg.size)
    rows: list[dict] = []
    for network, (kind, net_options) in NETWORKS.items():
        jitter = 0.0 if network in NO_JITTER else 1 / 30
        history = fit_image(
            kind,
            net_options,
            noisy,
            FitSettings(iters=cfg.iters, reg_noise_std=jitter, ema=0.99),
            seed=cfg.seed,
            device=device.type,
            threads=cfg.threads,
            reference=clean,
            progress=progress,
            label=network,
        )
        rows += [
            {
                "network": network,
                "iteration": r["iteration"],
                "loss": r["loss"],
                "psnr_clean": r["psnr_reference"],
            }
            for r in history
        ]

    input_db = psnr(noisy, clean)
    figures, verdicts = judge(rows, input_db)
    result = Result("architectures", _settings(cfg), figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "curves.csv", rows, COLUMNS)
    from dip_cli.experiments import plots

    result.paths["plot"] = plots.architectures(out / "architectures.png", rows, input_db)
    write_results(out, result, str(device))
    return result


def judge(rows: list[dict], input_db: float) -> tuple[dict[str, float], list[Verdict]]:
    """Best / iteration of best / final PSNR per network, and the verdicts, from the curves."""
    best: dict[str, float] = {}
    figures: dict[str, float] = {"noisy input PSNR (dB)": input_db}
    for network in dict.fromkeys(r["network"] for r in rows):
        curve = [r for r in rows if r["network"] == network]
        db = np.array([r["psnr_clean"] for r in curve])
        best[network] = float(db.max())
        figures[f"{network}: best PSNR (dB)"] = best[network]
        figures[f"{network}: iteration of the best"] = curve[int(db.argmax())]["iteration"]
        figures[f"{network}: final PSNR (dB)"] = float(db[-1])
    weakest_encoder_decoder = min(best[n] for n in ENCODER_DECODERS)
    verdicts = [
        Verdict(
            "encoder-decoders win",
            f"every encoder-decoder beats ResNet and U-Net by >= {MARGIN_DB:g} dB (best PSNR)",
            weakest_encoder_decoder - max(best[n] for n in DEEP_NO_BOTTLENECK),
            ">=",
            MARGIN_DB,
            " dB",
            "weakest encoder-decoder minus the better of the two",
        ),
        Verdict(
            "encoder-decoders denoise",
            f"every encoder-decoder gains >= {GAIN_DB:g} dB over the noisy input",
            weakest_encoder_decoder - input_db,
            ">=",
            GAIN_DB,
            " dB",
            "the weakest one",
        ),
        Verdict(
            "no structure, no prior",
            f"the pixel MLP and direct pixel optimisation gain <= {NO_GAIN_DB:g} dB",
            max(best[n] for n in NO_STRUCTURE) - input_db,
            "<=",
            NO_GAIN_DB,
            " dB",
            "the larger of the two",
        ),
    ]
    return figures, verdicts


def _settings(cfg: Config) -> dict:
    return {
        **cfg.__dict__,
        "networks": {k: [kind, opts] for k, (kind, opts) in NETWORKS.items()},
        "sigma": SIGMA,
        "lr": FitSettings().lr,
        "reg_noise_std": 1 / 30,
        "no_jitter": list(NO_JITTER),
        "ema": 0.99,
    }
