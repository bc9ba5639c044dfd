"""Restoring in parts (``dip_cli.parts``): each tile its own DIP problem, blended without seams,
resumable tile by tile, and each operator's tile lined up with what it observes; and the
resource policy that sizes the tiles (``dip_cli.resources``)."""

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
import torch

from benchmarks.common import tree_pss
from dip_cli import resources
from dip_cli.core import restore_array
from dip_cli.errors import InputError, Interrupted
from dip_cli.jpeg_file import read_jpeg
from dip_cli.metrics import psnr
from dip_cli.operators import Downsample, Identity, JpegModel, Mask, encode_jpeg, simulate_noise
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout
from dip_cli.presets import load_preset
from dip_cli.progress import CallbackObserver
from dip_cli.provenance import Record
from dip_cli.run_folder import RunFolder
from dip_cli.tiles import plan_tiles
from tests.conftest import real_crop
from tests.parts_support import SkipRecorder, fixed, in_tiles


@pytest.fixture(scope="module")
def tiny(tiny_preset):
    return load_preset(str(tiny_preset))


def restore(y, operator, settings, **options) -> tuple[np.ndarray, Record]:
    """``core.restore_array`` on one thread; ``options`` are ``RunOptions``' fields."""
    return restore_array(y, operator, settings, RunOptions(**{"threads": 1, **options}))


def test_a_tiled_restore_is_close_to_the_whole_image_one_and_has_no_seams(tiny):
    clean = real_crop("astronaut", 96)
    noisy = simulate_noise(clean, 25, seed=3)
    settings = fixed(tiny, 200)
    whole, _ = restore(noisy, Identity(), settings, tile="off")
    tiled, record = restore(noisy, Identity(), settings, tile=64)  # 2 x 2 tiles, 16 px overlap
    assert record.stop_reason == "budget" and record.iterations == 4 * 200
    gain_whole, gain_tiled = psnr(whole, clean) - psnr(noisy, clean), psnr(tiled, clean) - psnr(noisy, clean)
    # The tiny test net at a fixed budget: the tiles are not worse than the whole-image fit
    # (a smaller problem fits its content sooner).
    # Here (AVX-512, 200 steps): whole +0.8, tiles +3.1 dB; the margins leave room for other CPUs.
    assert gain_tiled > 1.5 and gain_tiled > gain_whole - 1.0, (gain_whole, gain_tiled)
    # No seams: the step between neighbouring pixels where tiles meet is like the step elsewhere.
    layout = plan_tiles(96, 96, 64, 16)
    borders = sorted(
        {t.left + t.width for t in layout if t.left + t.width < 96} | {t.left for t in layout if t.left}
    )
    steps = np.abs(np.diff(tiled, axis=1)).mean(axis=(0, 2))  # (95,) mean step between columns c, c+1
    seam_steps = steps[[b - 1 for b in borders]]
    assert seam_steps.max() < 2.0 * np.median(steps), (seam_steps, np.median(steps))


def test_auto_fits_up_to_a_tile_whole_and_tiles_anything_larger():

    small = np.zeros((40, 40, 3), np.float32)
    assert plan_layout(small, Identity(), "auto") is None
    assert plan_layout(np.zeros((512, 300, 3), np.float32), Identity(), "auto") is None
    big = np.zeros((1100, 700, 3), np.float32)
    layout = plan_layout(big, Identity(), "auto")
    assert layout.tile == resources.AUTO_TILE and len(layout) == 3 * 2
    assert max(max(t.height, t.width) for t in layout) <= resources.AUTO_TILE
    # super-resolution: the output's size counts (200 px x 4 = 800 px: 2 x 2 tiles)
    assert len(plan_layout(np.zeros((200, 200, 3), np.float32), Downsample(4, 3), "auto")) == 4
    assert plan_layout(big, Identity(), "off") is None
    assert plan_layout(small, Identity(), 64) is None  # one tile would be the whole image
    with pytest.raises(InputError, match="tile must be 'auto', 'off' or a side"):
        plan_layout(small, Identity(), 4)


