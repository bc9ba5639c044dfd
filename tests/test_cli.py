"""The dip command as a user meets it: outputs, run folders, exit codes and messages."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dip_cli.io import load_image
from dip_cli.metrics import psnr
from dip_cli.operators import simulate_jpeg
from tests.conftest import TINY_PRESET, dip_process, expect_error, real_crop, wait_for_checkpoint, write


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_denoise_writes_output_and_run_folder(cli, tiny_preset, noisy_image):
    noisy, clean = noisy_image
    code, out, err = cli(
        "denoise",
        noisy,
        "--preset",
        tiny_preset,
        "--reference",
        clean,
        "--json",
        "--save-every",
        "10",
        "--quiet",
    )
    assert code == 0, err
    result = json.loads(out)
    output = noisy.with_name("noisy.restored.png")
    assert Path(result["output"]) == output and output.exists()
    assert load_image(output).pixels.shape == (40, 40, 3)
    run_dir = noisy.with_name("noisy.dip")
    files = {p.name for p in run_dir.iterdir()}
    assert files == {".lock", "checkpoint.pt", "metrics.csv", "run.json", "snapshots"}
    assert (run_dir / "snapshots" / "iter_000010.png").exists()
    rows = read_rows(run_dir / "metrics.csv")
    assert list(rows[0]) == ["iteration", "loss", "psnr_input", "wmv", "psnr_reference"]
    assert len(rows) == result["iterations"]
    info = json.loads((run_dir / "run.json").read_text())
    for key in (
        "torch_version",
        "dip_version",
        "device",
        "seed",
        "seconds",
        "stop_reason",
        "selected_iteration",
    ):
        assert key in info
    assert info["status"] == "finished" and info["settings"]["network"]["channels_down"] == [16, 16, 16]
    assert result["psnr_reference"] is not None and result["ssim_reference"] is not None


def test_summary_and_progress_go_to_stderr(cli, tiny_preset, noisy_image):
    noisy, _ = noisy_image
    code, out, err = cli("denoise", noisy, "--preset", tiny_preset, "--iters", "5")
    assert code == 0 and out == ""
    assert "restored" in err and "noisy.png" in err


def test_same_seed_gives_the_same_output(cli, tiny_preset, noisy_image, tmp_path):
    noisy, _ = noisy_image
    for name in ("a.png", "b.png"):
        assert (
            cli(
                "denoise",
                noisy,
                "--preset",
                tiny_preset,
                "-o",
                tmp_path / name,
                "-q",
                "--run-dir",
                tmp_path / f"{name}.dip",
                "--seed",
                "7",
            )[0]
            == 0
        )
    assert np.array_equal(load_image(tmp_path / "a.png").pixels, load_image(tmp_path / "b.png").pixels)


JPEG_TEST_PRESET = """
task = "jpeg"
[network]
kind = "skip"
channels_down = [16, 32, 64, 64]
channels_skip = [0, 0, 4, 4]
[input]
depth = 3
[fit]
iters = 800
ema = 0.99
[stop]
rule = "fixed"
"""


def test_jpeg_removes_artifacts_from_a_real_crop(cli, tmp_path):
    clean = real_crop("chelsea", 48)
    jpeg_path = tmp_path / "cat.jpg"
    Image.fromarray(np.round(clean * 255).astype(np.uint8)).save(jpeg_path, quality=10)
    compressed = load_image(jpeg_path).pixels
    np.testing.assert_allclose(compressed, simulate_jpeg(clean, 10), atol=1e-6)
    write(tmp_path / "clean.png", clean)
    # A 4-level version of the paper's JPEG net (48 px needs no padding): measured +0.49 dB
    # on this crop at 800 steps (+0.77 and +0.59 on coffee and astronaut crops).
    preset = tmp_path / "jpeg-small.toml"
    preset.write_text(JPEG_TEST_PRESET)
    code, out, err = cli(
        "jpeg", jpeg_path, "--preset", preset, "-q", "--json", "--reference", tmp_path / "clean.png"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["psnr_reference"] > result["psnr_reference_input"] + 0.3


def test_inpaint_fills_text_on_a_real_crop(cli, tmp_path):
    clean = real_crop("coffee", 48)
    known = np.ones((48, 48), bool)
    for row in (8, 20, 32):
        known[row : row + 3, 4:44] = False  # three strokes of "text"
    corrupted = np.where(known[..., None], clean, 1.0)
    write(tmp_path / "img.png", corrupted)
    write(tmp_path / "mask.png", known.astype(np.float32)[..., None])
    write(tmp_path / "clean.png", clean)
    code, out, err = cli(
        "inpaint",
        tmp_path / "img.png",
        "--mask",
        tmp_path / "mask.png",
        "--iters",
        "400",
        "-q",
        "--json",
        "--reference",
        tmp_path / "clean.png",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["psnr_reference"] > psnr(corrupted, clean) + 5
    restored = load_image(result["output"]).pixels
    np.testing.assert_allclose(restored[known], clean[known], atol=1 / 255)  # kept pixels kept


def test_inpaint_with_the_alpha_channel_as_mask_gives_an_opaque_result(cli, tiny_preset, tmp_path):
    pixels = real_crop(size=24)
    alpha = np.ones((24, 24), np.float32)
    alpha[8:16, 8:16] = 0
    path = write(tmp_path / "holes.png", pixels, alpha)
    code, _, err = cli("inpaint", path, "--mask", "alpha", "--preset", tiny_preset, "-q")
    assert code == 0, err
    assert Image.open(tmp_path / "holes.restored.png").mode == "RGB"


def test_grayscale_odd_size_and_16_bit_round_trip(cli, tiny_preset, tmp_path):
    gray = real_crop(size=37, gray=True)[:, :29]
    path = write(tmp_path / "gray16.png", gray, bit_depth=16)
    code, _, err = cli("denoise", path, "--preset", tiny_preset, "--iters", "5", "-q")
    assert code == 0, err
    restored = load_image(tmp_path / "gray16.restored.png")
    assert (restored.height, restored.width, restored.channels, restored.bit_depth) == (37, 29, 1, 16)


def test_rgba_alpha_is_put_back(cli, tiny_preset, tmp_path):
    alpha = np.linspace(0, 1, 24 * 24, dtype=np.float32).reshape(24, 24)
    path = write(tmp_path / "rgba.png", real_crop(size=24), alpha)
    assert cli("denoise", path, "--preset", tiny_preset, "--iters", "3", "-q")[0] == 0
    restored = load_image(tmp_path / "rgba.restored.png")
    np.testing.assert_allclose(restored.alpha, load_image(path).alpha)


def test_presets_command_lists_the_builtins(cli):
    code, out, _ = cli("presets")
    assert code == 0
    for name in ("denoise", "denoise-paper", "jpeg-paper", "inpaint-hole-paper"):
        assert name in out
    assert "tiles <= 256 px" in out  # the denoisers' cap on --tile auto


# --- errors: one clear line on stderr, exit code 2, no traceback ------------------------------


def test_missing_input(cli, tmp_path):
    expect_error(cli("denoise", tmp_path / "nope.png"), "does not exist")


def test_non_image_and_empty_files(cli, tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    expect_error(cli("denoise", tmp_path / "notes.png"), "not an image dip can read")
    (tmp_path / "empty.jpg").write_bytes(b"")
    expect_error(cli("denoise", tmp_path / "empty.jpg"), "is empty")


def test_existing_output_needs_overwrite(cli, tiny_preset, noisy_image, tmp_path):
    noisy, _ = noisy_image
    (tmp_path / "taken.png").write_bytes(b"x")
    expect_error(cli("denoise", noisy, "-o", tmp_path / "taken.png", "--preset", tiny_preset), "--overwrite")
    assert (tmp_path / "taken.png").read_bytes() == b"x"


def test_output_may_never_be_the_input(cli, tiny_preset, noisy_image):
    noisy, _ = noisy_image
    before = noisy.read_bytes()
    expect_error(
        cli("denoise", noisy, "-o", noisy, "--overwrite", "--preset", tiny_preset), "never overwrites"
    )
    assert noisy.read_bytes() == before


def test_unknown_preset_and_bad_option_values(cli, noisy_image):
    noisy, _ = noisy_image
    expect_error(cli("denoise", noisy, "--preset", "fast"), "unknown preset 'fast'")
    expect_error(cli("denoise", noisy, "--iters", "0"), "--iters")
    expect_error(cli("denoise", noisy, "--device", "tpu"), "--device")
    expect_error(cli("denoise", noisy, "--stop", "never"), "--stop")
    expect_error(cli("denoise", noisy, "--effort", "max"), "--effort")
    expect_error(cli("denoise", noisy, "--preset", "denoise", "--effort", "best"), "not both")


def test_effort_picks_the_tasks_preset_and_the_overrides_still_apply(cli, noisy_image):
    noisy, _ = noisy_image
    code, out, err = cli("denoise", noisy, "--effort", "fast", "--iters", "3", "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)
    assert result["preset"] == "denoise-fast" and result["iterations"] == 3


def test_unavailable_device_is_explained(cli, noisy_image):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    expect_error(cli("denoise", noisy_image[0], "--device", "cuda"), "no CUDA GPU is available")


def test_mask_errors(cli, noisy_image, tmp_path):
    noisy, _ = noisy_image
    expect_error(cli("inpaint", noisy), "--mask")
    expect_error(cli("inpaint", noisy, "--mask", tmp_path / "none.png"), "does not exist")
    Image.new("L", (10, 10), 255).save(tmp_path / "small.png")
    expect_error(cli("inpaint", noisy, "--mask", tmp_path / "small.png"), "is 10x10 but the image is 40x40")
    expect_error(cli("inpaint", noisy, "--mask", "alpha"), "needs an image with an alpha channel")


def test_reference_of_another_size(cli, noisy_image, tmp_path):
    noisy, _ = noisy_image
    write(tmp_path / "ref.png", real_crop(size=20))
    expect_error(cli("denoise", noisy, "--reference", tmp_path / "ref.png"), "reference", "20x20")


def test_too_large_for_memory_is_refused_before_starting(cli, tiny_preset, noisy_image, monkeypatch):
    import dip_cli.resources

    monkeypatch.setattr(dip_cli.resources, "available_bytes", lambda device: 1000)
    noisy, _ = noisy_image
    expect_error(cli("denoise", noisy, "--preset", tiny_preset), "needs about", "Downscale the image")
    assert not noisy.with_name("noisy.dip").exists()


def test_earlier_run_needs_resume_or_overwrite(cli, tiny_preset, noisy_image, tmp_path):
    noisy, _ = noisy_image
    args = ("denoise", noisy, "--preset", tiny_preset, "--iters", "5", "-q", "--save-every", "5")
    assert cli(*args, "-o", tmp_path / "one.png", "--run-dir", tmp_path / "run")[0] == 0
    expect_error(
        cli(*args, "-o", tmp_path / "two.png", "--run-dir", tmp_path / "run"), "--resume", "--overwrite"
    )
    expect_error(
        cli(*args, "-o", tmp_path / "two.png", "--run-dir", tmp_path / "run", "--resume", "--seed", "3"),
        "different seed",
    )
    assert cli(*args, "-o", tmp_path / "two.png", "--run-dir", tmp_path / "run", "--overwrite")[0] == 0


# --- killed runs: a real process, a real signal -----------------------------------------------


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c", "sigterm"])
def test_killed_run_resumes_to_the_same_output(cli, tiny_preset, noisy_image, tmp_path, how):
    noisy, _ = noisy_image
    common = (
        "denoise",
        noisy,
        "--preset",
        tiny_preset,
        "--iters",
        "400",
        "--stop",
        "fixed",
        "--save-every",
        "40",
        "-q",
        "--threads",
        "1",
    )
    assert cli(*common, "-o", tmp_path / "straight.png", "--run-dir", tmp_path / "straight")[0] == 0

    process = dip_process(*common, "-o", tmp_path / "killed.png", "--run-dir", tmp_path / "killed")
    wait_for_checkpoint(tmp_path / "killed", process)
    sent = {"kill -9": signal.SIGKILL, "ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM}[how]
    process.send_signal(sent)
    code = process.wait(timeout=60)
    err = process.stderr.read().decode()
    if how != "kill -9" and code != 0:  # it may have finished before the signal landed
        assert code == 128 + sent and "--resume" in err, err
    if how == "kill -9":
        assert code == -signal.SIGKILL
    if not (tmp_path / "killed.png").exists():
        status = json.loads((tmp_path / "killed" / "run.json").read_text())["status"]
        assert status in ("running", "interrupted")
        code, _, err = cli(
            *common, "-o", tmp_path / "killed.png", "--run-dir", tmp_path / "killed", "--resume"
        )
        assert code == 0, err
    straight = load_image(tmp_path / "straight.png").pixels
    assert np.array_equal(load_image(tmp_path / "killed.png").pixels, straight)
    rows = read_rows(tmp_path / "killed" / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 401))  # no gaps, no repeats


def test_sigterm_checkpoints_even_when_no_periodic_checkpoint_is_due(tiny_preset, noisy_image, tmp_path):
    # Regression: docker stop / systemd / SLURM send SIGTERM, which used to kill the run and
    # leave nothing when --save-every had not come round yet.
    noisy, _ = noisy_image
    args = ["denoise", noisy, "--preset", tiny_preset, "--iters", "100000", "--stop", "fixed"]
    args += ["--save-every", "100000"]
    args += ["-q", "--threads", "1", "-o", tmp_path / "out.png", "--run-dir", tmp_path / "run"]
    process = dip_process(*args)
    wait_for_rows(tmp_path / "run" / "metrics.csv", process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert "SIGTERM" in process.stderr.read().decode()
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "interrupted"
    rows = [int(r["iteration"]) for r in read_rows(tmp_path / "run" / "metrics.csv")]
    assert rows == list(range(1, len(rows) + 1)) and len(rows) >= 25  # flushed up to the stop


def test_a_finished_checkpoint_without_output_averaging_resumes_to_its_result(cli, tmp_path):
    # Regression: with ema = 0 (sr4/sr8 and the *-paper presets) resuming a run whose checkpoint
    # was at its budget raised UnboundLocalError, so after a failed output write every rerun
    # of a batch failed until --overwrite.
    preset = tmp_path / "no-ema.toml"
    preset.write_text(
        TINY_PRESET.replace("ema = 0.9", "ema = 0.0").replace('rule = "auto"', 'rule = "fixed"')
    )
    noisy = write(tmp_path / "noisy.png", real_crop("astronaut", 24))
    args = ("denoise", noisy, "--preset", preset, "--save-every", "10", "-q", "--threads", "1")
    assert cli(*args, "-o", tmp_path / "a.png", "--run-dir", tmp_path / "run")[0] == 0
    first = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").unlink()  # as if writing the output had failed
    code, _, err = cli(*args, "-o", tmp_path / "a.png", "--run-dir", tmp_path / "run", "--resume")
    assert code == 0, err
    assert (tmp_path / "a.png").read_bytes() == first


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("afile/x.png", "afile is a file, not a folder"),
        ("out.gif", "unknown extension '.gif'; use one of .png"),
        ("noext", "unknown extension '(none)'"),
    ],
)
def test_outputs_that_cannot_be_written_are_refused_before_any_work(
    cli, tiny_preset, noisy_image, output, message
):
    # Regression: these were found only after the whole fit (exit 1, "This is a bug").
    noisy, _ = noisy_image
    (noisy.parent / "afile").write_text("a file, not a folder")
    result = cli("denoise", noisy, "--preset", tiny_preset, "-o", noisy.parent / output)
    expect_error(result, message)
    assert not list(noisy.parent.rglob("*.dip")) and not list(noisy.parent.rglob("metrics.csv"))
    expect_error(
        cli("denoise", noisy, "--preset", tiny_preset, "--run-dir", noisy.parent / "afile" / "run"),
        "afile is a file, not a folder",
    )


def test_a_run_folder_in_use_by_another_process_is_refused(cli, tiny_preset, noisy_image, tmp_path):
    from dip_cli.run_folder import RunFolder

    noisy, _ = noisy_image
    holder = RunFolder(tmp_path / "run")
    holder._acquire()  # what a running dip holds (a second open file, as another process has)
    try:
        result = cli("denoise", noisy, "--preset", tiny_preset, "--run-dir", tmp_path / "run", "--iters", "3")
        expect_error(result, "run folder", "is in use by another dip process", f"pid {os.getpid()}")
    finally:
        holder.close()
    assert (
        cli("denoise", noisy, "--preset", tiny_preset, "--run-dir", tmp_path / "run", "--iters", "3")[0] == 0
    )


def test_two_processes_on_one_run_folder(tiny_preset, noisy_image, tmp_path):
    noisy, _ = noisy_image
    args = ["denoise", noisy, "--preset", tiny_preset, "--iters", "100000", "--stop", "fixed", "-q"]
    first = dip_process(*args, "-o", tmp_path / "a.png", "--run-dir", tmp_path / "run")
    second = None
    try:
        wait_for_rows(tmp_path / "run" / "metrics.csv", first)
        second = dip_process(*args, "-o", tmp_path / "b.png", "--run-dir", tmp_path / "run", "--overwrite")
        assert second.wait(timeout=120) == 2
        assert "in use by another dip process" in second.stderr.read().decode()
    finally:
        for process in filter(None, (second, first)):
            if process.poll() is None:
                process.kill()
    first.wait(timeout=60)


def wait_for_rows(path: Path, process, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (path.exists() and len(read_rows(path)) >= 1):
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()
        time.sleep(0.05)


# --- super-resolution -------------------------------------------------------------------------


def test_sr_beats_bicubic_on_a_real_crop(cli, tmp_path):
    from dip_cli.operators import simulate_downscale

    high = real_crop("chelsea", 48)
    low = simulate_downscale(high, 2)
    write(tmp_path / "low.png", low)
    write(tmp_path / "high.png", high)
    bicubic = (
        np.asarray(
            Image.fromarray(np.round(low * 255).astype(np.uint8)).resize((48, 48), Image.Resampling.BICUBIC)
        ).astype(np.float32)
        / 255
    )
    preset = tmp_path / "sr-small.toml"
    preset.write_text(SR_TEST_PRESET)
    code, out, err = cli(
        "sr",
        tmp_path / "low.png",
        "--scale",
        "2",
        "--preset",
        preset,
        "-q",
        "--json",
        "--reference",
        tmp_path / "high.png",
    )
    assert code == 0, err
    result = json.loads(out)
    restored = load_image(result["output"]).pixels
    assert restored.shape == (48, 48, 3)
    assert result["psnr_reference_input"] == pytest.approx(psnr(bicubic, high), abs=0.1)  # bicubic baseline
    assert result["psnr_reference"] > psnr(bicubic, high) + 0.3


# Measured on this crop (x2, 48 px): bicubic 29.27 dB; dip 28.93 at 600 steps, 29.69 at 1000,
# 30.21 at 1500, 30.42 at 2000. x4 on 64 px crops at 2000 steps: +0.86 (chelsea), +2.17 dB
# (astronaut) over bicubic.
SR_TEST_PRESET = """
task = "sr"
[network]
kind = "skip"
channels_down = [32, 32, 32, 32]
channels_skip = [4, 4, 4, 4]
[input]
depth = 8
[fit]
iters = 1200
reg_noise_std = 0.03
ema = 0.0
[stop]
rule = "fixed"
"""


def test_sr_errors(cli, tiny_preset, noisy_image, tmp_path):
    noisy, clean = noisy_image
    expect_error(cli("sr", noisy, "--scale", "3"), "scale 3 is not supported", "2, 4, 8")
    expect_error(cli("sr", noisy, "--scale", "2", "--reference", clean), "the output is 80x80")
    expect_error(cli("sr", noisy, "--kernel", "gaussian"), "'gaussian' is not one of", "bicubic")


def test_sr_fits_with_the_kernel_the_input_was_made_with(cli, tiny_preset, tmp_path):
    path = write(tmp_path / "small.png", real_crop(size=12))
    code, _, err = cli("sr", path, "--kernel", "area", "--preset", tiny_preset, "--iters", "2", "-q")
    assert code == 0, err
    info = json.loads((tmp_path / "small.dip" / "run.json").read_text())
    assert "kernel=area" in info["operator"]["repr"]


def test_sr_output_is_scale_times_larger_and_keeps_alpha(cli, tiny_preset, tmp_path):
    alpha = np.ones((12, 10), np.float32)
    path = write(tmp_path / "small.png", real_crop(size=12)[:, :10], alpha)
    code, _, err = cli("sr", path, "--scale", "4", "--preset", tiny_preset, "--iters", "3", "-q")
    assert code == 0, err
    restored = load_image(tmp_path / "small.restored.png")
    assert (restored.height, restored.width) == (48, 40) and restored.alpha.shape == (48, 40)


def test_sr_memory_estimate_is_for_the_upscaled_output(cli, tiny_preset, tmp_path, monkeypatch):
    import dip_cli.resources

    seen = []
    monkeypatch.setattr(dip_cli.resources, "available_bytes", lambda device: seen.append(1) or 1000)
    path = write(tmp_path / "small.png", real_crop(size=12))
    expect_error(cli("sr", path, "--scale", "8", "--preset", tiny_preset), "(to 96x96)", "needs about")
    assert seen


def test_error_messages_show_brackets_in_names_verbatim(cli, tmp_path):
    # Regression: Rich took "[red]" in a file name (and "[ray]" in an install hint) as markup.
    bad = tmp_path / "scan[red]1.png"
    bad.write_text("not an image")
    expect_error(cli("denoise", bad), "scan[red]1.png is not an image")


def test_help_shows_the_ray_install_hint_whole(cli):
    code, out, _ = cli("jpeg", "--help")
    assert code == 0 and "dip-cli[ray]" in " ".join(out.split()).replace("│", "")


def test_a_preset_with_restarts_averages_its_fits_and_records_each(cli, tmp_path, noisy_image):
    noisy, clean = noisy_image
    preset = tmp_path / "two.toml"
    preset.write_text(
        TINY_PRESET.replace("ema = 0.9", "ema = 0.9\nrestarts = 2").replace("iters = 30", "iters = 12")
    )
    args = ("denoise", noisy, "--preset", preset, "--reference", clean, "--json", "-q", "--threads", "1")
    code, out, err = cli(*args, "--stop", "fixed")
    assert code == 0, err
    result = json.loads(out)
    assert result["iterations"] == 2 * 12 and result["psnr_reference"] > 0
    run_dir = noisy.with_name("noisy.dip")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["settings"]["fit"]["restarts"] == 2
    assert [r["iterations"] for r in info["tile_results"]] == [24]  # one tile: the whole image, two fits
    assert sorted(p.parent.name for p in (run_dir / "tiles").glob("*/result.npy")) == ["0000", "0001"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_cli_reuses_freed_memory_instead_of_faulting_it_in_every_step():
    """A large fit frees and re-allocates the same big blocks every step; the CLI's process keeps
    them instead of unmapping them, so the kernel does not hand out (and zero) fresh pages each
    time. Measured as the system CPU time of 30 steps that allocate and free 64 MB."""
    probe = """
import os, sys, numpy as np
if sys.argv[1] == "cli":
    from dip_cli.process import tune_for_fits  # what the CLI does when a command starts
    tune_for_fits()
np.ones(16 * 2**20, np.float32)
before = os.times().system
for _ in range(30):
    np.ones(16 * 2**20, np.float32)  # 64 MB, freed at once
print(os.times().system - before)
"""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}

    def system_seconds(mode: str) -> float:
        done = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return float(done.stdout)

    plain, cli = system_seconds("plain"), system_seconds("cli")
    assert cli < 0.25 * plain, (plain, cli)
