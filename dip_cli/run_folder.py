"""The run folder: what makes a run inspectable and resumable, and who may write it.

::

    checkpoint.pt     everything to continue bit-for-bit, and the settings whole (atomic writes)
    metrics.csv       one row per iteration: loss, PSNR vs input, ES-WMV statistic, PSNR vs ref
    run.json          settings, versions, device, seed, sizes, times, status, the result record
    snapshots/        the smoothed output every ``save_every`` iterations
    .lock             held (flock) by the one process writing the folder

The resume contract: a checkpoint is resumed only when asked (``resume=True``) and only if its
fingerprint (the observation, the operator, the settings and the seed) matches; metrics past
the checkpoint are dropped, since the resumed run writes them again. Without ``resume`` an
earlier run is never silently reused or replaced: ``overwrite=True`` clears what dip wrote
(never a user's own files). The lock is an advisory ``flock``: the kernel releases it when
its process ends, even by kill -9, so a stale lock never blocks a rerun.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dip_cli.errors import InputError
from dip_cli.io import Picture, check_output_path, save_image, write_text_atomic
from dip_cli.metrics import METRIC_COLUMNS
from dip_cli.progress import Observer


class RunFolder:
    """One run's folder. Use as a context manager, or call ``close()``: it holds the lock."""

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        self.overwrite = overwrite
        self._lock_fd: int | None = None

    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    metrics = property(lambda self: self.path / "metrics.csv")
    info_path = property(lambda self: self.path / "run.json")
    snapshots = property(lambda self: self.path / "snapshots")

    def check(self) -> None:
        """Fail before any work if the folder cannot be made here (a file in the way)."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"the run folder {self.path} is a file; remove it or give another run folder")
        check_output_path(self.path / "run.json", "the run folder")

    def start(self, fingerprint: dict, device) -> dict | None:
        """Lock the folder and apply the resume contract: the checkpoint to resume, or None."""
        self.check()
        self._acquire()
        if self.checkpoint.exists() and self.resume:
            state = load_checkpoint(self.checkpoint, device)
            if state["fingerprint"] != fingerprint:
                changed = [k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k]]
                raise InputError(
                    f"the checkpoint in {self.path} was made with a different {', '.join(changed)}; "
                    "resume with the same inputs and options, or start over with --overwrite"
                )
            self._truncate_metrics(state["fit"]["iteration"])
            return state
        earlier = self.checkpoint.exists() or (self.tiles / "plan.json").exists()
        if earlier and not self.overwrite and not (self.resume and not self.checkpoint.exists()):
            raise InputError(
                f"{self.path} holds an earlier run of this image; pass --resume to continue it "
                "or --overwrite to start over"
            )
        self._clear()
        self.metrics.write_text(",".join(METRIC_COLUMNS) + "\n")
        return None

    # --- tiled runs: one sub-folder per tile, each a run folder of its own ------------------------

    tiles = property(lambda self: self.path / "tiles")

    @property
    def resumable(self) -> bool:
        """Whether an earlier run left something to resume: a checkpoint, or a tiled run's plan."""
        return self.checkpoint.exists() or (self.tiles / "plan.json").exists()

    def start_tiles(self, plan: dict) -> bool:
        """Lock the folder and apply the resume contract to a tiled run (``plan``: fingerprint
        and layout). True when resuming: finished tiles are kept, the one in progress resumes."""
        self.check()
        self._acquire()
        plan_path = self.tiles / "plan.json"
        saved = _read_json(plan_path)
        if saved is not None and self.resume:
            if saved != json.loads(json.dumps(plan, default=str)):
                raise InputError(
                    f"the tiles in {self.path} were made with other inputs, options or tiles; "
                    "resume with the same ones, or start over with --overwrite"
                )
            return True
        if (saved is not None or self.checkpoint.exists()) and not self.overwrite:
            raise InputError(
                f"{self.path} holds an earlier run of this image; pass --resume to continue it "
                "or --overwrite to start over"
            )
        self._clear()
        self.tiles.mkdir(parents=True)
        write_text_atomic(plan_path, json.dumps(plan, indent=2, default=str))
        return False

    def tile(self, index: int) -> RunFolder:
        """Tile ``index``'s run folder: it resumes its own checkpoint (the plan was checked)."""
        return RunFolder(self.tiles / f"{index:04d}", resume=True, overwrite=True)

    def save_result(self, pixels: np.ndarray, weights: dict | None = None) -> None:
        """A finished tile's output, float32 exactly, so a resumed run blends the same values; it
        replaces the tile's checkpoint (mostly the code z: 33 MB at 512 px), which is removed.
        ``weights``: the trained network, kept for the next tile's warm start."""
        import tempfile

        fd, tmp_name = tempfile.mkstemp(prefix=".result.", suffix=".npy", dir=self.path)
        with os.fdopen(fd, "wb") as f:
            np.save(f, pixels.astype(np.float32, copy=False))
        os.replace(tmp_name, self.path / "result.npy")
        if weights is not None:
            save_checkpoint(self.path / "weights.pt", {"net": weights})
        self.checkpoint.unlink(missing_ok=True)

    def load_weights(self) -> dict | None:
        path = self.path / "weights.pt"
        return load_checkpoint(path, "cpu")["net"] if path.exists() else None

    def drop_weights(self) -> None:
        (self.path / "weights.pt").unlink(missing_ok=True)

    def load_result(self) -> np.ndarray | None:
        """The finished tile's output, or None while it is not finished."""
        path = self.path / "result.npy"
        info = self.read_info() or {}
        if not path.exists() or info.get("status") != "finished":
            return None
        return np.load(path)

    # --- writing (only while locked) ----------------------------------------------------------

    def save_checkpoint(self, payload: dict) -> None:
        save_checkpoint(self.checkpoint, payload)

    def append_metrics(self, rows: list[dict]) -> None:
        with open(self.metrics, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            for row in rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def save_snapshot(self, iteration: int, pixels: np.ndarray) -> None:
        save_image(self.snapshots / f"iter_{iteration:06d}.png", Picture(pixels))

    def write_info(self, info: dict) -> None:
        write_text_atomic(self.info_path, json.dumps(info, indent=2, default=str))

    def read_info(self) -> dict | None:
        try:
            info = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------

    def _acquire(self) -> None:
        import fcntl

        if self._lock_fd is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise InputError(
                f"the run folder {self.path} is in use by another dip process"
                + (f" (pid {holder})" if holder else "")
                + "; wait for it to finish, or write this run elsewhere (-o or --run-dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _clear(self) -> None:
        """Remove only what dip writes, never unknown files a user put there."""
        for path in (
            self.checkpoint,
            self.metrics,
            self.info_path,
            self.path / "result.npy",
            self.path / "weights.pt",
        ):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.snapshots, ignore_errors=True)
        shutil.rmtree(self.tiles, ignore_errors=True)

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop rows past the checkpoint: the resumed run writes them again."""
        rows = []
        if self.metrics.exists():
            with open(self.metrics, newline="") as f:
                rows = [row for row in csv.DictReader(f) if int(row["iteration"]) <= iteration]
        with open(self.metrics, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --- checkpoints ------------------------------------------------------------------------------

FORMAT_VERSION = 2  # 2: nested settings, "smoothed" and "stop_reason" in the fit state


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename: a kill mid-write leaves the previous one intact."""
    import tempfile

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".checkpoint.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT_VERSION, **payload}, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, device) -> dict:
    """Load with ``weights_only=True`` (no code runs from a checkpoint file)."""
    import torch

    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}. Start over with --overwrite") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise InputError(
            f"checkpoint {path} was written by an incompatible version; start over with --overwrite"
        )
    return payload


