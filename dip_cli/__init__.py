"""dip: image restoration with Deep Image Prior.

From Python, on arrays (see ``dip_cli.api``)::

    import dip_cli
    clean = dip_cli.denoise(noisy)            # uint8/uint16/float, gray/RGB/RGBA in, same out
    filled = dip_cli.inpaint(image, known)    # known: bool H x W, True = keep
    large = dip_cli.sr(small, scale=4)
    restored = dip_cli.jpeg("photo.jpg")      # a JPEG file, its bytes, or a decoded array

The package never imports torch (or numpy) at import time, so ``dip --help`` stays fast: the
four functions are loaded on first use.
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
