"""A batch's report.html: one self-contained page to look at what a batch did, image by image.

The page is one file that opens anywhere, offline, from an email or a zip: no network loads, no
external CSS, JS or fonts (a Content-Security-Policy meta tag makes the browser refuse any), and
every picture is embedded as a ``data:`` URI. The pictures are made here with Pillow from dip's
own reader (``io.load_image``), so every format dip accepts (16-bit PNG/TIFF, alpha, grayscale)
shows, and each is bounded (``THUMB_SIDE``) so a 24-megapixel photo adds tens of kB, not 30 MB.

Per image: its name and status; for restored and skipped (already restored) images the input and
the result side by side, a zoomed crop of both where they differ most, and the figures of
``Outcome.row()``. One image that cannot be read becomes a note in its card, never an exception.
"""

from __future__ import annotations

import base64
import html
import io
import math
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dip_cli.io import load_image, write_text_atomic

if TYPE_CHECKING:
    from PIL import Image

    from dip_cli.batch import BatchReport, Item, Outcome

THUMB_SIDE = 512  # longest side of a side-by-side picture: bounds the page, enough to judge
JPEG_QUALITY = 85
CROP_MIN, CROP_MAX = 16, 128  # side of the zoomed region, in result pixels
ZOOM_SIDE = 256  # the zoomed crops are enlarged (by a whole factor) to about this many pixels
ANALYSIS_SIDE = 1024  # where to zoom is found on copies at most this large: fast on big photos
STATUSES = ("restored", "skipped", "failed", "interrupted", "pending")
MISSING = "—"

# (row key, label, format): the figures of Outcome.row(), in the order shown.
FIGURES = (
    ("iterations", "iterations", "{:d}"),
    ("selected_iteration", "selected iteration", "{:d}"),
    ("stop_reason", "stop reason", "{}"),
    ("seconds", "time", "{:.1f} s"),
    ("psnr_input", "PSNR vs input", "{:.2f} dB"),
)
REFERENCE_FIGURES = (
    ("psnr_reference", "PSNR vs reference", "{:.2f} dB"),
    ("ssim_reference", "SSIM vs reference", "{:.4f}"),
    ("psnr_reference_input", "baseline PSNR vs reference", "{:.2f} dB"),
)


def write_report_html(report: BatchReport, folder: Path) -> Path:
    """Write ``folder/report.html`` (atomically, like the summaries) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.html"
    # Pure ASCII (other characters as &#NNN;), so the page is the same whatever the locale's
    # encoding that write_text_atomic writes with, and file names that are not UTF-8 survive.
    text = render_report_html(report).encode("ascii", "xmlcharrefreplace").decode("ascii")
    write_text_atomic(path, text)
    return path


def render_report_html(report: BatchReport) -> str:
    """The whole page as a string (reads the images; writes nothing)."""
    show_reference = any(
        _present(outcome.row().get(key)) for outcome in report.outcomes for key, _, _ in REFERENCE_FIGURES
    )
    cards = "\n".join(
        _card(outcome, index, show_reference) for index, outcome in enumerate(report.outcomes, start=1)
    )
    title = f"dip batch report: {len(report.outcomes)} image{'s' if len(report.outcomes) != 1 else ''}"
    return _PAGE.format(
        title=_esc(title),
        style=_STYLE,
        script=_SCRIPT,
        cards_expected=len(report.outcomes),
        header=_header(report, title),
        cards=cards,
    )


# --- page parts ----------------------------------------------------------------------------------


def _header(report: BatchReport, title: str) -> str:
    """Totals per status and the batch's time (and why it stopped early, if it did)."""
    totals = "".join(
        f'<li class="total status-{status}"><b>{report.count(status)}</b> {status}</li>'
        for status in STATUSES
    )
    notes = [f"batch time {_duration(report.seconds)}"]
    if report.interrupted:
        notes.append(f"stopped by {_signal_name(report.interrupted)}; rerun the same command to resume")
    if report.ignored:
        notes.append(f"{len(report.ignored)} file(s) in the folders were not images and were ignored")
    lines = "".join(f"<p>{_esc(note)}</p>" for note in notes)
    return f'<header><h1>{_esc(title)}</h1><ul class="totals">{totals}</ul>{lines}</header>'


def _card(outcome: Outcome, index: int, show_reference: bool) -> str:
    """One image's section: name, status, message, pictures and figures as its status allows."""
    status = outcome.status if outcome.status in STATUSES else "other"
    parts = [
        f'<h2><span class="badge status-{status}">{_esc(outcome.status)}</span> '
        f"{_esc(str(outcome.item.relative))}</h2>",
        f'<p class="path">{_esc(str(outcome.item.input))} &rarr; {_esc(str(outcome.item.output))}</p>',
    ]
    if outcome.message:
        parts.append(f'<p class="message">{_esc(outcome.message)}</p>')
    if outcome.status in ("restored", "skipped"):
        parts.append(_comparison(outcome.item))
        parts.append(_figures(outcome.row(), show_reference))
    elif outcome.status == "failed":
        parts.append(_input_only(outcome.item))  # often shows why (a huge or odd picture)
    body = "\n".join(part for part in parts if part)
    opening = f'<section class="card status-{status}" id="image-{index}" data-status="{status}">'
    return f"{opening}\n{body}\n</section>"


