"""What every side experiment shares: verdicts, the result, the target image, one DIP fit, files.

An experiment measures, then judges: each ``Verdict`` holds the paper's claim, the number
measured and the threshold, and computes ``held`` from them, so no verdict is ever written by
hand. Image experiments fit through dip's core (``core.restore_array``) via ``fit_image``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

import numpy as np

from dip_cli.errors import InputError
from dip_cli.settings import FitSettings, InputSettings, NetworkSettings, Settings, StopSettings

# Images that scikit-image ships inside its wheel (the others need a download through pooch).
BUNDLED_IMAGES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
MIN_SIZE = 16
MAX_SIZE = 1024

# progress(label, completed, total): the CLI draws a bar; tests pass nothing.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Verdict:
    """One finding: the paper's claim, what was measured, and whether it held."""

    finding: str
    claim: str
    measured: float
    comparison: str  # ">=", "<=" or "between"
    threshold: float | tuple[float, float]
    unit: str = ""
    note: str = ""  # how to read the figure, e.g. "a lower bound: never reached"

    @property
    def held(self) -> bool:
        m = self.measured
        if math.isnan(m):
            return False  # nothing measurable is nothing shown
        if self.comparison == ">=":
            return m >= self.threshold
        if self.comparison == "<=":
            return m <= self.threshold
        if self.comparison == "between":
            low, high = self.threshold
            return low <= m <= high
        raise ValueError(f"unknown comparison {self.comparison!r}")

    def threshold_text(self) -> str:
        if self.comparison == "between":
            low, high = self.threshold
            return f"{low:g}–{high:g}{self.unit}"
        return f"{self.comparison} {self.threshold:g}{self.unit}"

    def measured_text(self) -> str:
        text = "n/a" if math.isnan(self.measured) else f"{self.measured:.3g}{self.unit}"
        return f"{text} ({self.note})" if self.note else text

    def as_dict(self) -> dict:
        return {
            "finding": self.finding,
            "claim": self.claim,
            "measured": _finite_or_none(self.measured),
            "measured_text": self.measured_text(),
            "comparison": self.comparison,
            "threshold": list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold,
            "held": self.held,
        }


@dataclass
class Result:
    """What an experiment measured and wrote."""

    name: str
    settings: dict
    figures: dict[str, float]  # label -> number, shown in the table and saved in results.json
    verdicts: list[Verdict]
    rows: list[dict]  # the per-step CSV
    paths: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def all_held(self) -> bool:
        return all(v.held for v in self.verdicts)


# --- inputs ----------------------------------------------------------------------------------


def load_target(image: str, size: int) -> np.ndarray:
    """``image`` (a file, or a bundled scikit-image name) centre-cropped square, resized to ``size``."""
    check_size(size)
    path = Path(image)
    if path.exists():
        from dip_cli.io import load_image

        pixels = load_image(path).pixels
    elif image in BUNDLED_IMAGES:
        from skimage import data

        raw = getattr(data, image)()
        pixels = (raw[..., None] if raw.ndim == 2 else raw[..., :3]).astype(np.float32) / 255.0
    else:
        raise InputError(
            f"--image {image!r} is neither a file nor a bundled image; give a path or one of: "
            + ", ".join(BUNDLED_IMAGES)
        )
    return square_crop(pixels, size)


def square_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """The centred square, resized (anti-aliased) to ``size`` x ``size``, float32 in [0, 1]."""
    from skimage.transform import resize

    side = min(pixels.shape[:2])
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    square = pixels[top : top + side, left : left + side]
    if side != size:
        square = resize(square, (size, size), anti_aliasing=side > size)
    return np.clip(square, 0, 1).astype(np.float32)


def check_size(size: int) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")


