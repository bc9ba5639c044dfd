"""Batches: which files are taken, where results go, what a rerun skips, how failures are reported."""

from __future__ import annotations

import csv
import hashlib
import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dip_cli.batch import EXIT_SOME_FAILED, plan_batch
from dip_cli.errors import InputError
from dip_cli.io import load_image
from dip_cli.operators import simulate_jpeg
from dip_cli.resources import cpu_cores, default_workers
from tests.conftest import dip_process, expect_error, real_crop, write

TINY = ("--iters", "12", "--stop", "fixed", "-q", "--workers", "1")


def summary_rows(folder: Path) -> dict[str, dict]:
    with open(folder / "summary.csv", newline="") as f:
        return {Path(row["input"]).name: row for row in csv.DictReader(f)}


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Nested folders, two inputs sharing a stem, a grayscale image and every kind of bad file."""
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    crop = real_crop("astronaut", 32)
    write(root / "beach.png", crop)
    Image.fromarray(np.uint8(simulate_jpeg(crop, 10) * 255)).save(root / "beach.jpg", quality=10)
    write(root / "trip" / "gray.png", real_crop("camera", 24, gray=True))
    write(root / "trip" / "day2" / "cat.png", real_crop("chelsea", 28))
    good = (root / "beach.jpg").read_bytes()
    (root / "trip" / "corrupt.jpg").write_bytes(good[: len(good) // 3])  # truncated JPEG
    (root / "trip" / "empty.png").write_bytes(b"")
    (root / "trip" / "fake.png").write_text("not an image")
    (root / "notes.txt").write_text("holiday")
    return root


# --- planning ------------------------------------------------------------------------------------


def test_plan_mirrors_the_tree_and_gives_shared_stems_their_extension(photo_folder, tmp_path):
    plan = plan_batch([photo_folder], output_dir=tmp_path / "out", recursive=True)
    outputs = {item.input.relative_to(photo_folder).as_posix(): item.output for item in plan.items}
    out = tmp_path / "out"
    assert outputs["beach.png"] == out / "beach_png.png"
    assert outputs["beach.jpg"] == out / "beach_jpg.png"
    assert outputs["trip/gray.png"] == out / "trip" / "gray.png"
    assert outputs["trip/day2/cat.png"] == out / "trip" / "day2" / "cat.png"
    assert len(plan.items) == 7  # the 3 bad image files are attempted (and will fail), not hidden
    assert plan.ignored == [photo_folder / "notes.txt"]
    assert {item.run_dir.name for item in plan.items} >= {"beach_png.dip", "beach_jpg.dip", "cat.dip"}
    assert plan.summary_dir == out


@pytest.mark.parametrize("with_output_dir", [True, False])
def test_names_that_would_collide_after_adding_the_extension_stay_apart(tmp_path, with_output_dir):
    # Regression: x.png and x.jpg became x_png and x_jpg, and x_png.bmp kept x_png: two inputs,
    # one output and one run folder.
    folder = tmp_path / "in"
    for name in ("x.png", "x.jpg", "x_png.bmp", "y.png"):
        write(folder / name, real_crop("astronaut", 8))
    output_dir = tmp_path / "out" if with_output_dir else None
    plan = plan_batch([folder], output_dir=output_dir)
    outputs = {item.input.name: item.output.name for item in plan.items}
    assert len(set(outputs.values())) == 4 and len({item.run_dir for item in plan.items}) == 4
    suffix = ".png" if with_output_dir else ".restored.png"
    assert outputs["x_png.bmp"] == f"x_png_bmp{suffix}" and outputs["y.png"] == f"y{suffix}"
    again = plan_batch([folder], output_dir=output_dir)
    assert [item.output for item in again.items] == [item.output for item in plan.items]


def test_plan_without_recursion_glob_and_duplicates(photo_folder):
    top = plan_batch([photo_folder], output_dir=None)
    assert sorted(item.input.name for item in top.items) == ["beach.jpg", "beach.png"]
    jpgs = plan_batch([photo_folder], output_dir=None, recursive=True, pattern="*.JPG")
    assert sorted(item.input.name for item in jpgs.items) == ["beach.jpg", "corrupt.jpg"]
    # The same file named directly and through its folder is planned once.
    twice = plan_batch([photo_folder, photo_folder / "beach.png"], output_dir=None)
    assert len(twice.items) == 2
    # Without -o results go beside the inputs, and are never taken as inputs by a rerun.
    beside = {item.input.name: item.output for item in top.items}
    assert beside["beach.jpg"] == photo_folder / "beach_jpg.restored.png"


def test_plan_never_picks_up_its_own_outputs(photo_folder, tmp_path):
    (photo_folder / "beach_png.restored.png").write_bytes(b"x")
    (photo_folder / "beach_png.dip").mkdir()
    (photo_folder / "beach_png.dip" / "iter_000010.png").write_bytes(b"x")
    (photo_folder / ".beach.tmp.part.png").write_bytes(b"x")
    inside = photo_folder / "restored"
    write(inside / "old.png", real_crop("astronaut", 16))
    plan = plan_batch([photo_folder], output_dir=inside, recursive=True)
    names = {item.input.name for item in plan.items}
    assert "old.png" not in names and "beach_png.restored.png" not in names
    assert "iter_000010.png" not in names and ".beach.tmp.part.png" not in names


def test_plan_errors(photo_folder, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no images found.*--recursive"):
        plan_batch([tmp_path / "empty_dir"], output_dir=None)
    with pytest.raises(InputError, match="is a file"):
        plan_batch([photo_folder], output_dir=photo_folder / "beach.png")
    with pytest.raises(InputError, match="looks like a file name"):
        plan_batch([photo_folder], output_dir=tmp_path / "new.png")
    with pytest.raises(InputError, match="never overwrites its inputs"):
        plan_batch(
            [photo_folder / "trip" / "gray.png", photo_folder / "beach.png"], output_dir=photo_folder / "trip"
        )


# --- running a folder -------------------------------------------------------------------------------


def test_folder_batch_restores_the_good_reports_the_bad_and_reruns_skip(
    cli, tiny_preset, photo_folder, tmp_path
):
    before = digest(photo_folder)
    out = tmp_path / "out"
    code, _, err = cli("jpeg", photo_folder, "-r", "-o", out, "--preset", tiny_preset, *TINY)
    assert code == EXIT_SOME_FAILED, err
    rows = summary_rows(out)
    status = {name: row["status"] for name, row in rows.items()}
    assert status == {
        "beach.png": "restored",
        "beach.jpg": "restored",
        "gray.png": "restored",
        "cat.png": "restored",
        "corrupt.jpg": "failed",
        "empty.png": "failed",
        "fake.png": "failed",
    }
    assert "empty" in rows["empty.png"]["message"] and "not an image" in rows["fake.png"]["message"]
    assert "corrupt.jpg" in rows["corrupt.jpg"]["message"]
    assert "3 image(s) failed" in " ".join(err.split()) and "Traceback" not in err
    assert digest(photo_folder) == before  # inputs untouched, nothing written beside them
    gray = Image.open(out / "trip" / "gray.png")
    assert gray.mode == "L" and gray.size == (24, 24)
    assert Image.open(out / "beach_jpg.png").size == (32, 32)
    assert not list(out.rglob("*.part*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"] == {"restored": 4, "skipped": 0, "failed": 3, "interrupted": 0, "pending": 0}
    assert summary["ignored"] == [str(photo_folder / "notes.txt")]
    assert summary["exit_code"] == EXIT_SOME_FAILED

    # A rerun restores nothing again: finished outputs are skipped with their earlier figures.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    code, _, err = cli("jpeg", photo_folder, "-r", "-o", out, "--preset", tiny_preset, *TINY)
    assert code == EXIT_SOME_FAILED, err
    rerun = summary_rows(out)
    assert rerun["beach.jpg"]["status"] == "skipped" and rerun["beach.jpg"]["iterations"] == "12"
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


def test_all_good_batch_exits_0_and_overwrite_redoes(cli, tiny_preset, photo_folder, tmp_path):
    out = tmp_path / "out"
    args = ("denoise", photo_folder, "-o", out, "--preset", tiny_preset, *TINY)
    assert cli(*args)[0] == 0
    code, stdout, _ = cli(*args, "--overwrite", "--json")
    assert code == 0
    assert [row["status"] for row in json.loads(stdout)["images"]] == ["restored", "restored"]


def test_quiet_batch_prints_nothing_when_all_goes_well(cli, tiny_preset, tmp_path):
    for name in ("a", "b"):
        write(tmp_path / "in" / f"{name}.png", real_crop("astronaut", 16))
    code, out, err = cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--preset", tiny_preset, *TINY)
    assert code == 0 and out == "" and err == ""  # regression: it printed "summary: ..."
    assert (tmp_path / "out" / "summary.csv").exists()


def test_several_files_without_output_go_beside_their_inputs(cli, tiny_preset, photo_folder):
    code, _, err = cli(
        "denoise",
        photo_folder / "beach.png",
        photo_folder / "trip" / "gray.png",
        "--preset",
        tiny_preset,
        *TINY,
    )
    assert code == 0, err
    assert (photo_folder / "beach.restored.png").exists()
    assert (photo_folder / "trip" / "gray.restored.png").exists()
    assert (photo_folder / "summary.csv").exists()  # in the folder the inputs share


def test_one_failed_write_is_reported_like_a_bad_input(cli, tiny_preset, photo_folder, tmp_path, monkeypatch):
    import dip_cli.restore

    real_save = dip_cli.restore.save_image

    def disk_full_for_beach(path, picture):
        if Path(path).name == "beach_jpg.png":
            raise OSError(28, "No space left on device")
        real_save(path, picture)

    monkeypatch.setattr(dip_cli.restore, "save_image", disk_full_for_beach)
    out = tmp_path / "out"
    code, _, _ = cli("jpeg", photo_folder, "-o", out, "--preset", tiny_preset, *TINY)
    assert code == EXIT_SOME_FAILED
    rows = summary_rows(out)
    assert rows["beach.jpg"]["status"] == "failed" and "No space left" in rows["beach.jpg"]["message"]
    assert rows["beach.png"]["status"] == "restored"
    assert not (out / "beach_jpg.png").exists()


def test_reference_dir_gives_psnr_against_the_clean_originals(cli, tiny_preset, tmp_path):
    clean = real_crop("astronaut", 32)
    write(tmp_path / "clean" / "a.png", clean)
    write(
        tmp_path / "noisy" / "a.png",
        np.clip(clean + 0.1 * np.random.default_rng(0).normal(size=clean.shape), 0, 1),
    )
    write(tmp_path / "noisy" / "b.png", clean)  # no reference: reported without one
    code, _, err = cli(
        "denoise",
        tmp_path / "noisy",
        "-o",
        tmp_path / "out",
        "--reference-dir",
        tmp_path / "clean",
        "--preset",
        tiny_preset,
        *TINY,
    )
    assert code == 0, err
    rows = summary_rows(tmp_path / "out")
    assert float(rows["a.png"]["psnr_reference"]) > 10 and float(rows["a.png"]["psnr_reference_input"]) > 10
    assert rows["b.png"]["psnr_reference"] == ""


def test_sr_over_a_folder(cli, tiny_preset, tmp_path):
    write(tmp_path / "small" / "a.png", real_crop("astronaut", 16))
    write(tmp_path / "small" / "b.png", real_crop("chelsea", 12, gray=True))
    code, _, err = cli(
        "sr", tmp_path / "small", "--scale", "2", "-o", tmp_path / "big", "--preset", tiny_preset, *TINY
    )
    assert code == 0, err
    assert Image.open(tmp_path / "big" / "a.png").size == (32, 32)
    assert Image.open(tmp_path / "big" / "b.png").size == (24, 24)


def test_batch_usage_errors(cli, tiny_preset, photo_folder, tmp_path):
    expect_error(cli("denoise", photo_folder, "--run-dir", tmp_path / "r"), "--run-dir is for one image")
    expect_error(cli("denoise", photo_folder, "--reference", photo_folder / "beach.png"), "--reference-dir")
    expect_error(cli("denoise", photo_folder / "beach.png", "--reference-dir", photo_folder), "for batches")
    (tmp_path / "nothing").mkdir()
    expect_error(cli("denoise", tmp_path / "nothing"), "no images found")
    expect_error(cli("denoise", photo_folder, "--preset", "nope"), "nope")  # once, before any image
    (tmp_path / "afile").write_text("x")
    expect_error(
        cli("denoise", photo_folder, "-o", tmp_path / "afile" / "out"), "afile is a file, not a folder"
    )


# --- interrupted and parallel batches ---------------------------------------------------------------


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_batch_resumes_without_redoing_finished_images(tiny_preset, tmp_path, sent):
    for name in ("a", "b", "c"):
        write(tmp_path / "in" / f"{name}.png", real_crop("astronaut", 32) * (0.6 + 0.1 * "abc".index(name)))
    out = tmp_path / "out"
    args = (
        "denoise",
        tmp_path / "in",
        "-o",
        out,
        "--preset",
        tiny_preset,
        "--iters",
        "200",
        "--stop",
        "fixed",
        "--save-every",
        "10",
        "-q",
        "--threads",
        "1",
        "--workers",
        "1",
    )
    process = dip_process(*args)
    deadline = time.time() + 120
    while not (out / "b.dip" / "checkpoint.pt").exists():  # a finished, b under way
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(sent)
    assert process.wait(timeout=60) == 128 + sent  # 130 or 143
    first = summary_rows(out)
    assert [first[n]["status"] for n in ("a.png", "b.png", "c.png")] == ["restored", "interrupted", "pending"]
    a_stamp = (out / "a.png").stat().st_mtime_ns

    rerun = dip_process(*args)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read().decode()
    second = summary_rows(out)
    assert [second[n]["status"] for n in ("a.png", "b.png", "c.png")] == ["skipped", "restored", "restored"]
    assert second["b.png"]["message"] == "resumed"
    assert (out / "a.png").stat().st_mtime_ns == a_stamp
    assert json.loads((out / "b.dip" / "run.json").read_text())["resumed_from"] > 0


def test_an_interrupted_tiled_image_resumes_when_the_batch_is_rerun(tiny_preset, tmp_path):
    """A tiled run has no checkpoint of its own, only its tiles': a rerun still resumes it."""
    write(tmp_path / "in" / "big.png", real_crop("astronaut", 80))
    write(tmp_path / "in" / "small.png", real_crop("coffee", 32))
    out = tmp_path / "out"
    args = ("denoise", tmp_path / "in", "-o", out, "--preset", tiny_preset, "--iters", "60",
            "--stop", "fixed", "--save-every", "10", "-q", "--threads", "1", "--workers", "1",
            "--tile", "48")  # fmt: skip
    process = dip_process(*args)
    deadline = time.time() + 120
    while not (out / "big.dip" / "tiles" / "0001" / "checkpoint.pt").exists():  # tile 0 done, 1 under way
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert summary_rows(out)["big.png"]["status"] == "interrupted"
    rerun = dip_process(*args)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read().decode()
    second = summary_rows(out)
    assert second["big.png"]["status"] == "restored" and second["big.png"]["message"] == "resumed"
    assert second["small.png"]["status"] == "restored"


