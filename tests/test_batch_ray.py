"""Batches on Ray (a local Ray of 2 CPUs, started once for this module): the same plan, outputs and
rules as local batches, and a worker killed mid-image is retried and resumes from its checkpoint."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from dip_cli.batch import BatchObserver, Item, plan_batch, run_batch
from dip_cli.batch.plan import request_for
from dip_cli.batch.ray_tasks import RayExecutor, RayOptions
from dip_cli.errors import InputError
from dip_cli.io import load_image
from dip_cli.options import RunOptions
from dip_cli.restore import RestoreRequest
from tests.conftest import dip_process, expect_error, real_crop, wait_for_checkpoint, write

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'dip-cli[ray]'")

ON_RAY = RayOptions("auto")  # the module's Ray is already connected: the batch uses it


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    for name, crop in (("astro", "astronaut"), ("coffee", "coffee"), ("cat", "chelsea")):
        write(root / f"{name}.png", real_crop(crop, 24))
    return root


RUN_OPTIONS = {f.name for f in fields(RunOptions)}


def template(tiny_preset: Path, **changes) -> RestoreRequest:
    """The batch's request template, with ``changes`` to it or to its run options."""
    options = RunOptions(threads=1, **{k: v for k, v in changes.items() if k in RUN_OPTIONS})
    request = RestoreRequest(task="denoise", input=Path(), preset=str(tiny_preset), iters=40, stop="fixed")
    return replace(request, options=options, **{k: v for k, v in changes.items() if k not in RUN_OPTIONS})


def metrics_iterations(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(row["iteration"]) for row in csv.DictReader(f)]


def test_ray_batch_gives_the_same_images_as_one_worker(tiny_preset, folder, tmp_path):
    plans = {way: plan_batch([folder], output_dir=tmp_path / way) for way in ("ray", "local")}
    on_ray = run_batch(plans["ray"], template(tiny_preset), ray=ON_RAY)
    local = run_batch(plans["local"], template(tiny_preset), workers=1)
    assert [o.status for o in on_ray.outcomes] == ["restored"] * 3 == [o.status for o in local.outcomes]
    for a, b in zip(plans["ray"].items, plans["local"].items, strict=True):
        assert a.output.name == b.output.name  # the same plan and names
        # same seed, same threads, same machine: the same pixels, bit for bit
        np.testing.assert_array_equal(load_image(a.output).pixels, load_image(b.output).pixels)
    assert on_ray.exit_code == 0


class Recorder:
    """A batch observer that keeps what it is told (the CLI's Rich display gets the same calls)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def batch_start(self, total, done):
        self.calls.append(("batch_start", total, done))

    def image_start(self, key, name, total, done):
        self.calls.append(("image_start", key, name))

    def image_update(self, key, status):
        self.calls.append(("image_update", key, status.iteration))

    def image_finish(self, key, outcome):
        self.calls.append(("image_finish", key, outcome.status))

    def batch_finish(self):
        self.calls.append(("batch_finish",))


def test_the_display_is_fed_by_the_tasks_progress(tiny_preset, folder, tmp_path):
    recorder = Recorder()
    plan = plan_batch([folder], output_dir=tmp_path / "out")
    run_batch(plan, template(tiny_preset, iters=200), ray=ON_RAY, observer=recorder)
    kinds = [call[0] for call in recorder.calls]
    assert kinds[0] == "batch_start" and kinds[-1] == "batch_finish"
    started = {call[2] for call in recorder.calls if call[0] == "image_start"}
    assert started == {"astro.png", "coffee.png", "cat.png"}
    for key in range(3):
        updates = [call[2] for call in recorder.calls if call[:2] == ("image_update", key)]
        assert updates and updates == sorted(updates) and updates[-1] == 200  # the last one always arrives
    assert sorted(call[2] for call in recorder.calls if call[0] == "image_finish") == ["restored"] * 3


def test_a_local_batch_does_not_import_ray(tiny_preset, folder, tmp_path):
    code = f"""
