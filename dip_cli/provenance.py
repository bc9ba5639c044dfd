"""What a restoration records about itself: its ``Record``, the fingerprint a resume must match,
the versions and the wall clock that run.json keeps, and how several fits' records combine."""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass, field, fields

import numpy as np

from dip_cli import __version__
from dip_cli.metrics import psnr, psnr_from_mse, ssim
from dip_cli.settings import Settings


@dataclass
class Record:
    """How one restoration went: saved in run.json, shown in summaries."""

    iterations: int  # steps run in total
    selected_iteration: int  # the step whose output was kept
    stop_reason: str  # "early-stop" | "budget"
    seconds: float  # wall time, over all sessions of a resumed run (tiles side by side count once)
    psnr_input: float  # A(output) vs the observation, on the observed entries
    resumed_from: int = 0
    psnr_reference: float | None = None
    ssim_reference: float | None = None
    psnr_reference_input: float | None = None  # the task's baseline (e.g. bicubic for sr) vs the reference
    history: list[dict] = field(default_factory=list, repr=False)  # per-iteration metrics (metrics.csv)

    def as_dict(self) -> dict:
        """JSON-ready figures (the history stays out): NaN as None."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}

    def score(self, pixels: np.ndarray, reference: np.ndarray | None, baseline: np.ndarray | None) -> None:
        """With the clean ``reference``: PSNR and SSIM of the result, and PSNR of the ``baseline``
        (what a user has without dip: the input, or bicubic for super-resolution)."""
        if reference is None:
            return
        self.psnr_reference = psnr(pixels, reference)
        self.ssim_reference = ssim(pixels, reference)
        if baseline is not None:
            self.psnr_reference_input = psnr(baseline, reference)


def combine(records: list[dict], weights: list[float], unit: str) -> Record:
    """Several fits' records (``Record.as_dict``) as one: work summed, the fits' MSE vs the input
    averaged with ``weights`` (a tile's area, or equal for the fits of one tile)."""
    mse = float(np.average([10 ** (-r["psnr_input"] / 10) for r in records], weights=weights))
    stops = [r["stop_reason"] for r in records]
    if len(set(stops)) == 1:
        stop = stops[0]
    else:
        early = sum(s.startswith("early-stop") for s in stops)
        stop = f"early-stop ({early} of {len(stops)} {unit})"
    return Record(
        iterations=sum(r["iterations"] for r in records),
        selected_iteration=sum(r["selected_iteration"] for r in records),
        stop_reason=stop,
        seconds=round(sum(r["seconds"] for r in records), 2),
        psnr_input=psnr_from_mse(mse),
        resumed_from=sum(r["resumed_from"] for r in records),
    )


def fingerprint(y: np.ndarray, operator, settings: Settings, seed: int) -> dict:
    """What must match for a run folder to be resumed: the same observation (H, W, C), operator,
    settings and seed.

    The observation is hashed one channel plane at a time, as float32: the bytes of its
    (1, C, H, W) tensor in order, without a whole-image copy (0.29 GB for a 24 MP photo).
    Run folders written by earlier versions hashed that tensor; the digest is the same.
    """
    digest = hashlib.sha256()
    for c in range(y.shape[2]):
        digest.update(np.ascontiguousarray(y[:, :, c], dtype=np.float32))
    for key, buffer in operator.state_dict().items():
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(buffer.cpu().numpy()))
    return {
        "observation_sha256": digest.hexdigest(),
        "operator": operator.describe(),
        "settings": json.dumps(settings.essentials(), sort_keys=True),
        "seed": seed,
    }


def versions() -> dict:
    """The software a run ran on, for run.json."""
    import torch

    return {
        "dip_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
    }


class Clock:
    """Wall time over the sessions of a resumed run: the ``earlier`` sessions' seconds plus this
    one's so far."""

    def __init__(self, earlier: float = 0.0) -> None:
        self.earlier = float(earlier)
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return round(self.earlier + time.perf_counter() - self.started, 2)