def test_the_fingerprint_is_the_one_earlier_versions_wrote_so_their_run_folders_resume():
    """Digests stored from dip 0.2.0 (which hashed the whole image's (1, C, H, W) tensor): the
    fingerprint, hashed one plane at a time, must not change, or old run folders would not resume."""
    from dip_cli.provenance import fingerprint
    from dip_cli.settings import Settings

    y = (np.arange(20 * 24 * 3, dtype=np.float32).reshape(20, 24, 3) % 251) / 250
    known = np.ones((20, 24), np.float32)
    known[5:9, 3:11] = 0
    masked = fingerprint(y, Mask(torch.from_numpy(known)), Settings(), 3)
    assert masked["observation_sha256"] == "d222ff1f088b5ca4bb105ffca0af0cb397a10fbdeafcc989c8c2220a352cdbbe"
    assert masked["seed"] == 3 and masked["operator"]["kind"] == "mask"
    plain = fingerprint(y, Identity(), Settings(), 0)
    assert plain["observation_sha256"] == "8a8fe20e2e28608a7ecd018a0b90a3415ec5387fe1ba793cdf0858c980305ffc"
    assert plain["settings"] == masked["settings"]  # the settings' essentials, as JSON
    assert fingerprint(y[::-1].copy(), Identity(), Settings(), 0) != plain


