"""The one resolved-settings type: a preset with the user's overrides, nested like the TOML.

A ``Settings`` is plain data (nanoGPT's config): it is what the fit runs with, it is saved
whole in ``run.json`` and in every checkpoint, and a resume compares it. Its ``as_dict()`` has
exactly the shape of a preset file, so a run folder's settings can be copied into a new one::

    task = "denoise"
    description = "..."
    [network]  kind = "skip" (any registered network) and that builder's options
    [input]    kind ("noise" | "meshgrid"), depth
    [fit]      iters, lr, reg_noise_std, ema (0 = off), restarts (independent fits averaged),
               precision ("fp32" | "bf16": the forward pass under bfloat16 autocast)
    [stop]     rule ("auto" | "fixed"), window, patience, warmup, noise_floor
    [tile]     max_side (the largest tile ``--tile auto`` cuts for this preset)

Unknown keys are errors, so a typo never silently falls back to a default. The network's
options are checked by building the network (``networks.build_network``), which knows each
builder's keywords; everything else is checked here, without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dip_cli.errors import InputError

TASKS = ("denoise", "inpaint", "jpeg", "sr")
STOP_RULES = ("auto", "fixed")
PRECISIONS = ("fp32", "bf16")
#: ``--effort``: which of a task's built-in presets runs. ``default`` is the task's preset,
#: ``fast`` its ``-fast`` preset (about a third of the time), ``best`` its ``-avg3`` preset
#: (independent fits averaged, three times the time or more).
EFFORTS = ("fast", "default", "best")
EFFORT_SUFFIXES = {"fast": "-fast", "default": "", "best": "-avg3"}
SR_SCALES = (2, 4, 8)  # even factors: the Lanczos kernel then centres exactly (odd ones would shift)
#: The antialiasing kernels a low-res image may have been made with (``dip sr --kernel``): the
#: paper's Lanczos-2, and Pillow's / OpenCV's antialiased bicubic, Lanczos-3 and area (box) resizes.
SR_KERNELS = ("lanczos2", "bicubic", "lanczos3", "area")
# The networks module (which imports torch) reuses these, so validation stays torch-free.
UPSAMPLE_MODES = ("nearest", "bilinear")
INPUT_KINDS = ("noise", "meshgrid")
#: ``--tile auto``'s largest tile side, unless a preset asks for less (``resources.AUTO_TILE_BYTES``
#: says why 576). Tiles smaller than ``MIN_TILE`` px are refused.
AUTO_TILE = 576
MIN_TILE = 32


@dataclass(frozen=True)
class NetworkSettings:
    kind: str = "skip"
    options: dict[str, Any] = field(default_factory=dict)  # the builder's keyword arguments


@dataclass(frozen=True)
class InputSettings:
    kind: str = "noise"
    depth: int = 32


@dataclass(frozen=True)
class FitSettings:
    iters: int = 3000
    lr: float = 0.01
    reg_noise_std: float = 1 / 30
    ema: float = 0.99
    # Independently seeded fits (seed, seed + 1, ...) whose outputs are averaged: their errors
    # are partly independent, so the mean is closer to the truth; each costs a whole fit.
    restarts: int = 1
    # "bf16": the network's forward pass under bfloat16 autocast (the loss, the optimiser and the
    # EMA stay fp32). Faster only where the hardware has bf16 units (recent GPUs, AMX CPUs).
    precision: str = "fp32"


@dataclass(frozen=True)
class StopSettings:
    rule: str = "auto"  # "auto": ES-WMV; "fixed": run the whole budget
    window: int = 100
    patience: int = 500
    warmup: int = 200
    # The discrepancy principle (Morozov): a denoised image should differ from the noisy one by
    # about the noise. An output is a candidate only once its mean squared residual is at most
    # noise_floor x the observation's estimated noise variance; until then the fit is still
    # learning content (texture), however still its outputs are. 0: off (tasks without noise).
    noise_floor: float = 0.0


@dataclass(frozen=True)
class TileSettings:
    # The largest tile ``--tile auto`` cuts (a CPU's memory bound may make it smaller), and the
    # largest image it fits whole (never above resources.AUTO_WHOLE). A preset whose budget is too
    # short for a larger problem asks for less: the denoisers' 3000 iterations fit a 224 px
    # tile of a photo but leave a 384 px one still learning its texture (see models/denoise.toml).
    max_side: int = AUTO_TILE


@dataclass(frozen=True)
class Settings:
    task: str = "denoise"
    network: NetworkSettings = field(default_factory=NetworkSettings)
    input: InputSettings = field(default_factory=InputSettings)
    fit: FitSettings = field(default_factory=FitSettings)
    stop: StopSettings = field(default_factory=StopSettings)
    tile: TileSettings = field(default_factory=TileSettings)
    name: str = ""
    description: str = ""
    source: str = field(default="", compare=False)  # where it was read from, for messages

    def as_dict(self) -> dict[str, Any]:
        """The preset-file shape: top-level keys, then one table per section."""
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "network": {"kind": self.network.kind, **_plain(self.network.options)},
            "input": dataclasses.asdict(self.input),
            "fit": dataclasses.asdict(self.fit),
            "stop": dataclasses.asdict(self.stop),
            "tile": dataclasses.asdict(self.tile),
        }

    def essentials(self) -> dict[str, Any]:
        """What decides the result: everything but the name and the description."""
        data = self.as_dict()
        del data["name"], data["description"]
        # Keys added after run folders existed are left out at their default, so a run killed
        # before an upgrade still matches its fingerprint and resumes.
        if data["fit"]["precision"] == "fp32":
            del data["fit"]["precision"]
        return data

    def with_overrides(self, *, iters: int | None = None, stop: str | None = None) -> Settings:
        """The command line's overrides (None = keep the preset's), validated."""
        merged = self
        if iters is not None:
            merged = dataclasses.replace(merged, fit=dataclasses.replace(merged.fit, iters=iters))
        if stop is not None:
            merged = dataclasses.replace(merged, stop=dataclasses.replace(merged.stop, rule=stop))
        validate(merged)
        return merged

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, name: str = "", source: str = "") -> Settings:
        """Parse the preset-file shape (a loaded TOML or a run.json's ``settings``), validated."""
        where = source or name or "settings"
        top = {k: v for k, v in data.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in data.items() if isinstance(v, dict)}
        for key in top:
            if key not in ("task", "description", "name"):
                raise InputError(f"preset {where}: unknown key {key!r}; known: task, description")
        if "task" not in top:
            raise InputError(f"preset {where}: missing 'task' (one of {', '.join(TASKS)})")
        sections = {"input": InputSettings, "fit": FitSettings, "stop": StopSettings, "tile": TileSettings}
        for table in tables:
            if table not in ("network", *sections):
                known = ", ".join(f"[{t}]" for t in ("network", *sections))
                raise InputError(f"preset {where}: unknown table [{table}]; known: {known}")
        parsed = {key: _section(where, key, kind, tables.get(key, {})) for key, kind in sections.items()}
        network = dict(tables.get("network", {}))
        settings = cls(
            task=top["task"],
            network=NetworkSettings(network.pop("kind", "skip"), network),
            name=top.get("name") or name,
            description=top.get("description", ""),
            source=source,
            **parsed,
        )
        validate(settings)
        return settings


def _section(where: str, table: str, kind: type, values: dict[str, Any]):
    known = [f.name for f in dataclasses.fields(kind)]
    for key in values:
        if key not in known:
            raise InputError(f"preset {where}: unknown key [{table}] {key!r}; known: {', '.join(known)}")
    return kind(**values)


def validate(s: Settings) -> None:
    """Check every value but the network's options; the message names the value and the range."""

    def fail(message: str) -> None:
        raise InputError(f"preset {s.source or s.name or 'settings'}: {message}")

    if s.task not in TASKS:
        fail(f"task must be one of {', '.join(TASKS)}, got {s.task!r}")
    if not isinstance(s.network.kind, str):
        fail("[network] kind must be a string naming a registered network")
    upsample = s.network.options.get("upsample", UPSAMPLE_MODES[1])
    if upsample not in UPSAMPLE_MODES:
        fail(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
    if s.input.kind not in INPUT_KINDS:
        fail(f"input kind must be one of {', '.join(INPUT_KINDS)}, got {s.input.kind!r}")
    if s.input.kind == "meshgrid" and s.input.depth != 2:
        fail("a meshgrid input has depth 2")
    f, st = s.fit, s.stop
    checks = [
        (_is_int(s.input.depth) and s.input.depth >= 1, "input depth must be an integer >= 1"),
        (_is_int(f.iters) and f.iters >= 1, f"iters must be an integer >= 1, got {f.iters!r}"),
        (_is_num(f.lr) and f.lr > 0, f"lr must be > 0, got {f.lr!r}"),
        (_is_num(f.reg_noise_std) and f.reg_noise_std >= 0, "reg_noise_std must be >= 0"),
        (_is_num(f.ema) and 0 <= f.ema < 1, f"ema must be in [0, 1), got {f.ema!r}"),
        (_is_int(f.restarts) and f.restarts >= 1, f"restarts must be an integer >= 1, got {f.restarts!r}"),
        (f.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {f.precision!r}"),
        (st.rule in STOP_RULES, f"stop rule must be one of {', '.join(STOP_RULES)}, got {st.rule!r}"),
        (_is_int(st.window) and st.window >= 2, "stop window must be an integer >= 2"),
        (_is_int(st.patience) and st.patience >= 1, "stop patience must be an integer >= 1"),
        (_is_int(st.warmup) and st.warmup >= 0, "stop warmup must be an integer >= 0"),
        (_is_num(st.noise_floor) and st.noise_floor >= 0, "stop noise_floor must be >= 0 (0: off)"),
        (
            _is_int(s.tile.max_side) and s.tile.max_side >= MIN_TILE,
            f"tile max_side must be an integer >= {MIN_TILE}, got {s.tile.max_side!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            fail(message)


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, so the dict is the same after a JSON or TOML round trip."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