class FitRecorder:
    """A fit's hooks (``fit.Hooks``) onto its run folder, if any, and its progress observer: each
    log point's metrics rows go to metrics.csv and its status to the observer, each checkpoint is
    saved with the wall clock, each snapshot is saved (and handed to ``on_snapshot``); ``status``
    writes run.json's ``info`` with the run's status."""

    def __init__(
        self,
        run: RunFolder | None,
        observer: Observer,
        elapsed: Callable[[], float],  # the run's wall time so far, over its sessions
        info: dict,
        *,
        snapshots: bool = True,
        on_snapshot: Callable[[int, np.ndarray], None] | None = None,
    ) -> None:
        self.run, self.observer, self.elapsed, self.info = run, observer, elapsed, info
        self.snapshots = snapshots and run is not None  # a tile's would be hundreds: none
        self.on_snapshot = on_snapshot

    def hooks(self, checkpoint: dict):
        """``checkpoint``: what each checkpoint holds besides the fit's state (what a resume must
        match, and the code z)."""
        from dip_cli.fit import Hooks

        def log(rows: list[dict], status) -> None:
            if self.run is not None:
                self.run.append_metrics(rows)
            self.observer.update(status)

        def save(fit_state: dict) -> None:
            self.run.save_checkpoint({**checkpoint, "fit": fit_state, "seconds": self.elapsed()})

        return Hooks(
            on_log=log, on_checkpoint=save if self.run is not None else None, on_snapshot=self.snapshot
        )

    def cadence(self, every: int):
        from dip_cli.fit import Cadence

        snapshots = self.snapshots or self.on_snapshot is not None
        return Cadence(
            checkpoint_every=every if self.run is not None else 0, snapshot_every=every if snapshots else 0
        )

    def snapshot(self, iteration: int, image) -> None:
        from dip_cli.operators import to_pixels

        pixels = to_pixels(image)
        if self.snapshots:
            self.run.save_snapshot(iteration, pixels)
        if self.on_snapshot is not None:
            self.on_snapshot(iteration, pixels)

    def status(self, status: str, **figures) -> None:
        if self.run is not None:
            self.run.write_info({**self.info, "status": status, **figures})
