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


# The name each dependency is imported by.
IMPORT_NAMES = {"pillow": "PIL", "pypng": "png", "scikit-image": "skimage", "scikit-learn": "sklearn"}
# Dependencies dip needs only through another library: what of that library uses them.
NEEDED_THROUGH: dict[str, str] = {}


def test_every_dependency_is_imported_by_dip():
    # Regression: torchvision was a dependency (and in the install command) but never imported.
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    source = "\n".join(p.read_text() for p in (ROOT / "dip_cli").rglob("*.py"))
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=\[ ]", requirement)[0]
        if name in NEEDED_THROUGH:
            assert NEEDED_THROUGH[name] in source, f"{name}: {NEEDED_THROUGH[name]} is never used"
            continue
        module = IMPORT_NAMES.get(name, name)
        assert re.search(rf"^\s*(import|from) {module}\b", source, re.M), f"{name} is never imported"
    assert "torchvision" not in (ROOT / "README.md").read_text()
