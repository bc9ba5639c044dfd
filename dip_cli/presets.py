"""Presets: network + fitting settings as data (``models/*.toml``, shipped in the wheel).

A preset file has four tables, every key optional except ``task``::

    task = "denoise"
    description = "..."
    [network]  kind, channels_down, channels_up, channels_skip, upsample
    [input]    kind ("noise" | "meshgrid"), depth
    [fit]      iters, lr, reg_noise_std, ema (0 = off)
    [stop]     rule ("auto" | "fixed"), window, patience, warmup

Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dip_cli.errors import InputError

TASKS = ("denoise", "inpaint", "jpeg", "sr")
STOP_RULES = ("auto", "fixed")
# The networks module (which imports torch) reuses these, so validation stays torch-free.
UPSAMPLE_MODES = ("nearest", "bilinear")
INPUT_KINDS = ("noise", "meshgrid")


@dataclass(frozen=True)
class Preset:
    name: str
    task: str
    description: str = ""
    # network
    network: str = "skip"
    channels_down: tuple[int, ...] = (128,) * 5
    channels_up: tuple[int, ...] = (128,) * 5
    channels_skip: tuple[int, ...] = (4,) * 5
    upsample: str = "bilinear"
    # input code z
    input_kind: str = "noise"
    input_depth: int = 32
    # fitting
    iters: int = 3000
    lr: float = 0.01
    reg_noise_std: float = 1 / 30
    ema: float = 0.99
    # stopping
    stop_rule: str = "auto"
    window: int = 100
    patience: int = 500
    warmup: int = 200
    source: str = field(default="", compare=False)

    def network_options(self) -> dict[str, Any]:
        return {
            "channels_down": list(self.channels_down),
            "channels_up": list(self.channels_up),
            "channels_skip": list(self.channels_skip),
            "upsample": self.upsample,
        }

    def with_overrides(self, **changes: Any) -> Preset:
        """A copy with the given settings replaced (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        merged = dataclasses.replace(self, **changes)
        _validate(merged, merged.source or merged.name)
        return merged

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# TOML table -> {toml key: Preset field}
_SCHEMA: dict[str, dict[str, str]] = {
    "": {"task": "task", "description": "description"},
    "network": {
        "kind": "network",
        "channels_down": "channels_down",
        "channels_up": "channels_up",
        "channels_skip": "channels_skip",
        "upsample": "upsample",
    },
    "input": {"kind": "input_kind", "depth": "input_depth"},
    "fit": {"iters": "iters", "lr": "lr", "reg_noise_std": "reg_noise_std", "ema": "ema"},
    "stop": {"rule": "stop_rule", "window": "window", "patience": "patience", "warmup": "warmup"},
}


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> Preset:
    """A built-in preset by name, or a TOML file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise InputError(f"preset file {candidate} does not exist")
        return _parse(candidate.read_text(encoding="utf-8"), candidate.stem, str(candidate))
    resource = _builtin_dir() / f"{name_or_path}.toml"
    if not resource.is_file():
        raise InputError(
            f"unknown preset {name_or_path!r}; built-in presets: {', '.join(builtin_names())} "
            "(or give the path of a .toml file)"
        )
    return _parse(resource.read_text(encoding="utf-8"), name_or_path, f"built-in {name_or_path}")


def all_presets() -> list[Preset]:
    return [load_preset(name) for name in builtin_names()]


def _builtin_dir():
    return resources.files("dip_cli.models")


def _parse(text: str, name: str, source: str) -> Preset:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"preset {source} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        table = key if isinstance(value, dict) else ""
        entries = value if isinstance(value, dict) else {key: value}
        if table not in _SCHEMA:
            raise InputError(f"preset {source}: unknown table [{table}]; known: {_known_tables()}")
        for entry, entry_value in entries.items():
            if entry not in _SCHEMA[table]:
                where = f"[{table}] " if table else ""
                known = ", ".join(_SCHEMA[table])
                raise InputError(f"preset {source}: unknown key {where}{entry!r}; known: {known}")
            values[_SCHEMA[table][entry]] = entry_value
    if "task" not in values:
        raise InputError(f"preset {source}: missing 'task' (one of {', '.join(TASKS)})")
    for key in ("channels_down", "channels_up", "channels_skip"):
        if key in values:
            values[key] = tuple(values[key]) if isinstance(values[key], list) else values[key]
    if "channels_down" in values and "channels_up" not in values:
        values["channels_up"] = values["channels_down"]
    if "channels_down" in values and "channels_skip" not in values:
        values["channels_skip"] = (4,) * len(values["channels_down"])
    try:
        preset = Preset(name=name, source=source, **values)
    except TypeError as exc:
        raise InputError(f"preset {source}: {exc}") from None
    _validate(preset, source)
    return preset


def _known_tables() -> str:
    return ", ".join(f"[{t}]" for t in _SCHEMA if t)


def _validate(p: Preset, source: str) -> None:
    def fail(message: str) -> None:
        raise InputError(f"preset {source}: {message}")

    if p.task not in TASKS:
        fail(f"task must be one of {', '.join(TASKS)}, got {p.task!r}")
    if not isinstance(p.network, str):
        fail("network kind must be a string")  # the registry checks the name when building
    lists = (p.channels_down, p.channels_up, p.channels_skip)
    if not all(isinstance(c, tuple) and all(_is_int(v) for v in c) for c in lists):
        fail("channels_down/up/skip must be lists of integers")
    if not (len(p.channels_down) == len(p.channels_up) == len(p.channels_skip) >= 1):
        fail("channels_down, channels_up and channels_skip must have the same length (>= 1)")
    if min(p.channels_down + p.channels_up) < 1 or min(p.channels_skip) < 0:
        fail("channel counts must be positive (skip channels may be 0)")
    if p.upsample not in UPSAMPLE_MODES:
        fail(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {p.upsample!r}")
    if p.input_kind not in INPUT_KINDS:
        fail(f"input kind must be one of {', '.join(INPUT_KINDS)}, got {p.input_kind!r}")
    if p.input_kind == "meshgrid" and p.input_depth != 2:
        fail("a meshgrid input has depth 2")
    checks = [
        (_is_int(p.input_depth) and p.input_depth >= 1, "input depth must be an integer >= 1"),
        (_is_int(p.iters) and p.iters >= 1, f"iters must be an integer >= 1, got {p.iters!r}"),
        (_is_num(p.lr) and p.lr > 0, f"lr must be > 0, got {p.lr!r}"),
        (_is_num(p.reg_noise_std) and p.reg_noise_std >= 0, "reg_noise_std must be >= 0"),
        (_is_num(p.ema) and 0 <= p.ema < 1, f"ema must be in [0, 1), got {p.ema!r}"),
        (p.stop_rule in STOP_RULES, f"stop rule must be one of {', '.join(STOP_RULES)}"),
        (_is_int(p.window) and p.window >= 2, "stop window must be an integer >= 2"),
        (_is_int(p.patience) and p.patience >= 1, "stop patience must be an integer >= 1"),
        (_is_int(p.warmup) and p.warmup >= 0, "stop warmup must be an integer >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            fail(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