def _comparison(item: Item) -> str:
    """Input and result side by side, then the zoomed crops; a note if either cannot be read."""
    try:
        before = _display_image(item.input)
        after = _display_image(item.output)
        zoom_before, zoom_after = _zoom_pair(before, after)
    except Exception as exc:  # a corrupt or vanished file must not stop the report
        return _note(f"pictures not shown: {_reason(exc)}")
    size = f"{before.width}&times;{before.height} &rarr; {after.width}&times;{after.height} px"
    thumb_after = _bounded(after, THUMB_SIDE)
    # Shown at the result's size (the browser enlarges a small thumbnail, never reads a file), so
    # a super-resolution input lines up with its result.
    return (
        f'<div class="pair">{_figure_img(_bounded(before, THUMB_SIDE), "input", "thumb", thumb_after.size)}'
        f"{_figure_img(thumb_after, 'result', 'thumb')}</div>"
        f'<p class="size">{size}</p>'
        f'<div class="pair zoom">{_figure_img(zoom_before, "input, zoomed", "zoom")}'
        f"{_figure_img(zoom_after, 'result, zoomed', 'zoom')}</div>"
    )


def _input_only(item: Item) -> str:
    """A failed image's input, if it can be read at all; otherwise why not."""
    try:
        before = _display_image(item.input)
    except Exception:
        return ""  # the failure's own message (shown above) already says why it cannot be read
    return f'<div class="pair">{_figure_img(_bounded(before, THUMB_SIDE), "input", "thumb")}</div>'


def _figures(row: dict, show_reference: bool) -> str:
    """The figures as a two-column table; reference rows only when the batch had references."""
    rows = FIGURES + (REFERENCE_FIGURES if show_reference else ())
    cells = "".join(
        f"<tr><th>{_esc(label)}</th><td>{_esc(_format(row.get(key), fmt))}</td></tr>"
        for key, label, fmt in rows
    )
    return f'<table class="figures">{cells}</table>'


def _figure_img(image: Image.Image, caption: str, kind: str, shown: tuple[int, int] | None = None) -> str:
    """An embedded <img> with its caption, laid out at ``shown`` (width, height; default its own)."""
    width, height = shown or image.size
    return (
        f'<figure><img class="{kind}" src="{_data_uri(image)}" width="{width}" '
        f'height="{height}" alt="{_esc(caption)}"><figcaption>{_esc(caption)}</figcaption></figure>'
    )


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


# --- pictures ------------------------------------------------------------------------------------


