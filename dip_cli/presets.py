"""Presets: ``models/*.toml`` (shipped in the wheel) or a user's own TOML file, as ``Settings``.

The file format is documented in ``dip_cli.settings``; a preset is just settings with a name.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from dip_cli.errors import InputError
from dip_cli.settings import Settings


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str | Path) -> Settings:
    """A built-in preset by name, or a TOML file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise InputError(f"preset file {candidate} does not exist")
        return _parse(candidate.read_text(encoding="utf-8"), candidate.stem, str(candidate))
    name = str(name_or_path)
    resource = _builtin_dir() / f"{name}.toml"
    if not resource.is_file():
        raise InputError(
            f"unknown preset {name!r}; built-in presets: {', '.join(builtin_names())} "
            "(or give the path of a .toml file)"
        )
    return _parse(resource.read_text(encoding="utf-8"), name, f"built-in {name}")


def all_presets() -> list[Settings]:
    return [load_preset(name) for name in builtin_names()]


def _builtin_dir():
    return resources.files("dip_cli.models")


def _parse(text: str, name: str, source: str) -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"preset {source} is not valid TOML: {exc}") from None
    return Settings.from_dict(data, name=name, source=source)