def test_parallel_workers_give_the_same_images_as_one_at_a_time(cli, tiny_preset, photo_folder, tmp_path):
    args = (
        "denoise",
        photo_folder,
        "-r",
        "--glob",
        "*.png",
        "--preset",
        tiny_preset,
        *TINY,
        "--threads",
        "1",
    )
    assert cli(*args, "-o", tmp_path / "one")[0] == EXIT_SOME_FAILED
    assert cli(*args, "-o", tmp_path / "two", "--workers", "2")[0] == EXIT_SOME_FAILED  # the last wins
    one, two = summary_rows(tmp_path / "one"), summary_rows(tmp_path / "two")
    assert {n: r["status"] for n, r in one.items()} == {n: r["status"] for n, r in two.items()}
    for name, row in one.items():
        if row["status"] == "restored":
            a, b = load_image(row["output"]).pixels, load_image(two[name]["output"]).pixels
            assert np.array_equal(a, b), name


def test_default_workers_one_per_core_on_cpu_never_more_than_images():
    assert default_workers("cpu", 1) == 1
    assert default_workers("cpu", 100) == min(cpu_cores(), 4)


def test_a_resumed_tiled_images_skipped_steps_reach_the_batch_display_under_its_key():
    from dip_cli.batch import BatchObserver
    from dip_cli.batch.outcome import report_to
    from dip_cli.progress import Event, Forward

    sent, calls = [], []
    Forward(sent.append, 3).resumed(40)
    assert sent == [(Event.RESUMED, 3, 40)]

    class Recorder(BatchObserver):
        def image_resumed(self, key: int, steps: int) -> None:
            calls.append((key, steps))

    report_to(Recorder(), sent[0])
    assert calls == [(3, 40)]