def _display_image(path: Path) -> Image.Image:
    """The file as dip reads it, as an 8-bit Pillow image; alpha is shown over white."""
    from PIL import Image

    picture = load_image(path)
    pixels = picture.pixels  # ours to change: work in place, a 24 MP float image is 288 MB
    if not pixels.flags.writeable:
        pixels = pixels.copy()
    np.clip(pixels, 0, 1, out=pixels)
    if picture.alpha is not None:
        alpha = np.clip(picture.alpha, 0, 1)[..., None]
        pixels *= alpha
        pixels += 1 - alpha
    pixels *= 255
    pixels += 0.5
    array = pixels.astype(np.uint8)
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def _bounded(image: Image.Image, side: int) -> Image.Image:
    """The image shrunk so its longest side is at most ``side``; a smaller one as it is."""
    from PIL import Image

    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _zoom_pair(before: Image.Image, after: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The same region of input and result, both enlarged with nearest neighbour to one size.

    The region is square in result pixels; for super-resolution the input's region is the
    corresponding smaller one, so its enlargement shows the input's pixels at the result's scale.
    """
    from PIL import Image

    side = min(CROP_MAX, max(CROP_MIN, min(after.size) // 3))
    width, height = min(side, after.width), min(side, after.height)
    left, top = _busiest_region(before, after, width, height)
    zoom = max(1, ZOOM_SIDE // side)
    size = (width * zoom, height * zoom)
    sx, sy = after.width / before.width, after.height / before.height
    box_before = (left / sx, top / sy, (left + width) / sx, (top + height) / sy)
    box_after = (left, top, left + width, top + height)
    nearest = Image.Resampling.NEAREST
    return before.resize(size, nearest, box=box_before), after.resize(size, nearest, box=box_after)


def _busiest_region(before: Image.Image, after: Image.Image, width: int, height: int) -> tuple[int, int]:
    """Top-left corner (result pixels) of the ``width`` x ``height`` window where input and result
    differ most: that is where the restoration did something worth looking at.

    Both are compared in gray on one grid: the input's size, shrunk to ``ANALYSIS_SIDE`` at most
    (a box filter; for super-resolution the result is shrunk to the input's grid).
    """
    from PIL import Image

    scale = min(1.0, ANALYSIS_SIDE / max(before.size))
    grid = (max(1, round(before.width * scale)), max(1, round(before.height * scale)))
    gray = [
        np.asarray(im.convert("L").resize(grid, Image.Resampling.BOX), np.float64) for im in (before, after)
    ]
    diff = np.abs(gray[0] - gray[1])
    kx = min(grid[0], max(1, round(width * grid[0] / after.width)))
    ky = min(grid[1], max(1, round(height * grid[1] / after.height)))
    sums = _window_sums(diff, ky, kx)
    if sums.max() <= 0:  # identical: the centre is as good as anywhere, and less arbitrary
        return (after.width - width) // 2, (after.height - height) // 2
    row, col = _middle_of_best(sums)
    left = min(after.width - width, round(col * after.width / grid[0]))
    top = min(after.height - height, round(row * after.height / grid[1]))
    return max(0, left), max(0, top)


def _middle_of_best(sums: np.ndarray) -> tuple[int, int]:
    """Of the windows that tie for the most difference, the one nearest their middle: a small
    change then sits in the middle of the crop, not in a corner (where plain argmax puts it)."""
    best = np.argwhere(sums >= sums.max() * (1 - 1e-6))
    nearest = np.argmin(((best - best.mean(axis=0)) ** 2).sum(axis=1))
    return int(best[nearest][0]), int(best[nearest][1])


def _window_sums(values: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """Sum over every ky x kx window (an integral image: one pass, whatever the window)."""
    total = np.pad(values.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return total[ky:, kx:] - total[:-ky, kx:] - total[ky:, :-kx] + total[:-ky, :-kx]


def _data_uri(image: Image.Image) -> str:
    """JPEG (quality 85) as a data: URI: small, and decoded by every browser."""
    buffer = io.BytesIO()
    image.convert("L" if image.mode in ("L", "1") else "RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --- text ----------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _present(value: object) -> bool:
    """A figure worth showing: not missing, not NaN (run.json and summaries write None for NaN)."""
    if value is None or value == "":
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def _format(value: object, fmt: str) -> str:
    """A figure as text; missing values as a dash, never "nan" or "None"."""
    if not _present(value):
        return MISSING
    try:
        return fmt.format(value)
    except (ValueError, TypeError):  # e.g. an int format given a float read back from run.json
        return str(value)


def _duration(seconds: float) -> str:
    if not _present(seconds):
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


# --- template ------------------------------------------------------------------------------------

# default-src 'none': the browser itself refuses any load that is not inline or a data: image.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>{style}</style>
</head>
<body data-cards-expected="{cards_expected}">
{header}
<main>
{cards}
</main>
<script>{script}</script>
</body>
</html>
"""

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 1em; max-width: 1200px;
  color: #222; background: #f4f4f4; }
h1 { font-size: 1.4em; margin: 0 0 .4em; }
h2 { font-size: 1.05em; margin: 0 0 .3em; overflow-wrap: anywhere; }
header p { margin: .2em 0; }
.totals { list-style: none; padding: 0; margin: .3em 0; display: flex; flex-wrap: wrap; gap: .4em; }
.total { padding: .2em .6em; border-radius: 4px; background: #fff; border-left: 4px solid #999; }
.card { background: #fff; border-left: 6px solid #999; border-radius: 4px; padding: .8em 1em;
  margin: 1em 0; box-shadow: 0 1px 2px rgba(0,0,0,.1); }
.status-restored { border-left-color: #2e7d32; } .status-skipped { border-left-color: #1565c0; }
.status-failed { border-left-color: #c62828; } .status-interrupted { border-left-color: #ef6c00; }
.status-pending { border-left-color: #9e9e9e; }
.badge { display: inline-block; font-size: .8em; padding: .1em .5em; border-radius: 3px; color: #fff;
  background: #9e9e9e; text-transform: uppercase; vertical-align: middle; }
.badge.status-restored { background: #2e7d32; } .badge.status-skipped { background: #1565c0; }
.badge.status-failed { background: #c62828; } .badge.status-interrupted { background: #ef6c00; }
.path, .size { color: #666; font-size: .85em; margin: 0 0 .5em; overflow-wrap: anywhere; }
.message { white-space: pre-wrap; overflow-wrap: anywhere; margin: .3em 0 .6em; }
.status-failed .message { color: #b71c1c; background: #fdecea; padding: .4em .6em; border-radius: 3px; }
.note { color: #8a5300; font-style: italic; overflow-wrap: anywhere; }
.pair { display: flex; flex-wrap: wrap; gap: .8em; }
figure { margin: 0; flex: 1 1 240px; min-width: 0; }
figure img { display: block; max-width: 100%; height: auto; background: #ddd; }
img.thumb { width: 100%; max-width: 512px; }  /* a small photo is shown at a size one can judge */
img.zoom { image-rendering: pixelated; }
figcaption { font-size: .85em; color: #555; }
.figures { border-collapse: collapse; margin-top: .6em; font-size: .9em; }
.figures th { text-align: left; font-weight: normal; color: #555; padding: .1em 1.2em .1em 0; }
.figures td { font-variant-numeric: tabular-nums; }
"""

# For headless checks: how many pictures decoded, and how many cards are on the page. Loads nothing.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.setAttribute("data-images-loaded", String(loaded.length));
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-cards", String(document.querySelectorAll("section.card").length));
});
"""
