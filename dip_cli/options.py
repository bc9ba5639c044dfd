"""How to run a restoration, as opposed to what to fit (``settings.Settings``): one frozen type.

``RunOptions`` holds the seed, the device and threads, the checkpoint cadence, the tiling, the run
folder and what to do with an earlier run in it, where progress goes, and the image's name in
messages. It is validated once, when it is made; every layer passes it on whole (the CLI, the
array API, batches and tiles make one, nothing re-checks it), and run.json records it beside the
settings. Torch-free, like ``settings``, so the CLI can check its input before importing torch.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dip_cli.errors import InputError
from dip_cli.settings import MIN_TILE

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class RunOptions:
    seed: int = 0  # the network's weights, its code z and the jitter: same seed, same result
    device: str = "auto"  # one of DEVICES; "auto" picks CUDA, then MPS, then the CPU
    threads: int | None = None  # CPU threads of the whole image (None: resources.default_threads)
    save_every: int = 500  # checkpoint and snapshot every N iterations (with a run folder)
    tile: str | int = "auto"  # "auto" | "off" | the largest tile side in pixels
    run_dir: Path | None = None  # the run folder (checkpoints, metrics, run.json); None: none
    resume: bool = False  # continue an earlier run found in run_dir
    overwrite: bool = False  # replace an earlier run (and an existing output)
    name: str = "image"  # the image's name in progress lines and messages
    observer: Any = field(default=None, compare=False, repr=False)  # a progress.Observer, or None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):  # NumPy's too
            raise InputError(f"seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if self.device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise InputError(f"threads must be an integer >= 1, got {self.threads!r}")
        if not _is_int(self.save_every) or self.save_every < 1:
            raise InputError(f"save_every must be an integer >= 1, got {self.save_every!r}")
        object.__setattr__(self, "tile", parse_tile(self.tile))
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir))

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes``, validated again."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """What run.json records: everything but the observer."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "observer"}
        return {**values, "run_dir": None if self.run_dir is None else str(self.run_dir)}


def parse_tile(value: str | int) -> str | int:
    """``--tile`` / ``tile=``: 'auto', 'off' or a side of at least ``MIN_TILE`` pixels."""
    if _is_int(value):
        side = value
    elif isinstance(value, str) and value.strip().lower() in ("auto", "off"):
        return value.strip().lower()
    elif isinstance(value, str) and value.strip().isdigit():
        side = int(value.strip())
    else:
        side = None
    if side is None or side < MIN_TILE:
        raise InputError(f"tile must be 'auto', 'off' or a side of at least {MIN_TILE} px, got {value!r}")
    return side


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
