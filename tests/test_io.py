"""Image and mask I/O: modes, bit depths, orientation, masks, and every read error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dip_cli.errors import InputError
from dip_cli.io import Picture, load_image, load_mask, mask_from_alpha, save_image
from tests.conftest import real_crop, write


def test_rgb_png_round_trip_is_exact_at_8_bits(tmp_path):
    pixels = np.round(real_crop(size=24) * 255) / 255
    picture = load_image(write(tmp_path / "a.png", pixels))
    assert picture.channels == 3 and picture.bit_depth == 8 and picture.alpha is None
    np.testing.assert_allclose(picture.pixels, pixels, atol=1e-6)


def test_grayscale_stays_grayscale(tmp_path):
    gray = real_crop(size=20, gray=True)
    picture = load_image(write(tmp_path / "g.png", gray))
    assert picture.channels == 1
    assert Image.open(tmp_path / "g.png").mode == "L"


def test_rgba_keeps_alpha_aside_and_writes_it_back(tmp_path):
    pixels = real_crop(size=16)
    alpha = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    picture = load_image(write(tmp_path / "rgba.png", pixels, alpha))
    assert picture.channels == 3
    np.testing.assert_allclose(picture.alpha, np.round(alpha * 255) / 255, atol=1e-6)
    save_image(tmp_path / "out.png", picture)
    assert Image.open(tmp_path / "out.png").mode == "RGBA"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_in_gives_16_bit_out(tmp_path, suffix, channels):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, size=(9, 11, channels)).astype(np.float32) / 65535
    path = write(tmp_path / f"deep{suffix}", values, bit_depth=16)
    picture = load_image(path)
    assert picture.bit_depth == 16 and picture.channels == channels
    # 16-bit precision survives: an 8-bit path would be off by up to 1/510.
    np.testing.assert_allclose(picture.pixels, values, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    picture = load_image(tmp_path / "rotated.jpg")
    assert (picture.width, picture.height) == (10, 30)


def test_palette_image_becomes_rgb(tmp_path):
    Image.new("P", (8, 8), 3).save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").channels == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"not an image at all", "not an image dip can read"),
    ],
)
def test_unreadable_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_image(path)


def test_truncated_jpeg_is_reported(tmp_path):
    write(tmp_path / "full.jpg", real_crop(size=32))
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)


def test_mask_is_thresholded_at_half_in_any_mode(tmp_path):
    values = np.array([[0, 100, 127], [128, 200, 255]], dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    known = load_mask(tmp_path / "m.png", 2, 3)
    np.testing.assert_array_equal(known, [[False, False, False], [True, True, True]])
    Image.fromarray(values).convert("RGB").save(tmp_path / "m_rgb.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m_rgb.png", 2, 3), known)
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png", 2, 3, invert=True), ~known)


def test_mask_of_another_size_is_refused(tmp_path):
    Image.new("L", (5, 4), 255).save(tmp_path / "m.png")
    with pytest.raises(InputError, match="mask .* is 5x4 but the image is 6x4"):
        load_mask(tmp_path / "m.png", 4, 6)


def test_all_black_mask_is_refused_with_a_hint(tmp_path):
    Image.new("L", (4, 4), 0).save(tmp_path / "m.png")
    with pytest.raises(InputError, match="--invert-mask"):
        load_mask(tmp_path / "m.png", 4, 4)


def test_alpha_mask(tmp_path):
    alpha = np.zeros((4, 4), np.float32)
    alpha[:, 2:] = 1
    known = mask_from_alpha(Picture(np.zeros((4, 4, 3), np.float32), alpha))
    assert known[:, 2:].all() and not known[:, :2].any()
    with pytest.raises(InputError, match="needs an image with an alpha channel"):
        mask_from_alpha(Picture(np.zeros((4, 4, 3), np.float32)))


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    save_image(tmp_path / "x.png", Picture(real_crop(size=8)))
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_save_refuses_unknown_extension(tmp_path):
    with pytest.raises(InputError, match="unknown extension"):
        save_image(tmp_path / "x.gifx", Picture(real_crop(size=8)))
