"""report.html: a self-contained page, one card per image, every picture embedded and bounded.

The batch is built by hand from small files (no fitting): a JPEG and its restored PNG, a
super-resolution pair (result 4x larger), a 16-bit grayscale PNG, a 16-bit RGBA TIFF, a
4000x3000 photo, a skipped image without figures, a corrupt failed input, an interrupted and a
pending image. The last test opens the page in headless Chromium when it is installed.
"""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dip_cli.batch import BatchReport, Item, Outcome
from dip_cli.report_html import THUMB_SIDE, write_report_html
from tests.conftest import write

ODD_NAME = 'q<1>&"x".jpg'  # every character html.escape must handle
PAGE_LIMIT = 1_500_000  # bytes: nine cards with a 12-megapixel photo among them

FIGURES = {
    "iterations": 1200,
    "selected_iteration": 950,
    "stop_reason": "early-stop",
    "seconds": 12.345,
    "psnr_input": 31.5,
    "psnr_reference": float("nan"),  # a NaN must show as a dash
    "ssim_reference": None,
    "psnr_reference_input": None,
}


def _item(root: Path, input_path: Path, output_name: str) -> Item:
    relative = input_path.relative_to(root / "photos")
    return Item(input_path, relative, root / "out" / output_name, root / "out" / f"{input_path.stem}.dip")


