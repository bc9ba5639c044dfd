"""Presets: all built-ins load, paper presets hold the paper's settings, errors name the fix."""

from __future__ import annotations

import pytest

from dip_cli.errors import InputError
from dip_cli.presets import all_presets, builtin_names, load_preset


def test_every_builtin_preset_loads_and_each_task_has_a_default_and_a_paper_preset():
    names = builtin_names()
    for task in ("denoise", "inpaint", "jpeg"):
        assert task in names and f"{task}-paper" in names
    assert all(p.task in ("denoise", "inpaint", "jpeg", "sr") for p in all_presets())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "denoise-paper",
            {"channels_down": (128,) * 5, "channels_skip": (4,) * 5, "iters": 3000, "ema": 0.99},
        ),
        (
            "jpeg-paper",
            {"channels_down": (8, 16, 32, 64, 128), "channels_skip": (0, 0, 0, 4, 4), "input_depth": 3},
        ),
        ("inpaint-paper", {"channels_skip": (128,) * 5, "upsample": "nearest", "iters": 6000}),
        ("inpaint-hole-paper", {"network": "hourglass", "input_kind": "meshgrid", "input_depth": 2}),
        ("inpaint-pixels-paper", {"lr": 0.001, "iters": 11000}),
    ],
)
def test_paper_presets_match_the_paper(name, expected):
    preset = load_preset(name)
    for key, value in expected.items():
        assert getattr(preset, key) == value, key


def test_unknown_preset_lists_the_builtins():
    with pytest.raises(InputError, match="unknown preset 'nope'.*denoise-paper"):
        load_preset("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('task = "denoise"\n[fit]\nitres = 3', "unknown key \\[fit\\] 'itres'"),
        ('task = "denoise"\n[network]\nupsample = "cubic"', "upsample must be one of"),
        ('task = "paint"', "task must be one of"),
        ("[fit]\niters = 3", "missing 'task'"),
        ('task = "denoise"\n[fit]\nlr = -1', "lr must be > 0"),
        ('task = "denoise"\n[fit]\nema = 1.5', "ema must be in"),
        ('task = "denoise"\n[input]\nkind = "meshgrid"\ndepth = 4', "meshgrid input has depth 2"),
        ('task = "denoise"\n[wat]\nx = 1', "unknown table \\[wat\\]"),
        ("task = ", "not valid TOML"),
    ],
)
def test_bad_preset_files_are_explained(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_preset(str(path))


def test_overrides_are_validated():
    preset = load_preset("denoise")
    assert preset.with_overrides(iters=7, stop_rule=None).iters == 7
    with pytest.raises(InputError, match="stop rule"):
        preset.with_overrides(stop_rule="sometimes")


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_preset_builds_its_network(name):
    from dip_cli.restore import build_network_for

    preset = load_preset(name)
    net = build_network_for(preset, 3)
    assert sum(p.numel() for p in net.parameters()) > 0
