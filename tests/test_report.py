"""What a person reads at the end: names and paths are never cut to fit an 80-column terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from dip_cli.batch import BatchReport, Item, Outcome
from dip_cli.provenance import Record
from dip_cli.report import BatchDisplay, LogLines, ProgressDisplay, batch_table, summary_lines
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80), out  # a file, not a terminal: as with `2> log`


def test_log_lines_print_at_most_once_a_minute_with_an_eta_from_the_mean_rate():
    console, out = log_console()
    clock = FakeClock()
    log = LogLines(console, "photo.jpg (63 tiles)", total=151200, done=0, clock=clock)
    for step in range(1, 600):  # 10 minutes at one step a second
        clock.now += 1.0
        log.update(step * 10, "loss 1.00e-03")
    lines = out.getvalue().splitlines()
    assert lines[0] == "photo.jpg (63 tiles): starting, 151200 steps"
    assert len(lines) == 1 + 9  # one a minute, never one per step
    # the last at 540 s: 5400 steps done at 10 a second, 145800 left -> 14580 s
    assert lines[-1] == "photo.jpg (63 tiles): 5400/151200 (4%)  loss 1.00e-03  elapsed 0:09:00  eta 4:03:00"
    assert all(len(line) > 80 for line in lines[1:])  # long lines are not wrapped at 80 columns


def test_log_lines_after_resume_count_only_this_sessions_rate():
    console, out = log_console()
    clock = FakeClock()
    log = LogLines(console, "photo", total=1000, done=600, clock=clock)
    clock.now += 100.0
    log.update(700)  # 100 steps in 100 s, 300 left
    assert out.getvalue().splitlines() == [
        "photo: resumed at 600 of 1000",
        "photo: 700/1000 (70%)  elapsed 0:01:40  eta 0:05:00",
    ]


def test_log_lines_eta_follows_the_last_15_minutes_when_the_machine_gets_busier():
    console, out = log_console()
    clock = FakeClock()
    log = LogLines(console, "photo", total=100000, done=0, clock=clock)
    done = 0
    for second in range(1, 3601):  # an hour at 10 steps a second, then half as fast
        clock.now += 1.0
        done += 10 if second <= 1800 else 5
        log.update(done)
    # 15 minutes at 5 a second: 100000 - 27000 = 73000 steps left -> 14600 s (the hour's mean
    # rate, 7.5 a second, would say 9733 s)
    assert out.getvalue().splitlines()[-1] == "photo: 27000/100000 (27%)  elapsed 1:00:00  eta 4:03:20"


def test_log_lines_skip_what_resumed_tiles_did_before_this_session():
    console, out = log_console()
    clock = FakeClock()
    log = LogLines(console, "photo", total=10000, done=4800, clock=clock)
    log.resumed(4200)  # two tiles resumed at 2100 each: counted in the next update, not done now
    clock.now += 60.0
    log.update(4800 + 4200 + 600)  # 600 steps this minute, 400 left
    assert out.getvalue().splitlines()[-1].endswith("elapsed 0:01:00  eta 0:00:40")


def test_progress_display_writes_lines_to_a_log_and_a_bar_to_a_terminal():
    from dip_cli.fit import Status

    status = Status(5, 10, 0.01, 20.0, float("nan"), psnr_reference=None, selected_iteration=None)
    console, out = log_console()
    display = ProgressDisplay(console)
    display.start("noisy.png", total=10, done=0)
    display.update(status)
    display.finish()
    assert out.getvalue().splitlines() == ["noisy.png: starting, 10 steps"]  # the next line comes a minute on
    terminal = io.StringIO()
    display = ProgressDisplay(Console(file=terminal, force_terminal=True, width=120))
    display.start("noisy.png", total=10, done=0)
    display.update(status)
    display.finish()
    assert "starting, 10 steps" not in terminal.getvalue() and "5/10" in terminal.getvalue()


def test_batch_display_in_a_log_says_each_image_finished_with_the_batch_eta():
    console, out = log_console()
    display = BatchDisplay(console)
    display.batch_start(total=3, done=0)
    item = Item(Path("in/a.png"), Path("a.png"), Path("out/a.png"), Path("out/a.dip"))
    display.image_start(0, "a.png", 100, 0)
    display.image_resumed(0, 40)  # a tiled image resumed: the tiles' checkpointed steps
    assert display._image_logs[0].samples[0][1] == 40
    display.image_finish(0, Outcome(item, "restored", None))
    display.image_finish(1, Outcome(item, "failed", None, "in/a.png: not an image"))
    display.batch_finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "images: starting, 3 images" and lines[1] == "  a.png: starting, 100 steps"
    assert lines[2].startswith("images: 1/3 (33%)  a.png restored  elapsed")
    assert lines[3] == "failed: in/a.png: not an image"
    assert lines[4].startswith("images: 2/3 (67%)  a.png failed")