import sys
from pathlib import Path
from dip_cli.batch import plan_batch, run_batch
from dip_cli.options import RunOptions
from dip_cli.restore import RestoreRequest
plan = plan_batch([Path({str(folder)!r})], output_dir=Path({str(tmp_path / "out")!r}))
request = RestoreRequest(
    task="denoise", input=Path(), preset={str(tiny_preset)!r}, iters=3, options=RunOptions(threads=1)
)
report = run_batch(plan, request, workers=1)
assert report.exit_code == 0, report.outcomes
assert "ray" not in sys.modules, "a local batch imported ray"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_corrupt_file_fails_alone_and_a_rerun_skips_everything(cli, tiny_preset, folder, tmp_path):
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    args = ("denoise", folder, "-o", out, "--preset", tiny_preset, "--iters", "20", "--ray", "auto")
    code, _, err = cli(*args)
    assert code == 3, err
    with open(out / "summary.csv", newline="") as f:
        rows = {Path(row["input"]).name: row for row in csv.DictReader(f)}
    assert rows["broken.jpg"]["status"] == "failed" and rows["broken.jpg"]["message"]
    assert {rows[n]["status"] for n in ("astro.png", "coffee.png", "cat.png")} == {"restored"}
    assert (out / "report.html").is_file()
    code, _, err = cli(*args[:-2], "--ray", "auto")  # the rerun: nothing left to do but the bad file
    with open(out / "summary.csv", newline="") as f:
        statuses = {Path(row["input"]).name: row["status"] for row in csv.DictReader(f)}
    assert statuses == {
        "astro.png": "skipped",
        "coffee.png": "skipped",
        "cat.png": "skipped",
        "broken.jpg": "failed",
    }
    assert code == 3


def _ray_task_pids() -> list[int]:
    """Worker processes running an image (Ray titles them after the task's function)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"_restore_task" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_worker_killed_mid_image_is_retried_and_resumes_from_its_checkpoint(tiny_preset, tmp_path):
    folder = tmp_path / "one"
    write(folder / "astro.png", real_crop("astronaut", 32))
    plan = plan_batch([folder], output_dir=tmp_path / "out")
    run_dir = plan.items[0].run_dir
    killed: list[int] = []

    def kill_after_a_checkpoint() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (run_dir / "checkpoint.pt").exists() and len(metrics_iterations(run_dir)) >= 60:
                pids = _ray_task_pids()
                if pids:
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                    killed.extend(pids)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_a_checkpoint)
    killer.start()
    report = run_batch(plan, template(tiny_preset, iters=400, save_every=25), ray=ON_RAY)
    killer.join()
    assert killed, "the worker was never seen running"
    outcome = report.outcomes[0]
    assert outcome.status == "restored", outcome.message
    assert outcome.result["resumed_from"] >= 25  # resumed, not started over
    assert metrics_iterations(run_dir) == list(range(1, 401))  # no gap, no repeat
    assert plan.items[0].output.is_file()


def ctrl_c_after_the_first_checkpoint(plan, tiny_preset):
    """Run a long batch on Ray and send Ctrl-C once any image has checkpointed; its report."""

    def interrupt_after_a_checkpoint() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if any((item.run_dir / "checkpoint.pt").exists() for item in plan.items):
                time.sleep(0.3)
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    sender = threading.Thread(target=interrupt_after_a_checkpoint)
    sender.start()
    report = run_batch(plan, template(tiny_preset, iters=5000, save_every=20), ray=ON_RAY)
    sender.join()
    return report


def test_ctrl_c_interrupts_the_running_images_which_keep_their_checkpoints(tiny_preset, folder, tmp_path):
    plan = plan_batch([folder], output_dir=tmp_path / "out")
    report = ctrl_c_after_the_first_checkpoint(plan, tiny_preset)
    assert report.exit_code == 130
    statuses = [o.status for o in report.outcomes]
    assert "restored" not in statuses and statuses.count("interrupted") >= 1, statuses
    # An image stopped mid-fit keeps its checkpoint (one stopped while loading has none to keep).
    kept = [item for item, o in zip(plan.items, report.outcomes, strict=True) if o.status == "interrupted"]
    assert any((item.run_dir / "checkpoint.pt").is_file() for item in kept)
    assert not any(item.output.exists() for item in plan.items)


def test_the_tasks_stop_on_their_own_where_ray_cancel_is_lost(tiny_preset, folder, tmp_path, monkeypatch):
    """ray.cancel can miss a task being handed to its worker; the tasks also ask the batch's actor."""
    monkeypatch.setattr(ray, "cancel", lambda *args, **kwargs: None)  # every cancel lost
    plan = plan_batch([folder], output_dir=tmp_path / "out")
    report = ctrl_c_after_the_first_checkpoint(plan, tiny_preset)
    assert report.exit_code == 130
    statuses = [o.status for o in report.outcomes]
    assert "restored" not in statuses and statuses.count("interrupted") >= 1, statuses
    assert not any(item.output.exists() for item in plan.items)


