"""The core: an observation, the operator that made it, settings and run options in; the
restored array and a record of how it went out.

It chooses how to solve the problem: whole (``solve.solve``), or as parts (``parts``: the
overlapping tiles of a large photo, several fits of one image averaged). Everything else is a
thin layer on this one function: ``api`` (arrays in, arrays out), ``tasks`` (which operator and
baseline each task uses), ``restore`` (files in, files out), ``batch`` (many files), the
experiments and the benchmarks. It knows nothing of files except the run folder it opens for
``options.run_dir`` (checkpoints, metrics, run.json, snapshots, resume).

The flow is one way: y, A -> network(z) -> fit -> A.finish -> array.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from dip_cli.options import RunOptions
from dip_cli.parts import plan_layout, restore_in_tiles, whole_layout
from dip_cli.provenance import Record
from dip_cli.run_folder import RunFolder
from dip_cli.settings import Settings
from dip_cli.solve import solve


def restore_array(
    y: np.ndarray,
    operator,
    settings: Settings,
    options: RunOptions = RunOptions(),
    *,
    reference: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    info: dict | None = None,
    on_snapshot=None,
) -> tuple[np.ndarray, Record]:
    """Fit DIP to the observation ``y`` (H, W, C float32 in [0, 1]) degraded by ``operator``.

    Returns the restored image (float32 (H', W', C) at ``operator.output_size``) and its
    ``Record``. With ``reference`` (the clean image) the record gets PSNR/SSIM against it,
    and ``baseline`` (what a user has without dip) is scored too. With ``options.run_dir`` the
    fit checkpoints and resumes (``options.resume`` / ``overwrite``), and ``info`` is added to
    its run.json (the file layer's paths). Every ``options.save_every`` steps the run folder
    gets a checkpoint and a snapshot, and ``on_snapshot`` (if given) the smoothed output.

    ``options.tile``: ``"off"`` fits the whole image at once; an integer fits overlapping tiles
    of at most that side, each its own DIP problem (``parts.restore_in_tiles``); ``"auto"``
    tiles an image larger than ``resources.AUTO_WHOLE`` (512 px) in tiles of
    ``resources.auto_tile_side`` and fits a smaller one whole. ``settings.fit.restarts`` > 1
    fits the image (or each tile) that many times from independent seeds and averages the
    outputs.
    """
    layout = plan_layout(y, operator, options.tile, settings, options.device, options.threads)
    if layout is None and settings.fit.restarts > 1:  # several fits: the parts machinery of tiles
        layout = whole_layout(y, operator)
    folder = options.run_dir
    opened = (
        RunFolder(folder, resume=options.resume, overwrite=options.overwrite) if folder else nullcontext()
    )
    with opened as run:
        if layout is not None:
            return restore_in_tiles(
                y,
                operator,
                settings,
                layout,
                options,
                run=run,
                reference=reference,
                baseline=baseline,
                info=info,
            )
        solution = solve(
            y, operator, settings, options, run=run, reference=reference, baseline=baseline, info=info,
            on_snapshot=on_snapshot,
        )  # fmt: skip
    return solution.pixels, solution.record
