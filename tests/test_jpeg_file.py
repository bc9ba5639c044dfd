"""The JPEG file model: what libjpeg wrote is what the operator computes, in every layout."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dip_cli.jpeg_file import read_jpeg
from dip_cli.operators import JpegModel, to_stored
from tests.conftest import real_crop

MODES = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def encode(pixels: np.ndarray, quality: int, subsampling: int | None = None, **options) -> bytes:
    array = np.round(pixels * 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    if subsampling is not None:
        options["subsampling"] = subsampling
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32))[None]


def decode(data: bytes) -> np.ndarray:
    array = np.asarray(Image.open(io.BytesIO(data))).astype(np.float32) / 255
    return array[..., None] if array.ndim == 2 else array


def step_sizes(jpeg) -> torch.Tensor:
    """Each coefficient's quantization step, in the operator's order and 0-1 scale."""
    return torch.cat(
        [
            torch.from_numpy(q).expand(*k.shape).reshape(-1)
            for k, q in zip(jpeg.coefficients, jpeg.tables, strict=True)
        ]
    )


@pytest.mark.parametrize("mode", [*MODES, "gray"])
def test_the_operator_reproduces_libjpegs_coefficients(mode):
    # Odd sizes: partial blocks at the right and bottom, and odd chroma planes.
    clean = real_crop("astronaut", 45, gray=mode == "gray")[:45, :37]
    data = encode(clean, 100, None if mode == "gray" else MODES[mode])
    jpeg = read_jpeg(data)
    assert jpeg.subsampling == mode
    error = (JpegModel(jpeg)(tensor(clean)) - JpegModel(jpeg).target) * 255
    # Quality 100 has steps of 1: what is left is libjpeg's rounding (integer DCT, colour
    # conversion, the box average's alternating bias), within a few units.
    assert float(error.abs().max()) <= 4.0 and float(error.abs().mean()) <= 0.5


@pytest.mark.parametrize("mode", [*MODES, "gray"])
def test_the_files_own_decode_is_consistent_with_it(mode):
    clean = real_crop("coffee", 40, gray=mode == "gray")
    data = encode(clean, 10, None if mode == "gray" else MODES[mode])
    jpeg = read_jpeg(data)
    model = JpegModel(jpeg)
    decoded = decode(data)
    inside = (
        ((model(tensor(decoded)) - model.target).abs() * 255 <= step_sizes(jpeg) / 2 + 0.5).float().mean()
    )
    assert inside >= 0.99  # the decode lies in the file's quantization box
    assert model.loss(tensor(decoded), None) < 0.2 * model.loss(tensor(clean), None)  # near-zero loss


def test_progressive_and_restart_marker_files_read_the_same_coefficients():
    clean = real_crop("chelsea", 40)
    baseline = read_jpeg(encode(clean, 20, 2))
    for variant in (encode(clean, 20, 2, progressive=True), encode(clean, 20, 2, restart_marker_blocks=1)):
        other = read_jpeg(variant)
        assert all(
            np.array_equal(a, b) for a, b in zip(baseline.coefficients, other.coefficients, strict=True)
        )
    assert read_jpeg(encode(clean, 20, 2, progressive=True)).progressive


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_undone_exactly(orientation):
    from dip_cli.io import decode_image

    stored = real_crop("astronaut", 40)[:40, :24]
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, 30, 2, exif=exif.tobytes())
    jpeg = read_jpeg(data)
    assert jpeg.orientation == orientation
    shown = decode_image(data).pixels  # what a viewer shows (EXIF applied)
    assert shown.shape[:2] == ((24, 40) if orientation >= 5 else (40, 24))
    back = to_stored(tensor(shown), orientation)
    assert torch.equal(back, tensor(decode(data)))  # exactly the stored pixels
    model = JpegModel(jpeg)
    assert model.loss(tensor(shown), None) < 0.2 * model.loss(tensor(shown).flip(-1).flip(-2), None)


def test_a_rotated_file_s_stored_frame_is_the_same_model_as_stored():
    """Tiles of a rotated JPEG are cut from the file as stored: the stored-frame model keeps every
    choice of the model it came from (a rebuild outside the operator once dropped the
    dequantization and its offsets), and the arrays turn there and back exactly."""
    from dip_cli.io import decode_image

    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(real_crop("astronaut", 40)[:40, :24], 30, 2, exif=exif.tobytes())
    model = JpegModel(read_jpeg(data), weighting="quantization", dequantize="laplacian", blend=False)
    frame = model.stored_frame()
    stored = frame.operator
    assert stored.orientation == 1 and stored.jpeg.coefficients is model.jpeg.coefficients
    assert (stored.weighting, stored.dequantize, stored.blend) == ("quantization", "laplacian", False)
    assert torch.equal(stored.offset_tables, model.offset_tables) and stored.offset_tables.abs().sum() > 0
    shown = decode_image(data).pixels
    assert model.display_size == shown.shape[:2] == (24, 40)
    assert model.stored_size(24, 40) == (40, 24) == frame.to_stored(shown).shape[:2]
    assert np.array_equal(frame.to_display(frame.to_stored(shown)), shown)
    assert np.array_equal(frame.to_stored(shown), decode(data))  # exactly the stored pixels
    assert torch.equal(stored.target, model.target)  # the same coefficients, the same targets


@pytest.mark.parametrize("mode", ["4:4:4", "4:2:0", "gray"])
def test_tables_broadcast_over_the_blocks_as_full_size_weights_would(mode):
    # The steps and weights are stored as 64-entry tables per component (memory at 24 MP).
    clean = real_crop("astronaut", 40, gray=mode == "gray")[:37, :35]
    jpeg = read_jpeg(encode(clean, 20, None if mode == "gray" else MODES[mode]))
    x = tensor(np.clip(clean + 0.05, 0, 1))
    steps = step_sizes(jpeg) / 255
    assert torch.equal(JpegModel(jpeg).step, steps)
    error = (JpegModel(jpeg)(x) - JpegModel(jpeg).target) ** 2
    weights = steps.double() ** -2
    expected = torch.mean((weights / weights.mean()).float() * error)
    got = JpegModel(jpeg, weighting="quantization").loss(x, None)
    assert torch.allclose(got, expected, rtol=1e-5)
    assert torch.equal(JpegModel(jpeg).loss(x, None), torch.mean(error))


def test_gradients_reach_every_pixel():
    clean = real_crop("astronaut", 24)[:21, :19]
    model = JpegModel(read_jpeg(encode(clean, 10, 2)))
    x = tensor(clean).requires_grad_()
    model.loss(x, None).backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).float().mean() > 0.99


def test_not_a_jpeg_is_not_modelled():
    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, "PNG")
    assert read_jpeg(png.getvalue()) is None
    cmyk = io.BytesIO()
    Image.new("CMYK", (16, 16)).save(cmyk, "JPEG")
    assert read_jpeg(cmyk.getvalue()) is None


@pytest.mark.parametrize(("name", "quality", "mode"), [("astronaut", 10, "4:2:0"), ("coffee", 30, "4:4:4")])
def test_the_in_box_tv_decode_stays_in_the_box_and_comes_nearer_the_truth(name, quality, mode):
    """``smooth``, a classical decode of the file: its total variation is lower than the decode's,
    every coefficient stays in its quantization box, and it is closer to the original (measured
    +0.34 and +0.82 dB on these 48 px crops; +0.09 to +0.97 on three crops at q10-50)."""
    from dip_cli.io import decode_image
    from dip_cli.metrics import psnr

    clean = real_crop(name, 48)
    data = encode(clean, quality, MODES[mode])
    model, decoded = JpegModel(read_jpeg(data)), tensor(decode_image(data).pixels)
    smooth = model.smooth(decoded)
    inside = ((model(smooth) - model.target).abs() <= model.step / 2 + 1e-4).float().mean()
    assert inside > 0.97  # all but the clipped and partial-block corrections

    def variation(x):
        return float(
            (x[..., :, 1:] - x[..., :, :-1]).abs().sum() + (x[..., 1:, :] - x[..., :-1, :]).abs().sum()
        )

    assert variation(smooth) < 0.95 * variation(decoded)  # measured 0.85 and 0.79
    gain = psnr(smooth[0].permute(1, 2, 0).numpy(), clean) - psnr(decoded[0].permute(1, 2, 0).numpy(), clean)
    assert gain > 0.1, gain


@pytest.mark.parametrize("quality", [20, 60])
def test_finishing_blends_the_fit_with_the_file_s_decodes_then_projects(quality):
    """The default finish is the blend it claims to be: the box's point nearest the mean of the
    fit (in the box) and the in-box TV decode, and of the plain decode too from quality
    ``DECODE_QUALITY`` up; without the decode, or with ``blend=False``, the projection alone."""
    from dip_cli.io import decode_image

    clean = real_crop("chelsea", 40)
    data = encode(clean, quality, MODES["4:2:0"])
    model, decoded = JpegModel(read_jpeg(data)), tensor(decode_image(data).pixels)
    fitted = tensor(np.clip(clean + 0.05 * np.sin(np.arange(40))[None, :, None], 0, 1).astype(np.float32))
    estimates = [model.into_box(fitted), model.smooth(decoded)]
    if quality >= JpegModel.DECODE_QUALITY:
        estimates.append(decoded)
    expected = model.into_box(sum(estimates) / len(estimates))
    assert torch.allclose(model.finish(fitted, decoded), expected, atol=1e-6)
    assert torch.equal(model.finish(fitted, None), model.into_box(fitted))
    unblended = JpegModel(read_jpeg(data), blend=False)
    assert torch.equal(unblended.finish(fitted, decoded), model.into_box(fitted))
    described = model.finish_description()
    assert "mean of the fit" in described and ("its decode" in described) == (quality >= 40)


@pytest.mark.parametrize("mode", ["4:4:4", "4:2:0"])
def test_finishing_projects_into_the_quantization_box_and_nearer_the_truth(mode):
    from dip_cli.metrics import psnr

    clean = real_crop("astronaut", 48)[:45, :41]
    data = encode(clean, 10, MODES[mode])
    model = JpegModel(read_jpeg(data))
    blurred = (
        np.asarray(
            Image.fromarray(np.round(clean * 255).astype(np.uint8))
            .resize((10, 11))
            .resize((41, 45), Image.BICUBIC)
        ).astype(np.float32)
        / 255
    )
    projected = model.finish(tensor(blurred), None)
    inside = ((model(projected) - model.target).abs() <= model.step / 2 + 1e-4).float().mean()
    assert inside > 0.97  # all but the clipped and partial-block corrections
    after = projected[0].permute(1, 2, 0).numpy()
    assert psnr(after, clean) > psnr(blurred, clean) + 1.0  # measured +2.9 dB on a 137x133 crop
    assert torch.equal(
        JpegModel(read_jpeg(data), project=False).finish(tensor(blurred), None), tensor(blurred)
    )


def test_dip_jpeg_uses_the_file_model_for_jpegs_and_says_when_it_cannot(cli, tiny_preset, tmp_path):
    import json

    clean = real_crop("astronaut", 24)[:24, :16]
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown upright
    (tmp_path / "photo.jpg").write_bytes(encode(clean, 10, 2, exif=exif.tobytes()))
    code, _, err = cli("jpeg", tmp_path / "photo.jpg", "--preset", tiny_preset, "--iters", "5", "-q")
    assert code == 0, err
    assert "note:" not in err
    assert Image.open(tmp_path / "photo.restored.png").size == (24, 16)  # upright, as a viewer shows it
    operator = json.loads((tmp_path / "photo.dip" / "run.json").read_text())["operator"]
    assert operator["kind"] == "jpeg-file" and operator["subsampling"] == "4:2:0"
    assert operator["orientation"] == 6 and len(operator["quantization_tables"]) == 3

    Image.open(tmp_path / "photo.jpg").save(tmp_path / "decoded.png")
    code, _, err = cli("jpeg", tmp_path / "decoded.png", "--preset", tiny_preset, "--iters", "5", "-q")
    assert code == 0 and "not a JPEG file dip can model" in " ".join(err.split())
    operator = json.loads((tmp_path / "decoded.dip" / "run.json").read_text())["operator"]
    assert operator["kind"] == "identity"


def test_laplacian_offsets_are_the_bins_mean_for_laplacian_coefficients():
    from dip_cli.operators import laplacian_offsets

    rng = np.random.default_rng(0)
    q = np.full((8, 8), 40.0)
    q[0, 0] = 16
    x = rng.laplace(0, np.linspace(5, 60, 64).reshape(8, 8), size=(20000, 8, 8))  # a scale per frequency
    k = np.round(x / q).astype(np.int16)
    offsets = laplacian_offsets([k.reshape(200, 100, 8, 8)], [q])[0].numpy().reshape(8, 8)
    nonzero = k != 0
    measured = np.array(
        [np.mean((np.abs(k) * q - np.abs(x))[:, i, j][nonzero[:, i, j]]) for i in range(8) for j in range(8)]
    ).reshape(8, 8)
    assert offsets[0, 0] == 0  # DC is not centred on zero: it keeps its bin's centre
    ac = np.ones((8, 8), bool)
    ac[0, 0] = False
    assert np.abs(offsets - measured)[ac].max() < 1.0  # 0.28 here, for offsets of 2.2-14.1 (q = 40)
    assert (offsets >= 0).all() and (offsets <= q / 2).all()


@pytest.mark.parametrize("mode", ["4:4:4", "4:2:0"])
def test_laplacian_dequantization_moves_nonzero_targets_toward_zero_and_nearer_the_truth(mode):
    clean = real_crop("coffee", 64)
    jpeg = read_jpeg(encode(clean, 10, MODES[mode]))
    centre, laplacian = JpegModel(jpeg), JpegModel(jpeg, dequantize="laplacian")
    moved = laplacian.target - centre.target
    zero = centre.target == 0
    assert torch.all(moved[zero] == 0) and moved[~zero].abs().mean() > 0
    assert torch.all(moved * torch.sign(centre.target) <= 0)  # toward zero
    assert torch.all(moved.abs() <= laplacian.step / 2 + 1e-7)  # inside the bin
    truth = centre(tensor(clean))
    error = [float(((model.target - truth) ** 2).mean()) for model in (centre, laplacian)]
    assert error[1] < 0.95 * error[0]  # 0.33 dB here; luma 0.19-0.31 dB on eight 128 px crops at q10
    # The box is the file's either way: the projection does not change.
    x = tensor(np.clip(clean + 0.03, 0, 1))
    assert torch.equal(laplacian.centers, centre.target)
    assert torch.equal(laplacian.finish(x, None), centre.finish(x, None))
    # A tile's model takes the whole file's offsets (one rule for every tile).
    tile = laplacian.crop(clean, 0, 0, 32, 32)[1]
    assert torch.equal(tile.offset_tables, laplacian.offset_tables) and tile.dequantize == "laplacian"
    with pytest.raises(ValueError, match="dequantize"):
        JpegModel(jpeg, dequantize="mean")


@pytest.mark.parametrize("quality", [5, 10, 25, 50, 75, 95])
def test_a_file_s_quality_is_read_back_from_its_tables(quality):
    for mode in ("4:2:0", "4:4:4"):
        assert read_jpeg(encode(real_crop("coffee", 32), quality, MODES[mode])).quality == quality


def test_dip_jpeg_says_what_to_expect_at_the_file_s_quality(cli, tmp_path):
    from dip_cli.tasks import JPEG_OUTLOOK, jpeg_outlook

    data = encode(real_crop("coffee", 32), 30, MODES["4:2:0"])
    dip, anchor, gain = JPEG_OUTLOOK["jpeg"]["4:2:0"][30]
    outlook = jpeg_outlook(data)
    assert "quality-30 JPEG (4:2:0)" in outlook and f"{dip:+.2f} dB" in outlook
    assert f"{anchor} {gain:+.2f} dB" in outlook
    assert jpeg_outlook(b"not a jpeg") is None
    assert "dip (jpeg-fast) gained" in jpeg_outlook(data, "jpeg-fast")
    assert jpeg_outlook(data, "jpeg-avg3").endswith("what preset jpeg-avg3 gains at it has not been measured")
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    code, _, err = cli("jpeg", path, "--effort", "fast", "--iters", "2", "--threads", "1")
    assert (
        code == 0
        and "photo.jpg: a quality-30 JPEG (4:2:0). On photo crops at quality 30 dip (jpeg-fast)"
        in " ".join(err.split())
    ), err
