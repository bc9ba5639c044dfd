"""The Python API: arrays in, arrays out, with the input's layout and dtype; every error named."""

from __future__ import annotations

import doctest
import io
import json

import numpy as np
import pytest
from PIL import Image

import dip_cli
from dip_cli import api
from dip_cli.errors import DipWarning, InputError
from dip_cli.operators import simulate_noise
from tests.conftest import TINY_PRESET, real_crop

FAST = {"iters": 6, "threads": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "tiny.toml"
    path.write_text(TINY_PRESET)
    return str(path)


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.round(pixels * 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("make", "shape", "dtype"),
    [
        (lambda c: as_uint8(c.mean(axis=2)), (24, 24), np.uint8),  # gray, 2-D
        (lambda c: as_uint8(c[..., :1]), (24, 24, 1), np.uint8),  # gray, 3-D
        (lambda c: as_uint8(c), (24, 24, 3), np.uint8),
        (lambda c: np.round(c * 65535).astype(np.uint16), (24, 24, 3), np.uint16),
        (lambda c: c.astype(np.float64), (24, 24, 3), np.float64),
        (
            lambda c: np.dstack([c, np.linspace(0, 1, 24 * 24).reshape(24, 24)]).astype(np.float32),
            (24, 24, 4),
            np.float32,
        ),
        (
            lambda c: np.dstack([as_uint8(c[..., :1]), np.full((24, 24, 1), 200, np.uint8)]),
            (24, 24, 2),
            np.uint8,
        ),
    ],
    ids=["gray-2d", "gray-3d", "rgb-uint8", "rgb-uint16", "rgb-float64", "rgba-float32", "gray-alpha-uint8"],
)
def test_result_has_the_inputs_layout_and_dtype(tiny, make, shape, dtype):
    image = make(real_crop("astronaut", 24))
    out = dip_cli.denoise(image, preset=tiny, **FAST)
    assert out.shape == shape and out.dtype == dtype
    if shape[-1] in (2, 4):  # the alpha channel comes back untouched
        assert np.array_equal(out[..., -1], image[..., -1])
    if np.issubdtype(dtype, np.floating):
        assert out.min() >= 0 and out.max() <= 1


def test_denoising_from_python_improves_a_real_crop():
    clean = real_crop("astronaut", 40)
    noisy = simulate_noise(clean, 25, seed=1)
    out = dip_cli.denoise(noisy, iters=300, stop="fixed", threads=1)
    gain = _psnr(out, clean) - _psnr(noisy, clean)
    assert gain > 2.0, gain


def test_inpaint_keeps_the_known_pixels_exactly_and_fills_the_rest(tiny):
    image = as_uint8(real_crop("chelsea", 24))
    known = np.ones((24, 24), bool)
    known[8:16, 8:16] = False
    holey = image.copy()
    holey[~known] = 0
    out = dip_cli.inpaint(holey, known, preset=tiny, **FAST)
    assert np.array_equal(out[known], image[known])
    assert out[~known].any()  # something was painted in
    as_numbers = dip_cli.inpaint(holey, known.astype(np.uint8)[..., None], preset=tiny, **FAST)
    assert np.array_equal(as_numbers, out)  # 0/1 numbers and H x W x 1 are the same mask


def test_sr_scales_every_side_and_the_alpha_channel(tiny):
    image = np.dstack([real_crop("coffee", 12), np.ones((12, 12))]).astype(np.float32)
    out = dip_cli.sr(image, scale=2, preset=tiny, **FAST)
    assert out.shape == (24, 24, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 3], 1.0, atol=1e-6)


def test_jpeg_takes_a_path_bytes_or_an_array(tiny, tmp_path):
    clean = as_uint8(real_crop("astronaut", 24))
    path = tmp_path / "photo.jpg"
    Image.fromarray(clean).save(path, quality=10)
    from_path = dip_cli.jpeg(path, preset=tiny, **FAST)
    from_str = dip_cli.jpeg(str(path), preset=tiny, **FAST)
    from_bytes = dip_cli.jpeg(path.read_bytes(), preset=tiny, **FAST)
    assert from_path.dtype == np.uint8 and from_path.shape == (24, 24, 3)
    assert np.array_equal(from_path, from_bytes) and np.array_equal(from_path, from_str)
    with pytest.warns(DipWarning, match="fitting the decoded pixels"):  # no file to model
        from_array = dip_cli.jpeg(np.asarray(Image.open(path)), preset=tiny, **FAST)
    assert from_array.dtype == np.uint8 and from_array.shape == (24, 24, 3)
    gray = io.BytesIO()
    Image.fromarray(clean[..., 0]).save(gray, "JPEG", quality=10)
    assert dip_cli.jpeg(gray.getvalue(), preset=tiny, **FAST).shape == (24, 24)


