"""dip: image restoration with Deep Image Prior.

From Python, on arrays (see ``dip_cli.api``)::

    import dip_cli
    clean = dip_cli.denoise(noisy)            # uint8/uint16/float, gray/RGB/RGBA in, same out
    filled = dip_cli.inpaint(image, known)    # known: bool H x W, True = keep
    large = dip_cli.sr(small, scale=4)
    restored = dip_cli.jpeg("photo.jpg")      # a JPEG file, its bytes, or a decoded array

The package never imports torch (or numpy) at import time, so ``dip --help`` stays fast: the
four functions are loaded on first use.

The modules, in the order the data flows (image -> operator -> network(z) -> fit -> outputs);
each imports only those above it in this list (``tests/test_layers.py`` checks it):

- ``errors``: the ``DipError`` family and its exit codes.
- ``settings``: ``Settings``, what to fit (a preset with overrides); ``metrics``: PSNR, SSIM;
  ``io``: image and mask files; ``tiles``: tile layouts and the blend window; ``jpeg_file``: a
  JPEG file's own coefficients and tables; ``process``: process-wide tuning (OpenMP waits,
  malloc); ``report``: what a person sees (progress bars, log lines, tables).
- ``options``: ``RunOptions``, how to run (seed, device, threads, tiles, run folder, resume);
  ``presets``: the built-in and user presets; ``progress``: the ``Observer`` a fit reports to and
  the ``Event`` messages that carry it across processes.
- ``operators``: what degraded the image, A(x), with its geometry (crop, stored frame);
  ``networks``: the generators; ``stopping``: ES-WMV.
- ``fit``: the loop; ``workers``: fits in worker processes, stopped cleanly.
- ``resources``: devices, threads, memory a fit needs, tile sides, workers: every measured policy.
- ``run_folder``: a run's files, lock and resume contract, and a fit's hooks onto them;
  ``provenance``: the ``Record``, the fingerprint a resume must match, versions, wall time.
- ``solve``: one DIP problem -> pixels and a record.
- ``parts``: an image as parts (tiles, several fits) over ``solve``.
- ``core``: ``restore_array``, whole or in parts.
- ``tasks``: each task's operator, baseline and default preset.
- ``api``: arrays in and out; ``restore``: one file in, one file out.
- ``batch``: many files (``plan``, ``outcome``, ``summary``, executors ``local`` and
  ``ray_tasks``); ``report_html``: a batch's report.html.
- ``experiments``: ``dip experiment``, the evidence on why DIP works.
- ``cli``: the ``dip`` command, the thinnest layer.
"""

__version__ = "0.2.0"
__all__ = ["denoise", "inpaint", "jpeg", "sr"]


def __getattr__(name: str):
    if name in __all__:
        from dip_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'dip_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
