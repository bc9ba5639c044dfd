"""A batch's summary files: summary.csv (one row per image) and summary.json (rows, totals,
ignored files), beside report.html (``report_html``) in the batch's summary folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from dip_cli.batch.outcome import SUMMARY_COLUMNS, BatchReport
from dip_cli.io import write_text_atomic


def write_summary(report: BatchReport, folder: Path) -> tuple[Path, Path]:
    """summary.csv (one row per image) and summary.json (rows, totals, ignored files)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [_clean_row(outcome.row()) for outcome in report.outcomes]
    csv_path, json_path = folder / "summary.csv", folder / "summary.json"
    write_text_atomic(csv_path, _csv_text(rows))
    totals = {s: report.count(s) for s in ("restored", "skipped", "failed", "interrupted", "pending")}
    payload = {
        "images": rows,
        "totals": totals,
        "ignored": [str(p) for p in report.ignored],
        "seconds": report.seconds,
        "exit_code": report.exit_code,
    }
    write_text_atomic(json_path, json.dumps(payload, indent=2, default=str))
    return csv_path, json_path


def _clean_row(row: dict) -> dict:
    """NaN as empty, floats to 4 decimals (PSNR to 1e-4 dB, seconds to 0.1 ms)."""
    return {
        k: (None if math.isnan(v) else round(v, 4)) if isinstance(v, float) else v for k, v in row.items()
    }


def _csv_text(rows: list[dict]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
