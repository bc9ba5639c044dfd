"""What a person reads at the end: names and paths are never cut to fit an 80-column terminal."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from dip_cli.batch import BatchReport, Item, Outcome
from dip_cli.core import Record
from dip_cli.report import batch_table, summary_lines
from dip_cli.restore import RestoreResult

RECORD = Record(1850, 1434, "early-stop", 104.2, 29.1, 0, 29.75, 0.812, 20.62)


def render(renderable, width: int = 80, **options) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable, **options)
    return console.export_text()


def test_one_image_summary_shows_the_whole_output_path_at_80_columns():
    # Regression: the table cut names to "astronaut_noisy… → samples/astrona…".
    result = RestoreResult(
        Path("samples/astronaut_noisy.png"),
        Path("samples/restored/a_long_folder_name/astronaut_noisy.restored.png"),
        Path("samples/restored/a_long_folder_name/astronaut_noisy.dip"),
        "denoise",
        RECORD,
    )
    text = render(summary_lines([result]), highlight=False, soft_wrap=True)
    assert "…" not in text
    for path in (result.input, result.output, result.run_dir):
        assert str(path) in text
    assert "29.75 dB" in text and "1434 of 1850" in text


def test_batch_table_names_every_image_in_full_at_80_columns():
    names = ["trip/day2/astronaut_noisy.png", "beach_jpg.jpg", "a/b/c/chelsea_q10_long_name.jpg"]
    outcomes = [
        Outcome(Item(Path("photos") / n, Path(n), Path("out") / n, Path("out") / "x.dip"), "restored", None)
        for n in names
    ]
    text = render(batch_table(BatchReport(outcomes)))
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    first_column = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    for name in names:
        assert name in first_column  # whole, or folded onto the next line: never cut
