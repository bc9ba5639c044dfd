"""architectures: which networks carry the prior? (DIP, "Inpainting using different depths and
architectures")

The paper's setting (the default, ``task = "inpaint"``): large holes are cut out of an image and
filled by networks fitted to the known pixels only, with the paper's large-hole recipe
(meshgrid input of depth 2, nearest upsampling, z-jitter 0.03, Adam 0.01, no EMA). The networks
are the paper's: encoder-decoders (hourglasses, no skip connections) of depth 2, 4 and 6, a
U-Net of depth 5 and a ResNet of 8 blocks, the last two at the deepest hourglass's parameter
count (within 5%), so that depth and connections differ, not size. The score is the PSNR
inside the holes against the original. The paper's findings: "much better inpainting results
can be obtained by using deeper random networks. However, adding skip connections to ResNet in
U-Net is highly detrimental." Scikit-image's biharmonic inpainting is shown as a classical
reference, with no verdict on it.

Holes: what the comparison needs is holes wider than the shallow networks' receptive fields
(measured: 23 px for the 2-level hourglass, 33 px for the ResNet, 107 px and more for the rest),
as the paper's library holes (30-60 px wide at full resolution) are. By default: a fixed drawing
of one wide band and one large blob (about 26% of the image; 36 px and 38 x 46 px at 128 px),
the same for every image and seed. ``--mask`` takes a file (white = known) instead.

``task = "denoise"`` keeps the earlier, second result: the same noisy image (sigma 25) denoised
by seven networks with DIP's denoising recipe (jitter 1/30, EMA 0.99). That is not the paper's
setting (every convolutional net denoises), and its thresholds are ours (``MARGIN_DB``, ``GAIN_DB``,
``NO_GAIN_DB``, fixed before the runs), not the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dip_cli.errors import InputError
from dip_cli.experiments.common import (
    Progress,
    Result,
    Timer,
    Verdict,
    fit_image,
    load_target,
    prepare_out_dir,
    setup_device,
    square_crop,
    write_csv,
    write_results,
)
from dip_cli.settings import FitSettings

TASKS = ("inpaint", "denoise")

# --- inpainting (the paper's setting) --------------------------------------------------------
# Width: 32 channels per level by default (the paper's 128 costs 16x per step: a GPU's job, run
# with --width 128 --iters 5000). The U-Net's and the ResNet's widths are chosen to match the
# 6-level hourglass's parameter count: at 32, U-Net 29 and ResNet 34 channels give 161 k and
# 170 k parameters against the hourglass's 166 k.
DEFAULT_WIDTH = 32


def inpaint_networks(width: int = DEFAULT_WIDTH) -> dict[str, tuple[str, dict]]:
    """The five networks at ``width`` channels per level, U-Net and ResNet matched in size."""

    def hourglass(depth: int) -> tuple[str, dict]:
        return "hourglass", {"channels_down": (width,) * depth, "upsample": "nearest"}

    target = _parameters(*hourglass(6))
    unet = _matched(target, lambda w: ("unet", {"channels_down": (w,) * 5, "upsample": "nearest"}), width)
    resnet = _matched(target, lambda w: ("resnet", {"channels": w, "blocks": 8}), width)
    return {
        "hourglass-2": hourglass(2),
        "hourglass-4": hourglass(4),
        "hourglass-6": hourglass(6),
        "unet-5": unet,
        "resnet-8": resnet,
    }


def _parameters(kind: str, options: dict) -> int:
    from dip_cli.networks import build_network, count_parameters

    return count_parameters(build_network(kind, 2, 3, **options))  # meshgrid input: 2 channels


def _matched(target: int, network, width: int) -> tuple[str, dict]:
    """The network at the width whose parameter count is nearest ``target`` (counts grow with
    the width, so the search stops once they pass it)."""
    best, best_gap = None, None
    for w in range(max(1, width // 2), 2 * width + 1):
        candidate = network(w)
        gap = _parameters(*candidate) - target
        if best_gap is None or abs(gap) < abs(best_gap):
            best, best_gap = candidate, gap
        if gap > 0:
            break
    return best


SHALLOW, DEEP = "hourglass-2", "hourglass-6"
WITH_SKIPS = ("unet-5", "resnet-8")
# Thresholds fixed before the first run, from the paper's words: "much better" and "highly
# detrimental" read as at least 1 dB inside the holes, on the final output (the paper shows
# final outputs; with no noise in the known pixels there is nothing to overfit).
DEPTH_GAIN_DB = 1.0
SKIP_LOSS_DB = 1.0
INPAINT_FIT = {"lr": 0.01, "reg_noise_std": 0.03, "ema": 0.0}
SNAPSHOTS = 30  # hole PSNR measured this many times per fit

# --- denoising (the second result; its thresholds fixed before the runs) ------------------------
DENOISE_NETWORKS = {
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
NO_JITTER = ("pixel-mlp",)  # jitter as large as the code's spread leaves a per-pixel model nothing to fit
SIGMA = 25
MARGIN_DB = 1.5  # encoder-decoders above ResNet / U-Net
GAIN_DB = 3.0  # encoder-decoders above the noisy input
NO_GAIN_DB = 1.0  # pixel MLP and direct optimisation: at most this above the input

COLUMNS = ("network", "iteration", "loss", "psnr_clean", "psnr_hole")
DEFAULT_SIZE = {"inpaint": 128, "denoise": 64}


@dataclass
class Config:
    image: str = "astronaut"
    task: str = "inpaint"
    mask: str | None = None  # white = known; default: the fixed large-hole drawing
    size: int | None = None  # default: DEFAULT_SIZE[task]
    iters: int = 1500
    width: int = DEFAULT_WIDTH  # channels per level (inpaint); the paper's: 128
    seed: int = 0
    out: Path = Path("experiments/architectures")
    device: str = "auto"
    threads: int | None = None


QUICK = {"size": 32, "iters": 10}


def run(cfg: Config, progress: Progress | None = None) -> Result:
    if cfg.task not in TASKS:
        raise InputError(f"--task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    if cfg.task == "denoise" and cfg.mask is not None:
        raise InputError("--mask is for --task inpaint; denoising has no holes")
    if cfg.task == "denoise" and cfg.width != DEFAULT_WIDTH:
        raise InputError("--width is for --task inpaint; the denoising comparison keeps its networks")
    if isinstance(cfg.width, bool) or not isinstance(cfg.width, int) or not 4 <= cfg.width <= 256:
        raise InputError(f"--width must be an integer from 4 to 256, got {cfg.width!r}")
    size = cfg.size or DEFAULT_SIZE[cfg.task]
    clean = load_target(cfg.image, size)
    if cfg.task == "inpaint":
        known = load_mask(cfg.mask, size) if cfg.mask else large_holes(size, size)
    out = prepare_out_dir(cfg.out, cfg.image)
    device = setup_device(cfg.device, cfg.threads, size * size)
    if cfg.task == "inpaint":
        return _run_inpaint(cfg, clean, known, out, device, progress)
    return _run_denoise(cfg, clean, out, device, progress)


# --- inpainting ------------------------------------------------------------------------------


def large_holes(height: int, width: int) -> np.ndarray:
    """The default mask (True = known): strokes and blobs like the paper's library mask, drawn
    in fractions of the image so every size and image gets the same holes (about 26%)."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(mask)
    side = min(height, width)

    def xy(points):
        return [(x * width, y * height) for x, y in points]

    # Holes as wide as the paper's library holes at full resolution (30-60 px): wider than
    # the receptive fields of the 2-level hourglass (23 px) and the ResNet (33 px), which is
    # what the paper's comparison is about. Their centres are 18+ px from any known pixel.
    draw.line(xy([(0.30, 0.0), (0.34, 0.62)]), fill=0, width=round(0.28 * side))
    draw.ellipse(xy([(0.60, 0.46), (0.90, 0.82)]), fill=0)
    return np.asarray(mask) >= 128