def test_auto_tiles_are_as_large_as_the_preset_s_memory_estimate_allows(monkeypatch):
    def estimate(settings, side):
        return resources.fit_bytes(settings, 3, side, side)

    photo = np.zeros((1024, 1024, 3), np.float32)
    sides = {}
    for name in ("jpeg", "sr4", "denoise-paper"):  # presets that set no [tile] max_side
        settings = load_preset(name)
        side = sides[name] = resources.auto_tile_side(settings, 3)
        assert side % 16 == 0 and 32 <= side <= resources.AUTO_TILE
        assert estimate(settings, side) <= resources.AUTO_TILE_BYTES  # the true estimate, not its fit
        if side < resources.AUTO_TILE:  # the largest such side
            assert estimate(settings, side + 16) > resources.AUTO_TILE_BYTES
        layout = plan_layout(photo, Identity(), "auto", settings)
        assert max(max(t.height, t.width) for t in layout) <= side
        # up to the paper's 512 px an image is fitted whole whatever the network (no max_side)
        assert plan_layout(photo[:512, :400], Identity(), "auto", settings) is None
    assert sides["denoise-paper"] < sides["sr4"] < sides["jpeg"]
    # a GPU fits its tiles one at a time: there only its free memory bounds them
    monkeypatch.setattr(resources, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(resources, "available_bytes", lambda device: 64 * 2**30)
    assert resources.auto_tile_side(load_preset("denoise-paper"), 3) == resources.AUTO_TILE
    monkeypatch.setattr(resources, "available_bytes", lambda device: 2**30)
    small_gpu = resources.auto_tile_side(load_preset("denoise-paper"), 3)
    assert sides["denoise-paper"] < small_gpu < resources.AUTO_TILE
    assert estimate(load_preset("denoise-paper"), small_gpu) <= 0.8 * 2**30
    # the light JPEG net takes a 1 MP photo in 2 x 2 tiles, not 3 x 3 of 384 px
    assert len(plan_layout(photo, Identity(), "auto", load_preset("jpeg"))) == 4


def test_a_preset_s_max_side_caps_auto_tiles_on_any_device(monkeypatch):
    """The denoisers ask for tiles of at most 256 px (their budget fits such a tile, not a
    384 px one): a 1 MP photo gets 5 x 5 tiles, an image up to 256 px is fitted whole, a larger
    one is tiled, and a GPU with memory to spare keeps the cap."""

    denoise = load_preset("denoise")
    assert denoise.tile.max_side == 256 and load_preset("jpeg").tile.max_side == resources.AUTO_TILE
    photo = np.zeros((1024, 1024, 3), np.float32)
    layout = plan_layout(photo, Identity(), "auto", denoise)
    assert layout.tile == 256 and len(layout) == 5 * 5
    assert max(max(t.height, t.width) for t in layout) <= 256
    assert plan_layout(photo[:256, :200], Identity(), "auto", denoise) is None
    assert len(plan_layout(photo[:300, :300], Identity(), "auto", denoise)) == 2 * 2
    assert plan_layout(photo[:300, :300], Identity(), "auto", load_preset("jpeg")) is None
    monkeypatch.setattr(resources, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(resources, "available_bytes", lambda device: 64 * 2**30)
    assert resources.auto_tile_side(denoise, 3) == 256


def test_a_huge_photo_s_planes_are_paid_from_its_fits_budget():
    """The parent holds the image's planes (observation, blended result) beside the fits: at
    1 MP they are free, at 24 MP side-by-side fits get smaller tiles so the run stays within
    fits x (WORKER_BYTES + AUTO_TILE_BYTES), and one fit alone (in the parent) shrinks less."""

    budget, free = resources.AUTO_TILE_BYTES, resources.FREE_PLANE_BYTES
    assert resources.fit_budget(0, 2) == resources.fit_budget(free, 2) == budget
    huge = 2 * 6000 * 4000 * 3 * 4  # a 24 MP photo's observation and result, float32
    assert resources.fit_budget(huge, 2) == budget - (huge - free) // 2
    assert resources.fit_budget(huge, 2) < resources.fit_budget(huge, 1) < budget  # in the parent: no worker
    assert resources.fit_budget(huge, 8) > resources.fit_budget(huge, 2)  # shared among more fits
    assert resources.fit_budget(10 * huge, 2) == resources.MIN_FIT_BYTES
    settings = load_preset("sr4")  # the denoisers' net, with no [tile] max_side below its memory bound
    photo = np.zeros((1024, 1024, 3), np.float32)
    assert resources.image_planes_bytes(photo, Identity()) == 2 * photo.nbytes
    mask = Mask(torch.ones(1024, 1024))  # the operator's buffers count too
    assert resources.image_planes_bytes(photo, mask) == 2 * photo.nbytes + 1024 * 1024 * 4 + 4
    one_mp = plan_layout(photo, Identity(), "auto", settings, threads=2)
    assert one_mp.tile == resources.auto_tile_side(settings, 3)  # 1 MP: the per-fit bound alone
    big = np.broadcast_to(np.float32(0), (4000, 6000, 3))  # 24 MP without allocating it
    side_by_side = plan_layout(big, Identity(), "auto", settings, threads=2)
    alone = plan_layout(big, Identity(), "auto", settings, threads=1)
    assert side_by_side.tile < alone.tile <= one_mp.tile
    side = side_by_side.tile
    assert resources.fit_bytes(settings, 3, side, side) <= resources.fit_budget(huge, 2)

    assert resources.fits_at_once("cpu", None) == resources.default_threads(resources.AUTO_TILE**2)


@pytest.mark.parametrize("warm_start", [False, True])
def test_resuming_mid_tile_gives_the_same_image_bit_for_bit(tiny, tmp_path, warm_start):
    clean = real_crop("coffee", 80)
    noisy = simulate_noise(clean, 25, seed=1)
    settings = fixed(tiny, 40)
    layout = plan_layout(noisy, Identity(), 48)  # 2 x 2 tiles

    def tiled(**options):
        return in_tiles(noisy, Identity(), settings, layout, threads=1, warm_start=warm_start, **options)

    uninterrupted, _ = tiled()
    statuses = []

    def ctrl_c_in_the_third_tile(status):
        statuses.append(status.iteration)
        if status.iteration == 2 * 40 + 25:  # tile 2, iteration 25 (the bar counts all tiles)
            os.kill(os.getpid(), signal.SIGINT)

    first_session = time.perf_counter()
    with RunFolder(tmp_path / "run") as run, pytest.raises(Interrupted):
        tiled(run=run, save_every=10, observer=CallbackObserver(ctrl_c_in_the_third_tile))
    first_session = time.perf_counter() - first_session
    assert statuses == sorted(statuses)  # one bar over all tiles, never going back
    tiles = tmp_path / "run" / "tiles"
    assert (tiles / "0001" / "result.npy").is_file() and not (tiles / "0002" / "result.npy").exists()
    interrupted = json.loads((tmp_path / "run" / "run.json").read_text())
    assert interrupted["status"] == "interrupted"
    assert 0 < interrupted["seconds"] <= first_session + 0.01
    with RunFolder(tmp_path / "run") as run, pytest.raises(InputError, match="--resume"):
        tiled(run=run)  # never silently restarted
    second_session = time.perf_counter()
    observer = SkipRecorder()
    with RunFolder(tmp_path / "run", resume=True) as run:
        resumed, record = tiled(run=run, save_every=10, observer=observer)
    second_session = time.perf_counter() - second_session
    assert record.resumed_from >= 20  # the third tile resumed from its checkpoint
    assert observer.skipped == [record.resumed_from]  # its steps were done before: not this session's
    # The run's time is its wall time over both sessions, not the tiles' times summed.
    earlier = interrupted["seconds"]
    assert earlier < record.seconds <= earlier + second_session + 0.01  # (rounded to 0.01 s)
    np.testing.assert_array_equal(resumed, uninterrupted)
    assert not list(tiles.glob("*/checkpoint.pt"))  # each result replaced its tile's checkpoint
    assert len(list(tiles.glob("*/weights.pt"))) == int(warm_start)  # only the last tile's, to warm-start
    with pytest.raises(InputError, match="other inputs"):  # other tiles: not resumable
        restore(noisy, Identity(), settings, tile=40, run_dir=tmp_path / "run", resume=True)


def test_a_warm_start_begins_each_tile_from_the_previous_ones_weights(tiny):
    noisy = simulate_noise(real_crop("coffee", 80), 25, seed=1)
    settings = fixed(tiny, 30)
    layout = plan_layout(noisy, Identity(), 48)
    seen = []

    def first_loss(status):  # the loss at the first report of each tile (iteration 25 of each)
        if status.iteration % 30 == 25:
            seen.append(status.loss)

    losses = {}
    for warm in (False, True):
        seen.clear()
        in_tiles(
            noisy,
            Identity(),
            settings,
            layout,
            threads=1,
            warm_start=warm,
            observer=CallbackObserver(first_loss),
        )
        losses[warm] = list(seen)
    assert losses[False][0] == losses[True][0]  # the first tile starts fresh either way
    assert losses[False][1:] != losses[True][1:]  # the others do not


def test_a_super_resolution_tile_maps_to_the_low_res_pixels_under_it():
    operator = Downsample(4, 3)
    low = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    y, tile_operator = operator.crop(low, 32, 48, 64, 40)
    np.testing.assert_array_equal(y, low[8:24, 12:22])
    assert tile_operator.output_size(*y.shape[:2]) == (64, 40)
    layout = plan_tiles(120, 160, 64, 16, multiple=4)
    assert all(v % 4 == 0 for t in layout for v in t.box)
    with pytest.raises(ValueError, match="4-pixel grid"):
        operator.crop(low, 2, 0, 64, 64)


def test_a_tiled_super_resolution_restores_the_whole_output(tiny):
    low = real_crop("chelsea", 24)
    out, record = restore(low, Downsample(4, 3), fixed(tiny, 5), tile=64)
    assert out.shape == (96, 96, 3) and record.iterations == 4 * 5


def test_an_inpainting_tile_without_known_pixels_is_refused_before_any_work(tiny):
    known = np.ones((80, 80), bool)
    known[:, :50] = False  # the whole left part is a hole: the left tiles have nothing to fit
    y = real_crop("astronaut", 80) * known[..., None]
    with pytest.raises(InputError, match="no known pixels"):
        restore(y, Mask(torch.from_numpy(known)), fixed(tiny, 5), tile=40)
    out, _ = restore(y, Mask(torch.from_numpy(known)), fixed(tiny, 5), tile="off")  # whole image: fine
    np.testing.assert_array_equal(out[known], y[known])


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
def test_a_jpeg_tile_holds_exactly_the_files_blocks_under_it(subsampling):
    pixels = real_crop("astronaut", 100)[:, :92]  # partial blocks on both edges
    jpeg = read_jpeg(encode(pixels, 30, subsampling))
    whole = JpegModel(jpeg)
    x = torch.rand(1, 3, 100, 92)
    layout = plan_tiles(100, 92, 48, 16, multiple=whole.tile_multiple())
    full = _blocks(whole, whole(x))
    for tile in layout:
        _, part = whole.crop(np.zeros((100, 92, 3), np.float32), *tile.box)
        top, left, height, width = tile.box
        mine = _blocks(part, part(x[..., top : top + height, left : left + width]))
        for c, (v, h) in enumerate(whole.factors):
            rows, cols = mine[c].shape[:2]
            expected = full[c][
                top // (8 * v) : top // (8 * v) + rows, left // (8 * h) : left // (8 * h) + cols
            ]
            torch.testing.assert_close(mine[c], expected, atol=1e-5, rtol=0)


def encode(pixels: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(np.round(pixels * 255).astype(np.uint8))
    image.save(buffer, "JPEG", quality=quality, subsampling={"4:4:4": 0, "4:2:0": 2}[subsampling])
    return buffer.getvalue()


def _blocks(model: JpegModel, flat: torch.Tensor) -> list[torch.Tensor]:
    """The operator's flat coefficient vector as per-component (rows, cols, 64) blocks."""
    parts, start = [], 0
    for rows, cols in model.block_shapes:
        parts.append(flat[0, start : start + rows * cols * 64].reshape(rows, cols, 64))
        start += rows * cols * 64
    return parts


def test_a_rotated_jpeg_is_tiled_as_stored_and_comes_back_upright(tiny):
    from dip_cli.jpeg_file import JpegCoefficients

    pixels = real_crop("coffee", 96)[:, :80]
    jpeg = read_jpeg(encode_jpeg(pixels, 40))
    rotated = JpegCoefficients(**{**jpeg.__dict__, "orientation": 6})  # stored 96x80, shown 80x96
    shown = np.ascontiguousarray(np.rot90(pixels, -1))
    out, _ = restore(shown, JpegModel(rotated), fixed(tiny, 60), tile=48)
    whole, _ = restore(shown, JpegModel(rotated), fixed(tiny, 60), tile="off")
    assert out.shape == whole.shape == shown.shape
    assert psnr(out, shown) > 20 and psnr(out, whole) > 20  # upright, like the whole-image fit


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc smaps_rollup")
def test_a_large_image_runs_in_tiles_within_a_memory_bound(tmp_path):
    """1.5 MP with the default denoising net: whole, it would need ~6 GiB; in 512 px tiles, two
    fitted at once in worker processes, less than 3 GiB for the parent and its workers together
    (their proportional set sizes summed every 20 ms: memory they share, such as torch's
    libraries, counted once)."""
    script = """
import numpy as np, dip_cli
from dip_cli.presets import load_preset
from dip_cli.operators import Identity
from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout, restore_in_tiles
y = np.random.default_rng(0).random((1024, 1536, 3), dtype=np.float32)
settings = load_preset("denoise").with_overrides(iters=1, stop="fixed")
layout = plan_layout(y, Identity(), 512)
out, record = restore_in_tiles(y, Identity(), settings, layout, RunOptions(threads=2), workers=2)
assert out.shape == y.shape, out.shape
print(record.iterations)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak, most_processes = 0, 0
    while child.poll() is None:
        sizes = tree_pss(child.pid)  # benchmarks.common
        peak, most_processes = max(peak, sum(sizes)), max(most_processes, len(sizes))
        time.sleep(0.02)
    out, err = child.communicate()
    assert child.returncode == 0, err[-2000:]
    assert int(out) == 12  # it ran in 3 x 4 tiles, one step each
    assert most_processes >= 3  # the parent and two workers (and multiprocessing's resource tracker)
    assert peak < 3 * 2**30, f"peak RSS {peak / 2**30:.2f} GiB"
    print(f"peak {peak / 2**30:.2f} GiB")


def with_restarts(settings, restarts: int):

    return replace(settings, fit=replace(settings.fit, restarts=restarts))


def test_restarts_average_independently_seeded_fits(tiny):
    noisy = simulate_noise(real_crop("coffee", 48), 25, seed=2)
    settings = fixed(tiny, 20)
    fits = [restore(noisy, Identity(), settings, tile="off", seed=s)[0] for s in (5, 6, 7)]
    statuses, names = [], []

    class Recording(CallbackObserver):
        def start(self, name: str, total: int, done: int) -> None:
            names.append(name)

    mean, record = restore(
        noisy, Identity(), with_restarts(settings, 3), seed=5, observer=Recording(statuses.append)
    )
    assert names == ["image (3 fits)"]  # one bar, labelled once
    np.testing.assert_allclose(mean, np.mean(fits, axis=0), atol=1e-6)
    assert record.iterations == 3 * 20 and record.stop_reason == "budget"
    assert [s.iteration for s in statuses] == sorted(s.iteration for s in statuses)  # one bar, 3 fits
    assert statuses[-1].iteration == statuses[-1].iters == 60


def test_restarts_compose_with_tiles_and_resume_after_a_kill(tiny, tmp_path):
    noisy = simulate_noise(real_crop("coffee", 80), 25, seed=1)
    settings = with_restarts(fixed(tiny, 20), 2)
    uninterrupted, record = restore(noisy, Identity(), settings, tile=48)  # 2 x 2 tiles x 2 fits
    assert record.iterations == 8 * 20

    sent = []

    def ctrl_c_in_the_second_fit_of_tile_1(status):
        if status.iteration >= 3 * 20 + 12 and not sent:  # the bar counts every fit of every tile
            sent.append(status.iteration)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        restore(noisy, Identity(), settings, tile=48, run_dir=tmp_path / "run", save_every=10,
                observer=CallbackObserver(ctrl_c_in_the_second_fit_of_tile_1))  # fmt: skip
    parts = tmp_path / "run" / "tiles"
    assert sorted(p.parent.name for p in parts.glob("*/result.npy")) == ["0000", "0001", "0002"]
    resumed, record = restore(noisy, Identity(), settings, tile=48, run_dir=tmp_path / "run", resume=True,
                              save_every=10)  # fmt: skip
    assert record.resumed_from >= 10
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_restarts_on_a_jpeg_average_the_fits_then_project_the_mean_into_the_box(tiny):
    """jpeg-avg3: the fits are averaged as fitted and the mean is projected once, so the result
    lies in the file's quantization box (a mean of projections would be a different image)."""
    from dip_cli.io import decode_image
    from dip_cli.operators import to_tensor

    data = encode_jpeg(real_crop("astronaut", 48), 10)
    jpeg = read_jpeg(data)
    project = JpegModel(jpeg).finish  # the projection, and the blend with the file's decodes
    settings = fixed(tiny, 15)
    shown = decode_image(data).pixels  # the loss fits the file; the finish blends with its decode
    fits = [restore(shown, JpegModel(jpeg, project=False), settings, tile="off", seed=s)[0] for s in (3, 4)]
    mean = torch.from_numpy(np.mean(fits, axis=0).transpose(2, 0, 1).copy())[None]
    expected = project(mean, to_tensor(shown)).clamp(0, 1)[0].permute(1, 2, 0).numpy()

    averaged, record = restore(shown, JpegModel(jpeg), with_restarts(settings, 2), seed=3)
    assert record.iterations == 2 * 15
    np.testing.assert_allclose(averaged, expected, atol=1e-5)
    model = JpegModel(jpeg)

    def share_in_the_box(image: torch.Tensor) -> float:
        with torch.no_grad():
            return float(((model(image) - model.target).abs() <= model.step / 2 + 1e-4).float().mean())

    # Only the final clamp to [0, 1] can leave a coefficient outside (a 15-step fit is far off).
    in_box = share_in_the_box(torch.from_numpy(averaged.transpose(2, 0, 1).copy())[None])
    outside, outside_before = 1 - in_box, 1 - share_in_the_box(mean)
    assert outside < 0.05 and outside < outside_before / 3, (outside, outside_before)


# --- parts fitted side by side in worker processes ----------------------------------------------
