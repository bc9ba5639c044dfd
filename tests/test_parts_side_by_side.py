"""Parts fitted side by side in worker processes (``dip_cli.parts`` over ``dip_cli.workers``):
the same image as one after another, one progress bar over all parts, and nothing lost when
the run is interrupted, a worker fails or the parent is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.common import descendants
from dip_cli.errors import Interrupted
from dip_cli.operators import Identity, simulate_noise
from dip_cli.parts import PartsProgress, plan_layout
from dip_cli.presets import load_preset
from dip_cli.progress import CallbackObserver, Event
from dip_cli.run_folder import RunFolder
from tests.conftest import TINY_PRESET, real_crop
from tests.parts_support import SkipRecorder, fixed, in_tiles


@pytest.fixture(scope="module")
def tiny(tiny_preset):
    return load_preset(str(tiny_preset))


def test_parts_fitted_in_two_worker_processes_give_the_image_fitted_in_turn(tiny):
    """Each worker fits with one thread, as the in-turn run does with threads=1, and tiles are
    blended in tile order whatever order they finish in: the same image bit for bit."""
    noisy = simulate_noise(real_crop("coffee", 80), 25, seed=1)
    settings = fixed(tiny, 30)
    layout = plan_layout(noisy, Identity(), 48)  # 2 x 2 tiles
    statuses = []
    in_turn, record_a = in_tiles(noisy, Identity(), settings, layout, threads=1, workers=1)
    wall = time.perf_counter()
    side_by_side, record_b = in_tiles(
        noisy, Identity(), settings, layout, threads=2, workers=2, observer=CallbackObserver(statuses.append)
    )
    wall = time.perf_counter() - wall
    np.testing.assert_array_equal(side_by_side, in_turn)
    assert record_b.iterations == record_a.iterations == 4 * 30
    assert 0 < record_b.seconds <= wall + 0.01  # wall time (to 0.01 s): two tiles at once count once
    done = [s.iteration for s in statuses]
    assert done == sorted(done) and done[-1] == statuses[-1].iters == 4 * 30  # one bar over all tiles


def test_one_bar_over_parts_ignores_a_progress_message_that_comes_after_its_part_ended():
    # Under load a worker's last message arrived after the part's end and was counted again:
    # the bar read 150 of 120 (seen on a busy 2-core machine).
    from dip_cli.fit import Status

    statuses = []
    progress = PartsProgress(CallbackObserver(statuses.append), "photo (2 tiles)", count=2, iters=30)
    progress.start(0)
    status = Status(30, 30, 0.01, 20.0, float("nan"), None, None)
    progress.update(0, status)
    progress.update(1, replace(status, iteration=10))
    progress.done(0)
    progress.update(0, status)  # late: part 0 has ended
    progress.update(1, replace(status, iteration=30))
    progress.done(1)
    assert [s.iteration for s in statuses] == [30, 40, 60] and statuses[-1].iters == 60


def test_a_resumed_parts_earlier_steps_reach_the_display_as_skipped_and_messages_are_dispatched():
    from dip_cli.fit import Status

    observer = SkipRecorder()
    progress = PartsProgress(observer, "photo (2 tiles)", count=2, iters=30)
    progress.start(0)
    progress.receive((Event.START, 0, ("tile 0", 30, 20)))  # part 0 resumed at its step 20
    progress.receive((Event.START, 1, ("tile 1", 30, 0)))  # a fresh part: nothing to skip
    progress.receive((Event.UPDATE, 0, Status(25, 30, 0.01, 20.0, float("nan"), None, None)))
    assert observer.skipped == [20] and progress.running == {0: 25}
    PartsProgress(CallbackObserver(print), "photo", count=1, iters=30).resumed(0, 20)  # Silent: a no-op


def test_auto_fits_parts_side_by_side_on_a_cpu_one_per_thread_when_the_work_pays(tiny):
    from dip_cli.resources import MIN_PARALLEL_WORK, parallel_fits

    def parallel(work: int, threads: int, count: int = 4) -> int:
        return parallel_fits("cpu", count, work, threads, tiny, 3, (48, 48))

    assert parallel(MIN_PARALLEL_WORK, threads=2) == 2
    assert parallel(MIN_PARALLEL_WORK, threads=8) == 4  # no more workers than parts
    assert parallel(MIN_PARALLEL_WORK, threads=1) == 1
    assert parallel(MIN_PARALLEL_WORK - 1, threads=2) == 1  # not worth starting processes for
    assert parallel(MIN_PARALLEL_WORK, threads=2, count=1) == 1


def test_an_interrupted_side_by_side_run_resumes_to_the_same_image(tiny, tmp_path):
    """Ctrl-C while two workers fit: both checkpoint, finished tiles keep their output, and the
    resumed run gives the uninterrupted run's image bit for bit."""
    noisy = simulate_noise(real_crop("coffee", 80), 25, seed=1)
    settings = fixed(tiny, 100)  # ~1 s a tile: the parent sees the second round well before it ends
    layout = plan_layout(noisy, Identity(), 48)
    options = dict(threads=2, workers=2)
    uninterrupted, _ = in_tiles(noisy, Identity(), settings, layout, **options)
    sent = []
    tiles = tmp_path / "run" / "tiles"

    def ctrl_c_in_the_second_round(status):
        # Judged by the run folder, not the step counts: the progress messages the parent reads
        # can lag the workers, and the two workers need not keep pace on a loaded machine.
        finished = len(list(tiles.glob("*/result.npy")))
        if finished >= 2 and any(tiles.glob("*/checkpoint.pt")) and not sent:
            sent.append(status.iteration)
            os.kill(os.getpid(), signal.SIGINT)

    with RunFolder(tmp_path / "run") as run, pytest.raises(Interrupted, match="SIGINT"):
        in_tiles(noisy, Identity(), settings, layout, run=run, save_every=10,
                         observer=CallbackObserver(ctrl_c_in_the_second_round), **options)  # fmt: skip
    assert len(list(tiles.glob("*/result.npy"))) >= 2  # the first round's tiles were kept
    checkpointed = len(list(tiles.glob("*/checkpoint.pt")))
    assert checkpointed >= 1  # the running ones checkpointed
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"
    observer = SkipRecorder()
    with RunFolder(tmp_path / "run", resume=True) as run:
        resumed, record = in_tiles(
            noisy, Identity(), settings, layout, run=run, save_every=10, observer=observer, **options
        )
    assert record.resumed_from >= 10
    # Each resumed tile's worker told the parent how many of its steps an earlier session did.
    assert len(observer.skipped) == checkpointed and all(0 < s < 100 for s in observer.skipped)
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_a_resumed_side_by_side_run_with_one_tile_left_gives_the_same_image(tiny, tmp_path):
    """The last tile of a side-by-side run, fitted in this process after a stop, has the
    threads a worker had: the image is the uninterrupted run's bit for bit."""
    noisy = simulate_noise(real_crop("coffee", 80), 25, seed=1)
    settings = fixed(tiny, 30)
    layout = plan_layout(noisy, Identity(), 48)
    options = dict(threads=2, workers=2)
    with RunFolder(tmp_path / "run") as run:
        uninterrupted, _ = in_tiles(noisy, Identity(), settings, layout, run=run, **options)
    (tmp_path / "run" / "tiles" / "0003" / "result.npy").unlink()  # as if stopped before its start
    with RunFolder(tmp_path / "run", resume=True) as run:
        resumed, _ = in_tiles(noisy, Identity(), settings, layout, run=run, **options)
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_a_part_that_fails_in_a_worker_stops_the_run_with_its_error(tiny):
    from dip_cli.errors import FitError

    noisy = simulate_noise(real_crop("coffee", 80), 25, seed=1)
    from dataclasses import replace

    settings = fixed(tiny, 30)
    settings = replace(settings, fit=replace(settings.fit, lr=1e30))  # diverges at once
    layout = plan_layout(noisy, Identity(), 48)
    with pytest.raises(FitError, match="diverged"):
        in_tiles(noisy, Identity(), settings, layout, threads=2, workers=2)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the script imports tests.conftest