def prepare_out_dir(out: Path, image: str | None = None) -> Path:
    """Create ``out``; refuse a file there, or a folder holding the input image (never overwrite inputs)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    if image is not None and Path(image).exists() and Path(image).resolve().parent == out.resolve():
        raise InputError(f"--out {out} holds the input image {image}; choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def setup_device(name: str, threads: int | None, pixels: int):
    """Resolve ``--device`` and set CPU threads (default: dip's rule for the image size)."""
    from dip_cli import resources

    device = resources.resolve_device(name)
    resources.configure(device, threads or resources.default_threads(pixels))
    return device


# --- one DIP fit -----------------------------------------------------------------------------


def fit_image(
    kind: str,
    options: dict,
    target: np.ndarray,
    fit: FitSettings,
    *,
    seed: int,
    device: str,
    threads: int | None = None,
    input_kind: str = "noise",
    input_depth: int = 32,
    operator=None,
    reference: np.ndarray | None = None,
    on_snapshot: Callable[[int, np.ndarray], None] | None = None,
    snapshot_every: int = 0,
    progress: Progress | None = None,
    label: str = "",
) -> list[dict]:
    """Fit network ``kind`` to ``target`` (fixed budget) through dip's core.

    ``operator`` is what degraded the target (default: none, the identity; a ``Mask`` makes the
    fit an inpainting). Returns the loop's per-iteration rows (loss, psnr_reference vs
    ``reference``...). The same seed gives the same weights and the same code z whatever the
    target, so curves compare.
    """
    from dip_cli.core import restore_array
    from dip_cli.operators import Identity, Mask
    from dip_cli.options import RunOptions
    from dip_cli.progress import CallbackObserver

    operator = operator if operator is not None else Identity()
    settings = Settings(
        task="inpaint" if isinstance(operator, Mask) else "denoise",
        network=NetworkSettings(kind, dict(options)),
        input=InputSettings(input_kind, input_depth),
        fit=fit,
        stop=StopSettings(rule="fixed"),
        name=f"experiment network {kind}",
    )
    observer = CallbackObserver(lambda s: progress(label, s.iteration, s.iters)) if progress else None
    run_options = RunOptions(
        seed=seed, device=device, threads=threads, save_every=snapshot_every or 1, observer=observer
    )
    _, record = restore_array(
        target,
        operator,
        settings,
        run_options,
        reference=reference,
        on_snapshot=on_snapshot if snapshot_every else None,
    )
    return record.history


# --- reading curves --------------------------------------------------------------------------


def first_at_or_below(iterations: Sequence[int], values: Sequence[float], level: float) -> float:
    """The first iteration whose value is <= ``level``; infinity if none is."""
    for iteration, value in zip(iterations, values, strict=True):
        if value <= level:
            return float(iteration)
    return math.inf


def value_at(iterations: Sequence[int], values: Sequence[float], iteration: int) -> float:
    """The value at ``iteration`` (or the last one before it)."""
    index = int(np.searchsorted(np.asarray(iterations), iteration, side="right")) - 1
    return float(values[max(index, 0)])


# --- files -----------------------------------------------------------------------------------


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    return path


def write_results(out: Path, result: Result, device: str) -> Path:
    """``out``/results.json: settings, figures, verdicts, versions, device, elapsed seconds."""
    path = result.paths["results"] = out / "results.json"
    payload = {
        "experiment": result.name,
        "settings": _plain(result.settings),
        "figures": {k: _finite_or_none(v) for k, v in result.figures.items()},
        "verdicts": [v.as_dict() for v in result.verdicts],
        "all_held": result.all_held,
        "versions": versions(),
        "device": device,
        "threads": _threads(),
        "seconds": round(result.seconds, 2),
        "files": {k: str(p) for k, p in result.paths.items()},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def versions() -> dict:
    import torch

    from dip_cli import __version__

    found = {"python": platform.python_version(), "dip": __version__, "torch": torch.__version__}
    found["numpy"] = np.__version__
    for module in ("sklearn", "skimage", "matplotlib"):
        with contextlib.suppress(ImportError):
            found[module] = __import__(module).__version__
    return found


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(settings) -> dict:
    data = asdict(settings) if is_dataclass(settings) else dict(settings)
    return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
