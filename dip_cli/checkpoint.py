"""Atomic checkpoints: everything needed to continue a run bit-for-bit.

A checkpoint is a plain dict of tensors and Python values (network and optimiser state, the
fixed code z, the jitter RNG state, the EMA, the early-stop window, the iteration count and
the resolved settings). It is written to a temporary file and renamed, so a kill during the
write leaves the previous checkpoint intact, and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from dip_cli.errors import InputError

FORMAT_VERSION = 1


def save_checkpoint(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".checkpoint.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT_VERSION, **payload}, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}. Start over with --overwrite") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise InputError(
            f"checkpoint {path} was written by an incompatible version; start over with --overwrite"
        )
    return payload