KILL_PARENT = """
import sys, numpy as np
from dip_cli.operators import Identity, simulate_noise
from dip_cli.presets import load_preset
from dip_cli.run_folder import RunFolder
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout, restore_in_tiles
from tests.conftest import real_crop
preset, folder, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "resume"
noisy = simulate_noise(real_crop("coffee", 80)[:48], 25, seed=1)  # two tiles, one per worker
# 400 steps: no worker can finish its tile before the other has checkpointed, on any machine
settings = load_preset(preset).with_overrides(iters=400, stop="fixed")
layout = plan_layout(noisy, Identity(), 48)
with RunFolder(folder, resume=resume) as run:
    out, _ = restore_in_tiles(noisy, Identity(), settings, layout, RunOptions(threads=2, save_every=20),
                              workers=2, run=run)
np.save(folder + ".npy", out)
"""


def test_kill_9_of_the_parent_stops_its_workers_with_a_checkpoint(tmp_path):
    """The workers get SIGTERM when their parent dies (Linux), checkpoint and exit: none is left
    running, and the run resumes to the image of an uninterrupted one."""
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signals are Linux-only")
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET)
    folder = str(tmp_path / "run")
    command = [sys.executable, "-c", KILL_PARENT, str(preset), folder]
    child = subprocess.Popen([*command, "new"], cwd=ROOT)
    tiles = tmp_path / "run" / "tiles"
    deadline = time.time() + 120
    while len(list(tiles.glob("*/checkpoint.pt"))) < 2:  # both workers are fitting
        assert child.poll() is None and time.time() < deadline
        time.sleep(0.05)
    workers = descendants(child.pid)
    child.kill()
    child.wait(timeout=30)
    for _ in range(100):  # they checkpoint at their next step, release their locks and exit
        if not _workers_alive(tiles) and not any(os.path.exists(f"/proc/{pid}") for pid in workers):
            break
        time.sleep(0.1)
    assert len(workers) >= 2 and not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
    # They stopped mid-tile with a checkpoint; they did not run on to finish their tiles.
    assert len(list(tiles.glob("*/checkpoint.pt"))) == 2 and not list(tiles.glob("*/result.npy"))
    for run in ([*command, "resume"], [*command[:-1], folder + "-fresh", "new"]):  # resumed; fresh
        done = subprocess.run(run, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(folder + ".npy"), np.load(folder + "-fresh.npy"))


def _workers_alive(tiles) -> bool:
    """Whether a process still holds a tile's lock (flock: released when its process ends)."""
    import fcntl

    for lock in tiles.glob("*/.lock"):
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    return False


UNGUARDED_SCRIPT = """
import numpy as np
from dip_cli.operators import Identity, simulate_noise
from dip_cli.presets import load_preset
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout, restore_in_tiles
print("top level ran", flush=True)
noisy = simulate_noise(np.random.default_rng(0).random((80, 80, 3), dtype=np.float32), 25, seed=1)
settings = load_preset(PRESET).with_overrides(iters=5, stop="fixed")
layout = plan_layout(noisy, Identity(), 48)
out, _ = restore_in_tiles(noisy, Identity(), settings, layout, RunOptions(threads=2), workers=2)
print("restored", out.shape, flush=True)
"""


def test_a_script_without_a_main_guard_is_not_rerun_by_the_workers(tmp_path):
    """Spawned workers would re-import the caller's script; dip hides it while they start."""
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET)
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED_SCRIPT.replace("PRESET", repr(str(preset))))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["top level ran", "restored (80, 80, 3)"]