def test_ray_refuses_up_front_what_cannot_run(cli, tiny_preset, folder, tmp_path):
    plan = plan_batch([folder], output_dir=tmp_path / "out")
    with pytest.raises(InputError, match="no Ray node has 64 CPU"):
        run_batch(plan, template(tiny_preset), ray=RayOptions("auto", cpus_per_image=64))
    with pytest.raises(InputError, match="--workers is for local batches"):
        run_batch(plan, template(tiny_preset), ray=ON_RAY, workers=2)
    with pytest.raises(InputError, match="--gpus-per-image"):
        run_batch(plan, template(tiny_preset, device="cuda"), ray=RayOptions("auto", gpus_per_image=0))
    assert not any(item.run_dir.exists() for item in plan.items)  # nothing started
    expect_error(cli("denoise", folder, "--ray", "tcp://x"), "ray://host:port")
    expect_error(cli("denoise", folder / "astro.png", "--ray", "local"), "--ray is for batches")
    expect_error(cli("denoise", folder, "--gpus-per-image", "1"), "are for batches on Ray")


def test_the_node_probe_names_files_a_worker_cannot_see(tiny_preset, tmp_path):
    missing = tmp_path / "elsewhere" / "photo.png"
    item = Item(missing, Path("photo.png"), tmp_path / "o.png", tmp_path / "o.dip")
    with pytest.raises(InputError, match=r"cannot read .*photo\.png.*storage"):
        RayExecutor(ON_RAY).run([(item, request_for(item, template(tiny_preset), None))], BatchObserver())
    assert not item.run_dir.exists()  # refused before any image started


def test_without_ray_installed_the_error_says_how_to_install(cli, folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    expect_error(cli("denoise", folder, "--ray", "local"), "pip install 'dip-cli[ray]'")


def test_a_tiled_photo_interrupted_after_its_first_tile_resumes_on_ray(cli, tiny_preset, tmp_path):
    """The cluster case Ray is for: a large photo, Ctrl-C once its first tile has finished (in the
    second tile's fit, after its first checkpoint), then the same command again on Ray continues
    the tiles: every executor follows one resume rule."""
    folder = tmp_path / "photos"
    write(folder / "big.png", real_crop("astronaut", 48))
    out = tmp_path / "out"
    args = ("denoise", folder, "-o", out, "--preset", tiny_preset, "--iters", "400", "--stop", "fixed")
    args += ("--tile", "32", "--threads", "1", "--save-every", "50")
    tiles = out / "big.dip" / "tiles"
    process = dip_process(*args)
    wait_for_checkpoint(tiles / "0001", process)  # tile 0 finished, tile 1 in its fit
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130, process.stderr.read().decode()
    assert not (out / "big.png").exists() and (tiles / "plan.json").is_file()
    first_tile = (tiles / "0000" / "result.npy").stat().st_mtime_ns

    code, _, err = cli(*args, "--ray", "auto")
    assert code == 0, err
    with open(out / "summary.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["status"] == "restored" and row["message"] == "resumed", row
    assert int(row["iterations"]) == 4 * 400
    assert (tiles / "0000" / "result.npy").stat().st_mtime_ns == first_tile  # kept, not fitted again
    assert (out / "big.png").is_file()