def _smooth(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A gradient with mild noise: compresses well, and input and result differ a little."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.2 + 0.6 * (x / width + y / height) / 2
    pixels = np.repeat(base[..., None], channels, axis=2)
    return np.clip(pixels + rng.normal(0, 0.03, pixels.shape), 0, 1).astype(np.float32)


def _sr_pair(root: Path) -> tuple[Path, Path]:
    """A 32x24 input with a bright square; the x4 result darkens only the square, so the zoom
    must land there, and the input's crop must show the same square at the result's scale."""
    small = np.full((24, 32, 3), 0.2, np.float32)
    small[8:12, 20:24] = 0.9
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    big[big > 0.5] = 0.7
    return write(root / "photos" / "sr.png", small), write(root / "out" / "sr.png", big)


def _large_pair(input_path: Path, output_path: Path) -> Path:
    """A 4000x3000 photo and its result, made with Pillow directly (numpy noise would take seconds)."""
    from PIL import ImageDraw

    gradient = Image.linear_gradient("L").resize((4000, 3000))
    photo = Image.merge(
        "RGB",
        [
            gradient,
            gradient.transpose(Image.Transpose.ROTATE_90).resize((4000, 3000)),
            Image.new("L", (4000, 3000), 90),
        ],
    )
    photo.save(input_path, quality=90)
    ImageDraw.Draw(photo).ellipse((2500, 500, 2900, 900), fill=(250, 30, 30))
    photo.save(output_path, compress_level=1)
    return input_path


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[BatchReport, Path, str]:
    root = tmp_path_factory.mktemp("batch")
    (root / "photos").mkdir()
    (root / "out").mkdir()
    photos, out = root / "photos", root / "out"
    odd = write(photos / ODD_NAME, _smooth(48, 64))
    write(out / "odd.png", _smooth(48, 64, seed=1))
    sr_in, _ = _sr_pair(root)
    gray = write(photos / "gray16.png", _smooth(40, 40, channels=1), bit_depth=16)
    write(out / "gray16.png", _smooth(40, 40, channels=1, seed=2))
    alpha = np.zeros((30, 30), np.float32)
    alpha[5:25, 5:25] = 1
    rgba = write(photos / "rgba16.tif", _smooth(30, 30), alpha=alpha, bit_depth=16)
    write(out / "rgba16.png", _smooth(30, 30, seed=3), alpha=alpha)
    large = _large_pair(photos / "large.jpg", out / "large.png")
    skipped = write(photos / "done.png", _smooth(20, 20))
    write(out / "done.png", _smooth(20, 20, seed=5))
    corrupt = photos / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff this is not a JPEG")
    outcomes = [
        Outcome(_item(root, odd, "odd.png"), "restored", FIGURES),
        Outcome(_item(root, sr_in, "sr.png"), "restored", {**FIGURES, "psnr_reference": 28.25}),
        Outcome(_item(root, gray, "gray16.png"), "restored", FIGURES, "resumed"),
        Outcome(_item(root, rgba, "rgba16.png"), "restored", FIGURES),
        Outcome(_item(root, large, "large.png"), "restored", FIGURES),
        Outcome(_item(root, skipped, "done.png"), "skipped", None, "already restored (--overwrite to redo)"),
        Outcome(
            _item(root, corrupt, "corrupt.png"), "failed", message="cannot read corrupt.jpg: <broken> & bad"
        ),
        Outcome(_item(root, photos / "late.jpg", "late.png"), "interrupted", message="interrupted; rerun"),
        Outcome(_item(root, photos / "never.jpg", "never.png"), "pending", message="not started"),
    ]
    report = BatchReport(outcomes, ignored=[photos / "notes.txt"], seconds=754.2, interrupted=2)
    path = write_report_html(report, out)
    assert path == out / "report.html"
    return report, path, path.read_text()


def _cards(text: str) -> list[str]:
    return re.findall(r'<section class="card.*?</section>', text, flags=re.S)


def _images(fragment: str) -> list[Image.Image]:
    """Every <img> of the fragment, decoded from its data: URI (which must be one)."""
    images = []
    for src in re.findall(r'<img[^>]*\ssrc="([^"]*)"', fragment):
        assert src.startswith("data:image/jpeg;base64,"), src[:60]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()
        images.append(image)
    return images


class _Text(HTMLParser):
    """The page's visible text (no attributes, so no base64)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def _visible_text(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment)
    return " ".join(parser.chunks)


def test_one_card_per_outcome_in_order(page):
    report, path, text = page
    cards = _cards(text)
    assert len(cards) == len(report.outcomes)
    for card, outcome in zip(cards, report.outcomes, strict=True):
        assert f'data-status="{outcome.status}"' in card
        assert f"{html.escape(str(outcome.item.relative))}</h2>" in card
    assert not (path.parent / ".report.html.part").exists()


def test_every_picture_is_embedded_and_bounded(page):
    _, _, text = page
    counts = [len(_images(card)) for card in _cards(text)]
    # restored and skipped: input, result, two zooms; failed (unreadable): none; the others: none
    assert counts == [4, 4, 4, 4, 4, 4, 0, 0, 0]
    for image in _images(text):
        assert image.format == "JPEG"
        assert max(image.size) <= THUMB_SIDE


def test_nothing_is_loaded_from_outside(page):
    _, _, text = page
    for forbidden in ("http://", "https://", 'src="/', "src='", "url(", "@import", "file:", "<link"):
        assert forbidden not in text, forbidden
    assert "default-src 'none'" in text  # the browser refuses any load the page might grow later
    assert text.isascii()


def test_names_and_messages_are_escaped(page):
    _, _, text = page
    assert "q&lt;1&gt;&amp;&quot;x&quot;.jpg" in text
    assert "q<1>" not in text
    failed = _cards(text)[6]
    assert "cannot read corrupt.jpg: &lt;broken&gt; &amp; bad" in failed
    assert "<img" not in failed  # the unreadable input is left out quietly, never an exception


def test_figures_missing_values_are_dashes(page):
    _, _, text = page
    cards = [_visible_text(card) for card in _cards(text)]
    first = cards[0]
    for shown in ("1200", "950", "early-stop", "12.3 s", "31.50 dB", "PSNR vs reference"):
        assert shown in first, shown
    assert re.search(r"PSNR vs reference\s+—", first)  # NaN
    assert re.search(r"SSIM vs reference\s+—", first)  # None
    assert "28.25 dB" in cards[1]
    assert cards[5].count("—") == 8  # skipped without a run.json: every figure missing
    visible = _visible_text(text)
    assert not re.search(r"\b(nan|NaN|None|inf)\b", visible)


def test_header_totals_and_time(page):
    _, _, text = page
    header = _visible_text(text.split("<main>")[0])
    for total in ("5 restored", "1 skipped", "1 failed", "1 interrupted", "1 pending"):
        assert total in re.sub(r"\s+", " ", header), total
    assert "12 min 34 s" in header
    assert "SIGINT" in header
    assert "1 file(s)" in header


def test_large_photo_is_thumbnailed_and_page_stays_small(page):
    _, path, text = page
    large = _images(_cards(text)[4])
    assert [max(image.size) for image in large[:2]] == [THUMB_SIDE, THUMB_SIDE]
    assert large[0].size == (512, 384)
    assert path.stat().st_size < PAGE_LIMIT
    red = np.asarray(large[3].convert("RGB"), np.float32)  # the result's zoom: on the red disc,
    assert (red[..., 0] > 200).mean() > 0.9 and (red[..., 1] < 80).mean() > 0.9  # the only change
    assert large[3].size == (256, 256)


def test_grayscale_and_16_bit_inputs_show(page):
    _, _, text = page
    gray = _images(_cards(text)[2])
    assert gray[0].mode == "L" and gray[0].size == (40, 40)
    mean = np.asarray(gray[0], np.float32).mean()
    assert 60 < mean < 200  # 16-bit values scaled to 8 bits, not clipped to white or black
    rgba = np.asarray(_images(_cards(text)[3])[0].convert("RGB"), np.float32)
    assert rgba[0, 0].min() > 240  # transparent corner shown over white


def test_super_resolution_zoom_crops_the_same_region(page):
    _, _, text = page
    thumb_in, thumb_out, zoom_in, zoom_out = _images(_cards(text)[1])
    assert thumb_in.size == (32, 24) and thumb_out.size == (128, 96)
    assert zoom_in.size == zoom_out.size
    bright_in = np.asarray(zoom_in.convert("L"), np.float32) > 140  # the square: 0.9 in, 0.7 out
    bright_out = np.asarray(zoom_out.convert("L"), np.float32) > 120
    assert bright_out.any(), "the zoom must land where input and result differ"
    overlap = (bright_in & bright_out).sum() / (bright_in | bright_out).sum()
    assert overlap > 0.9
    rows, cols = np.nonzero(bright_out)
    middle = (np.array(zoom_out.size[::-1]) - 1) / 2
    assert np.allclose([rows.mean(), cols.mean()], middle, atol=zoom_out.size[0] / 8)  # centred
    card = _cards(text)[1]
    assert 'class="thumb" src="data:image/jpeg;base64,' in card
    assert card.count('width="128" height="96"') == 2  # the input shown at the result's size


def test_unreadable_result_is_a_note(tmp_path):
    source = write(tmp_path / "a.png", _smooth(16, 16))
    item = Item(source, Path("a.png"), tmp_path / "gone.png", tmp_path / "a.dip")
    path = write_report_html(BatchReport([Outcome(item, "restored", FIGURES)]), tmp_path / "out")
    card = _cards(path.read_text())[0]
    assert "pictures not shown" in card and "does not exist" in card
    assert "31.50 dB" in card


# --- a real browser ------------------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless, offline-minded: the flags of benchmarks/render_report.py (no sync, no updates)."""
    from benchmarks.render_report import FLAGS

    command = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_report_renders_in_headless_chromium(page, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium (or chromium-browser) is not on PATH: apt-get install chromium to run this")
    report, path, _ = page
    dom = _run_chromium(browser, tmp_path / "profile", "--dump-dom", path.as_uri()).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[-2000:]
    attributes = dict(re.findall(r'(data-[\w-]+)="(\d+)"', body.group(0)))
    assert int(attributes["data-images-total"]) == 24
    assert attributes["data-images-loaded"] == attributes["data-images-total"]
    assert int(attributes["data-cards"]) == len(report.outcomes) == int(attributes["data-cards-expected"])

    shot = tmp_path / "shot.png"
    _run_chromium(
        browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000", path.as_uri()
    )
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.shape == (2000, 1200)
    assert pixels.std() > 10  # pictures and text, not a blank page
