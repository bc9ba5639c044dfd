"""Image quality figures on numpy images in [0, 1] (H, W, C)."""

from __future__ import annotations

import math

import numpy as np

#: The per-iteration figures a fit records (``fit.fit``'s history, a run folder's metrics.csv).
METRIC_COLUMNS = ("iteration", "loss", "psnr_input", "wmv", "psnr_reference")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (data range 1); capped at 100 dB for identical images."""
    return psnr_from_mse(float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def psnr_from_mse(mse: float) -> float:
    """dB for images in [0, 1]; capped at 100 dB so identical images give a finite figure."""
    return 100.0 if mse <= 1e-10 else -10.0 * math.log10(mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (scikit-image, Gaussian weights as in Wang et al. 2004)."""
    from skimage.metrics import structural_similarity

    if min(a.shape[0], a.shape[1]) < 11:
        return math.nan  # the 11x11 Gaussian window does not fit
    return float(
        structural_similarity(
            a,
            b,
            data_range=1.0,
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