def test_run_folder_from_python_resumes_and_returns_a_finished_run(tiny, tmp_path):
    noisy = simulate_noise(real_crop("astronaut", 24), 25, seed=2)
    first = dip_cli.denoise(noisy, preset=tiny, iters=8, threads=1, run=tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "finished" and info["settings"]["fit"]["iters"] == 8
    again = dip_cli.denoise(noisy, preset=tiny, iters=8, threads=1, run=tmp_path / "run")
    assert np.array_equal(first, again)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["resumed_from"] == 8  # no refit
    with pytest.raises(InputError, match="different seed"):
        dip_cli.denoise(noisy, preset=tiny, iters=8, threads=1, run=tmp_path / "run", seed=5)


def test_progress_callable_and_the_callers_random_state(tiny):
    import torch

    seen = []
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    dip_cli.denoise(real_crop("astronaut", 16), preset=tiny, iters=5, threads=1, progress=seen.append)
    assert torch.equal(torch.rand(3), expected)  # dip seeds its own generators, not the caller's
    assert seen and seen[-1].iteration == 5


def test_the_docstring_examples_run():
    result = doctest.testmod(api, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0


def test_errors_are_value_errors():
    assert issubclass(InputError, ValueError)


GOOD = np.zeros((16, 16, 3), np.uint8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dip_cli.denoise("photo.png"), "must be a NumPy array, got the path 'photo.png'"),
        (lambda: dip_cli.denoise(np.zeros((2, 8, 8, 3))), "got shape (2, 8, 8, 3)"),
        (lambda: dip_cli.denoise(np.zeros((3, 16, 16))), "channels-first: pass np.moveaxis(image, 0, -1)"),
        (lambda: dip_cli.denoise(np.zeros((0, 5))), "non-empty"),
        (
            lambda: dip_cli.denoise(np.zeros((8, 8), np.int64)),
            "dtype int64 is not supported; use uint8, uint16",
        ),
        (lambda: dip_cli.denoise(np.zeros((8, 8), bool)), "dtype bool is not supported"),
        (lambda: dip_cli.denoise(np.full((8, 8), 255.0)), "spans [255, 255]; divide by 255"),
        (lambda: dip_cli.denoise(np.full((8, 8), np.nan)), "NaN or infinite"),
        (lambda: dip_cli.denoise(GOOD, iters=0), "iters must be an integer >= 1, got 0"),
        (lambda: dip_cli.denoise(GOOD, stop="never"), "stop must be one of auto, fixed, got 'never'"),
        (lambda: dip_cli.denoise(GOOD, preset="nope"), "unknown preset 'nope'"),
        (lambda: dip_cli.denoise(GOOD, effort="max"), "effort must be one of fast, default, best, got 'max'"),
        (
            lambda: dip_cli.jpeg(GOOD, preset="jpeg", effort="fast"),
            "give --preset or --effort, not both: --effort fast runs the preset jpeg-fast",
        ),
        (
            lambda: dip_cli.denoise(GOOD, device="gpu"),
            "device must be one of auto, cpu, cuda, mps, got 'gpu'",
        ),
        (lambda: dip_cli.denoise(GOOD, seed=1.5), "seed must be an integer, got 1.5"),
        (lambda: dip_cli.denoise(GOOD, threads=0), "threads must be an integer >= 1, got 0"),
        (lambda: dip_cli.denoise(GOOD, progress="yes"), "progress must be True, False, None or a callable"),
        (lambda: dip_cli.sr(GOOD, scale=3), "scale 3 is not supported; use one of 2, 4, 8"),
        (
            lambda: dip_cli.sr(GOOD, kernel="gaussian"),
            "kernel must be one of lanczos2, bicubic, lanczos3, area, got 'gaussian'",
        ),
        (
            lambda: dip_cli.inpaint(GOOD, np.ones((8, 8), bool)),
            "mask shape (8, 8) does not match the image's (16, 16)",
        ),
        (lambda: dip_cli.inpaint(GOOD, np.zeros((16, 16), bool)), "every pixel as unknown (all False)"),
        (
            lambda: dip_cli.inpaint(GOOD, np.full((16, 16), 255)),
            "got values in [255, 255]; threshold it first",
        ),
        (lambda: dip_cli.jpeg("missing.jpg"), "missing.jpg does not exist"),
        (lambda: dip_cli.jpeg(b"not a jpeg"), "the JPEG bytes is not an image dip can read"),
    ],
)
def test_every_bad_input_is_named_with_its_fix(call, message):
    with pytest.raises(InputError) as caught:
        call()
    assert message in str(caught.value)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from dip_cli.metrics import psnr

    return psnr(a.astype(np.float64) / (255 if a.dtype == np.uint8 else 1), b)
