"""Degradation operators: the mask, and the downsampler's kernels, shape and phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dip_cli.operators import (
    Downsample,
    Mask,
    downscale_taps,
    lanczos_taps,
    simulate_downscale,
    simulate_jpeg,
    simulate_noise,
)


@pytest.mark.parametrize("kernel", Downsample.KERNELS)
@pytest.mark.parametrize("factor", [2, 4, 8])
def test_downsampling_a_constant_gives_the_constant(factor, kernel):
    x = torch.full((1, 3, 8 * factor, 4 * factor), 0.37)
    y = Downsample(factor, 3, kernel).A(x)
    assert y.shape == (1, 3, 8, 4)
    torch.testing.assert_close(y, torch.full_like(y, 0.37))


@pytest.mark.parametrize("kernel", Downsample.KERNELS)
@pytest.mark.parametrize("factor", [2, 4, 8])
def test_output_pixels_are_centred_on_their_input_blocks(factor, kernel):
    # A symmetric kernel centred correctly reproduces a linear ramp exactly: output j must be
    # the mean position of input pixels [j*s, (j+1)*s), i.e. j*s + (s - 1) / 2.
    width = 12 * factor
    ramp = torch.arange(width, dtype=torch.float32).expand(1, 1, 6 * factor, width)
    y = Downsample(factor, 1, kernel).A(ramp)[0, 0, 3]
    expected = torch.arange(12) * factor + (factor - 1) / 2
    interior = slice(3, -3)  # replicate padding bends the ramp at the borders
    torch.testing.assert_close(y[interior], expected[interior], atol=1e-3, rtol=0)


def test_downsampling_a_bicubic_upsample_gives_the_smooth_image_back():
    from skimage import data, filters, transform

    smooth = filters.gaussian(data.astronaut()[100:260, 180:340] / 255.0, sigma=3, channel_axis=-1)
    low = transform.resize(smooth, (20, 20), anti_aliasing=True).astype(np.float32)
    x = torch.from_numpy(low.transpose(2, 0, 1).copy())[None]
    up = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)

    def error(shift: int) -> float:
        back = Downsample(4, 3).A(torch.roll(up, shift, dims=3))
        return float((back - x)[..., 2:-2, 2:-2].abs().mean())

    # Measured: 0.005 at no shift, 0.016 one high-res pixel either way (symmetric: no phase error).
    assert error(0) < 0.01
    assert error(0) < 0.5 * min(error(-1), error(1))


@pytest.mark.parametrize("kernel", Downsample.KERNELS)
@pytest.mark.parametrize("factor", [2, 4])
def test_the_super_resolution_twin_is_invisible_to_the_downsampler(factor, kernel):
    # benchmarks.sr_quality's infeasibility argument: the twin x' = x - 2 P_null x has the same
    # low-res image, so no method sees a difference, and any output's mean MSE over the pair is
    # at least |x - x'|^2 / 4. A mid-grey image keeps the twin inside [0, 1] (no clipping).
    from benchmarks.sr_quality import downscale_matrix, null_space_twin, separable

    def downsample(image: np.ndarray) -> np.ndarray:
        return (
            Downsample(factor, 3, kernel)(torch.from_numpy(image.transpose(2, 0, 1))[None])[0]
            .permute(1, 2, 0)
            .numpy()
        )

    rng = np.random.default_rng(factor)
    x = (0.5 + 0.2 * (rng.random((16 * factor, 12 * factor, 3)) - 0.5)).astype(np.float32)
    rows, cols = (downscale_matrix(n, factor, kernel) for n in x.shape[:2])
    np.testing.assert_allclose(separable(rows, x, cols), downsample(x), atol=1e-5)
    twin = null_space_twin(x, factor, kernel)  # measured: stays in [0.21, 0.83], so no clipping
    np.testing.assert_allclose(downsample(twin), downsample(x), atol=1e-5)
    assert np.abs(twin - x).mean() > 0.01  # the twin differs where the low-res image cannot see
    bound = np.mean((x - twin) ** 2) / 4
    for y in (x, twin, (x + twin) / 2, np.full_like(x, 0.5)):  # any output, even a perfect one
        assert (np.mean((y - x) ** 2) + np.mean((y - twin) ** 2)) / 2 >= bound * (1 - 1e-5)


def test_lanczos_taps_are_normalised_and_symmetric():
    taps = lanczos_taps(4)
    assert len(taps) == 16
    assert float(taps.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(taps, taps.flip(0))


@pytest.mark.parametrize(
    ("kernel", "method"), [("bicubic", "BICUBIC"), ("lanczos3", "LANCZOS"), ("area", "BOX")]
)
@pytest.mark.parametrize("factor", [2, 4])
def test_each_kernel_makes_the_low_res_image_pillow_makes(kernel, method, factor):
    """``dip sr --kernel K`` models the image a user got from Pillow's antialiased resize with K:
    the same pixels away from the border (Pillow shortens its kernel there; dip replicates)."""
    from PIL import Image

    x = np.random.default_rng(factor).random((24 * factor, 16 * factor), dtype=np.float32)
    theirs = np.asarray(
        Image.fromarray(x, mode="F").resize((16, 24), getattr(Image.Resampling, method), reducing_gap=None)
    )
    ours = Downsample(factor, 1, kernel).A(torch.from_numpy(x)[None, None])[0, 0].numpy()
    inner = (slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(ours[inner], theirs[inner], atol=2e-5)
    taps = downscale_taps(factor, kernel)
    assert float(taps.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(taps, taps.flip(0))


def test_an_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel must be one of lanczos2, bicubic, lanczos3, area"):
        Downsample(4, 3, "gaussian")


def test_unsupported_scale():
    with pytest.raises(ValueError, match="scale must be one of"):
        Downsample(3, 3)


def test_mask_loss_counts_known_pixels_only():
    known = torch.zeros(1, 1, 2, 2)
    known[..., 0, 0] = 1
    mask = Mask(known)
    x = torch.ones(1, 3, 2, 2)
    y = torch.zeros(1, 3, 2, 2)
    assert float(mask.mse(mask.A(x), y)) == pytest.approx(1.0)  # mean over known entries only


def test_simulations_are_seeded_and_in_range():
    clean = np.full((16, 16, 3), 0.5, np.float32)
    a, b = simulate_noise(clean, 25, seed=1), simulate_noise(clean, 25, seed=1)
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert np.std(a - clean) == pytest.approx(25 / 255, rel=0.1)
    assert simulate_jpeg(clean, 10).shape == clean.shape
    assert simulate_downscale(np.zeros((16, 16, 3), np.float32), 4).shape == (4, 4, 3)


def test_operators_are_modules_whose_fixed_data_are_buffers():
    mask = Mask(torch.ones(1, 1, 4, 4))
    down = Downsample(2, 3)
    assert set(mask.state_dict()) == {"known", "count"} and set(down.state_dict()) == {"weight"}
    assert list(mask.parameters()) == [] and list(down.parameters()) == []  # nothing is fitted
    moved = down.to(torch.float64)  # .to() carries the buffers (and a device would too)
    assert moved.weight.dtype == torch.float64
    assert "factor=2" in repr(down)  # what a checkpoint's fingerprint records


def test_mask_finish_puts_the_known_pixels_back_exactly():
    known = torch.zeros(1, 1, 3, 3)
    known[..., 1, :] = 1
    y, x = torch.rand(1, 3, 3, 3), torch.rand(1, 3, 3, 3)
    for blend in (True, False):
        assert torch.equal(Mask(known, blend=blend).finish(x, y)[..., 1, :], y[..., 1, :])
    assert torch.equal(Mask(known, blend=False).finish(x, y)[..., 0, :], x[..., 0, :])


def test_mask_finish_blends_the_fit_with_a_biharmonic_fill_in_the_holes():
    ramp = torch.linspace(0.1, 0.9, 16).expand(1, 3, 16, 16).contiguous()  # biharmonic fills it exactly
    known = torch.ones(1, 1, 16, 16)
    known[..., 5:11, 4:12] = 0
    holes = ~known.bool().expand(1, 3, 16, 16)
    mask, fit = Mask(known), torch.rand(1, 3, 16, 16)
    fill = mask.classical_fill(ramp * known)  # what the holes held does not matter
    assert torch.allclose(fill, ramp, atol=1e-4)
    out = mask.finish(fit, ramp * known)
    expected = mask.FIT_WEIGHT * fit + (1 - mask.FIT_WEIGHT) * fill
    assert 0 < mask.FIT_WEIGHT < 1 and torch.allclose(out[holes], expected[holes], atol=1e-6)
    assert "biharmonic" in mask.finish_description()
    assert Mask(known, blend=False).crop(np.zeros((16, 16, 3)), 0, 0, 8, 8)[1].blend is False