def load_mask(path: str, size: int) -> np.ndarray:
    """A mask file (white = known), cropped and resized exactly as ``load_target`` does the image."""
    if not Path(path).is_file():
        raise InputError(f"--mask {path} does not exist")
    from dip_cli.io import load_image

    pixels = load_image(Path(path)).pixels.mean(axis=2, keepdims=True)
    known = square_crop(pixels, size)[..., 0] >= 0.5
    if known.all() or not known.any():
        raise InputError(f"--mask {path} has {'no holes' if known.all() else 'no known pixels'}")
    return known


def _run_inpaint(cfg: Config, clean, known, out: Path, device, progress) -> Result:
    import torch

    from dip_cli.metrics import psnr
    from dip_cli.operators import Mask, biharmonic_fill

    timer = Timer()
    hole = ~known
    observed = clean * known[..., None]
    every = max(cfg.iters // SNAPSHOTS, 1)
    rows: list[dict] = []
    outputs: dict[str, np.ndarray] = {}
    networks = inpaint_networks(cfg.width)
    for network, (kind, options) in networks.items():
        scores: dict[int, float] = {}

        def score(iteration: int, pixels: np.ndarray, scores=scores, network=network) -> None:
            scores[iteration] = psnr(pixels[hole], clean[hole])
            outputs[network] = pixels

        history = fit_image(
            kind,
            options,
            observed,
            FitSettings(iters=cfg.iters, **INPAINT_FIT),
            seed=cfg.seed,
            device=device.type,
            threads=cfg.threads,
            input_kind="meshgrid",
            input_depth=2,
            operator=Mask(torch.from_numpy(known)),
            on_snapshot=score,
            snapshot_every=every,
            progress=progress,
            label=network,
        )
        loss = {r["iteration"]: r["loss"] for r in history}
        rows += [
            {"network": network, "iteration": t, "loss": loss.get(t, float("nan")), "psnr_hole": db}
            for t, db in sorted(scores.items())
        ]
    classical = biharmonic_fill(observed, known)
    baselines = {"biharmonic (scikit-image)": psnr(classical[hole], clean[hole])}
    figures, verdicts = judge_inpaint(rows, baselines)
    figures["holes (% of the image)"] = 100 * float(hole.mean())
    settings = _settings(cfg, networks)
    result = Result("architectures", settings, figures, verdicts, rows, seconds=timer.seconds())
    result.paths["csv"] = write_csv(out / "curves.csv", rows, COLUMNS)
    from dip_cli.experiments import plots

    strip = [("holes", np.where(known[..., None], clean, 1.0)), ("biharmonic", classical)]
    strip += [(name, outputs[name]) for name in networks] + [("original", clean)]
    result.paths["plot"] = plots.architectures_inpaint(out / "architectures.png", rows, strip)
    write_results(out, result, str(device))
    return result


def judge_inpaint(rows: list[dict], baselines: dict[str, float]) -> tuple[dict[str, float], list[Verdict]]:
    """Final and best PSNR in the holes per network, and the paper's two findings, from the curves."""
    final: dict[str, float] = {}
    figures: dict[str, float] = {}
    for network in dict.fromkeys(r["network"] for r in rows):
        curve = [r for r in rows if r["network"] == network]
        db = np.array([r["psnr_hole"] for r in curve])
        final[network] = float(db[-1])
        figures[f"{network}: final PSNR in the holes (dB)"] = final[network]
        figures[f"{network}: best PSNR in the holes (dB)"] = float(db.max())
    for name, db in baselines.items():
        figures[f"{name}: PSNR in the holes (dB)"] = db
    verdicts = [
        Verdict(
            "deeper inpaints better",
            f"'much better inpainting results can be obtained by using deeper random networks': "
            f"{DEEP} >= {SHALLOW} + {DEPTH_GAIN_DB:g} dB in the holes",
            final[DEEP] - final[SHALLOW],
            ">=",
            DEPTH_GAIN_DB,
            " dB",
            f"{DEEP} minus {SHALLOW}",
        ),
        Verdict(
            "skip connections hurt",
            "'adding skip connections to ResNet in U-Net is highly detrimental': "
            f"{DEEP} >= both + {SKIP_LOSS_DB:g} dB in the holes",
            final[DEEP] - max(final[n] for n in WITH_SKIPS),
            ">=",
            SKIP_LOSS_DB,
            " dB",
            f"{DEEP} minus the better of U-Net and ResNet",
        ),
    ]
    return figures, verdicts


# --- denoising (second result) ---------------------------------------------------------------


def _run_denoise(cfg: Config, clean, out: Path, device, progress) -> Result:
    from dip_cli.metrics import psnr
    from dip_cli.operators import simulate_noise

    timer = Timer()
    noisy = simulate_noise(clean, SIGMA, seed=cfg.seed)
    rows: list[dict] = []
    for network, (kind, net_options) in DENOISE_NETWORKS.items():
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
    """Denoising: best / iteration of best / final PSNR per network, and the verdicts on our thresholds."""
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


def _settings(cfg: Config, networks: dict | None = None) -> dict:
    """The run's settings for results.json; ``networks``: the inpainting run's five."""
    common = {**cfg.__dict__, "size": cfg.size or DEFAULT_SIZE[cfg.task], "lr": FitSettings().lr}
    if cfg.task == "denoise":
        del common["width"]
    if cfg.task == "inpaint":
        return {
            **common,
            "networks": {k: [kind, opts] for k, (kind, opts) in networks.items()},
            "parameters": {k: _parameters(*net) for k, net in networks.items()},
            "input": "meshgrid, depth 2",
            **INPAINT_FIT,
            "mask": cfg.mask or "large_holes (fixed drawing)",
        }
    return {
        **common,
        "networks": {k: [kind, opts] for k, (kind, opts) in DENOISE_NETWORKS.items()},
        "sigma": SIGMA,
        "reg_noise_std": 1 / 30,
        "no_jitter": list(NO_JITTER),
        "ema": 0.99,
    }
