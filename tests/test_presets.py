"""Presets: all built-ins load, paper presets hold the paper's settings, errors name the fix."""

from __future__ import annotations

import json

import pytest

from dip_cli.errors import InputError
from dip_cli.presets import all_presets, builtin_names, load_preset
from dip_cli.settings import EFFORTS, Settings
from dip_cli.tasks import resolve_settings


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
            {
                "network.channels_down": [128] * 5,
                "network.channels_skip": [4] * 5,
                "fit.iters": 3000,
                "fit.ema": 0.99,
            },
        ),
        (
            "jpeg-paper",
            {
                "network.channels_down": [8, 16, 32, 64, 128],
                "network.channels_skip": [0, 0, 0, 4, 4],
                "input.depth": 3,
            },
        ),
        (
            "inpaint-paper",
            {"network.channels_skip": [128] * 5, "network.upsample": "nearest", "fit.iters": 6000},
        ),
        ("inpaint-hole-paper", {"network.kind": "hourglass", "input.kind": "meshgrid", "input.depth": 2}),
        ("denoise", {"stop.rule": "auto", "stop.noise_floor": 1.0, "tile.max_side": 256}),
        ("denoise-avg3", {"fit.restarts": 3, "stop.noise_floor": 1.0, "tile.max_side": 256}),
        ("jpeg", {"stop.noise_floor": 0.0, "tile.max_side": 576}),  # JPEG error is not noise: no floor
        ("jpeg-avg3", {"fit.restarts": 3, "network.channels_skip": [0, 0, 0, 4, 4], "stop.rule": "fixed"}),
        ("sr4", {"fit.ema": 0.99, "fit.restarts": 1}),
        ("sr2", {"fit.ema": 0.99, "fit.iters": 4000}),
        ("sr4-avg3", {"fit.restarts": 3, "fit.iters": 4000, "fit.reg_noise_std": 0.03, "stop.rule": "fixed"}),
        ("inpaint-pixels-paper", {"fit.lr": 0.001, "fit.iters": 11000}),
    ],
)
def test_presets_hold_their_documented_settings(name, expected):
    settings = load_preset(name).as_dict()
    for key, value in expected.items():
        table, entry = key.split(".")
        assert settings[table][entry] == value, key


TASK_SCALES = [("denoise", None), ("jpeg", None), ("inpaint", None), ("sr", 2), ("sr", 4), ("sr", 8)]


@pytest.mark.parametrize(("task", "scale"), TASK_SCALES)
def test_every_effort_level_of_every_task_is_a_builtin_preset_that_spends_more_from_fast_to_best(task, scale):
    levels = {effort: resolve_settings(task, scale=scale, effort=effort) for effort in EFFORTS}
    assert levels["default"] == resolve_settings(task, scale=scale)
    assert {s.task for s in levels.values()} == {task}
    steps = {effort: s.fit.iters * s.fit.restarts for effort, s in levels.items()}
    assert steps["fast"] * 2 <= steps["default"] < steps["best"]
    fast, default = levels["fast"], levels["default"]
    assert fast.network == default.network and fast.input == default.input  # fewer steps of the same fit


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
        ('task = "denoise"\n[fit]\nrestarts = 0', "restarts must be an integer >= 1"),
        ('task = "denoise"\n[stop]\nnoise_floor = -1', "noise_floor must be >= 0"),
        ('task = "denoise"\n[tile]\nmax_side = 16', "tile max_side must be an integer >= 32"),
        ('task = "denoise"\n[tile]\nside = 256', "unknown key \\[tile\\] 'side'"),
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
    assert preset.with_overrides(iters=7, stop=None).fit.iters == 7
    with pytest.raises(InputError, match="stop rule"):
        preset.with_overrides(stop="sometimes")


def test_settings_round_trip_through_their_dict_as_a_run_folder_saves_them():
    for preset in all_presets():
        again = Settings.from_dict(json.loads(json.dumps(preset.as_dict())))
        assert again == preset


def test_a_preset_can_name_any_registered_network(tmp_path):
    from dip_cli.networks import build_for

    path = tmp_path / "unet.toml"
    path.write_text('task = "denoise"\n[network]\nkind = "unet"\nchannels_down = [8, 8]\n')
    net, padded = build_for(load_preset(path), 3, 30, 20)
    assert type(net).__name__ == "UNet" and padded == (32, 20)
    path = tmp_path / "resnet.toml"
    path.write_text('task = "denoise"\n[network]\nkind = "resnet"\nwidth = 8\n')
    with pytest.raises(InputError, match=r"preset .*resnet.toml: \[network\] .*width"):
        build_for(load_preset(path), 3)
    path.write_text('task = "denoise"\n[network]\nkind = "transformer"\n')
    with pytest.raises(InputError, match="unknown network 'transformer'; known: hourglass"):
        build_for(load_preset(path), 3)


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_preset_builds_its_network(name):
    from dip_cli.networks import build_for

    net, _ = build_for(load_preset(name), 3)
    assert sum(p.numel() for p in net.parameters()) > 0


def test_each_super_resolution_scale_gets_its_default_preset():
    from dip_cli.tasks import resolve_settings

    assert [resolve_settings("sr", scale=s).name for s in (2, 4, 8)] == ["sr2", "sr4", "sr8"]


def test_a_later_key_at_its_default_leaves_the_fingerprint_as_before():
    """precision came after run folders existed: at fp32 it is not in what decides the result,
    so a run killed before the upgrade still resumes; bf16 is."""
    from dataclasses import replace

    plain = Settings()
    assert "precision" not in plain.essentials()["fit"]
    assert plain.as_dict()["fit"]["precision"] == "fp32"  # run.json still records it
    bf16 = replace(plain, fit=replace(plain.fit, precision="bf16"))
    assert bf16.essentials()["fit"]["precision"] == "bf16"
