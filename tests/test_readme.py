"""The README's two set-up commands are exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_setup_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup -->\s*```bash\n(.*?)```", readme, re.S)
    assert block, "README.md needs a ```bash block after <!-- setup -->"
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"{command!r} is not in .ci/run"


def test_every_builtin_preset_is_documented():
    from dip_cli.presets import builtin_names

    readme = (ROOT / "README.md").read_text()
    for name in builtin_names():
        assert f"`{name}`" in readme, name
