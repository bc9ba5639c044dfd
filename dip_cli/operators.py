"""Degradation operators A(x): what turned the clean image into the observation y.

The fit loop minimises ``operator.loss(net(z), y)``: an operator knows how the observation
was formed and which of its entries count (deepinv's physics objects, reduced to what DIP
needs: ``nn.Module``s whose fixed data are buffers). ``simulate_*`` make synthetic corrupted
inputs for tests, samples, benchmarks and experiments.
"""

from __future__ import annotations

import io as _io
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from dip_cli.settings import SR_KERNELS, SR_SCALES


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, C) array -> (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32))[None]


def to_pixels(image: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 array on the host."""
    return np.ascontiguousarray(image[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)


class Operator(nn.Module):
    """Base class: the identity (denoising, JPEG artifact removal).

    ``forward`` is A(x). ``loss`` is the mean squared error over the observed entries;
    ``finish`` turns the fitted image into the output (the mask puts the known pixels back);
    ``output_size`` is the size of x for an observation of a given size. Fixed data (a mask,
    a filter) are buffers, so ``.to(device)`` and ``state_dict()`` carry them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the standard name)
        return self(x)

    def mse(self, measured: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the entries that were observed."""
        return torch.mean((measured - y) ** 2)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.mse(self(x), y)

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x

    def finish_description(self) -> str:
        """What ``finish`` makes of the fitted image, for run.json."""
        return "as fitted"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    def tile_multiple(self) -> int:
        """Tile boxes (output pixels) are multiples of this, so a tile maps to whole observed entries."""
        return 1

    def crop(self, y: np.ndarray, top: int, left: int, height: int, width: int):
        """The sub-problem of one output box (a tile): its observation (H, W, C) and operator."""
        return y[top : top + height, left : left + width], Operator()

    def stored_size(self, height: int, width: int) -> tuple[int, int]:
        """An output size (``output_size``'s) in the frame tiles are cut in (``stored_frame``)."""
        return height, width

    def stored_frame(self) -> Frame:
        """The frame a problem is cut into tiles in: for most operators the image's own; a JPEG
        file with an EXIF rotation is tiled as stored, on its block grid (``JpegModel``)."""
        return Frame(self, _unchanged, _unchanged)

    def describe(self) -> dict:
        """What run.json records about the operator."""
        kind = "identity" if type(self) is Operator else type(self).__name__.lower()
        return {"kind": kind, "loss": "pixel MSE", "repr": repr(self)}


Identity = Operator


def _unchanged(pixels: np.ndarray) -> np.ndarray:
    return pixels


class Frame(NamedTuple):
    """An operator in the frame tiles are cut in, and the (H, W, C) arrays' way there and back."""

    operator: Operator
    to_stored: Callable[[np.ndarray], np.ndarray]  # an observation or reference, into the frame
    to_display: Callable[[np.ndarray], np.ndarray]  # a result, back as shown


def biharmonic_fill(pixels: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The classical inpainting: the pixels where ``known`` is False, (H, W, C) in [0, 1], filled
    by scikit-image's biharmonic inpainting; the known pixels kept."""
    from skimage.restoration import inpaint_biharmonic

    filled = inpaint_biharmonic(pixels, ~known, channel_axis=-1)
    return np.clip(filled, 0, 1).astype(np.float32)


class Mask(Operator):
    """Inpainting: only the known pixels (mask = 1) are observed.

    ``finish`` keeps the known pixels exactly; with ``blend`` (the default) it fills the holes
    with ``FIT_WEIGHT`` x the fit + the rest x a classical fill of the same holes (scikit-image's
    biharmonic inpainting), whose errors differ from the network's: the fit carries structure
    across a hole, the biharmonic fill does not add texture where the photo is smooth.
    """

    #: The fit's share of each hole pixel. Scratches over 128 px crops: on the eight of
    #: ``benchmarks.versus`` the fit alone gained +0.69 dB over biharmonic and 0.75 of it +1.02
    #: (0.5: +0.98); held out, on eight other photo crops (``benchmarks.jpeg_quality``'s), +1.33
    #: against +1.52 (0.5: +1.31), with no crop left below biharmonic (the fit alone: one). Where
    #: the fit is far ahead (the paper's text, large holes and 50% missing pixels, +3.2 to +5.6
    #: dB) the blend gave back 0.2 dB on average, 1.0 on the missing pixels.
    FIT_WEIGHT = 0.75

    def __init__(self, known: torch.Tensor, *, blend: bool = True) -> None:
        super().__init__()
        # (1, 1, H, W) float in {0, 1}; broadcast over colour channels.
        self.register_buffer("known", known.float().reshape(1, 1, *known.shape[-2:]))
        self.register_buffer("count", self.known.sum())
        self.blend = blend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.known

    def mse(self, measured: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        channels = measured.shape[1]
        return torch.sum(((measured - y) * self.known) ** 2) / (self.count * channels)

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Known pixels are facts: keep them exactly, use the network only to fill the holes.
        known = self.known.bool()
        if self.blend and not known.all():
            x = self.FIT_WEIGHT * x + (1 - self.FIT_WEIGHT) * self.classical_fill(y)
        return torch.where(known, y, x)

    def classical_fill(self, y: torch.Tensor) -> torch.Tensor:
        """The holes of ``y`` filled by biharmonic inpainting (``biharmonic_fill``)."""
        known = self.known[0, 0].bool().cpu().numpy()
        return to_tensor(biharmonic_fill(to_pixels(y), known)).to(y.device)

    def finish_description(self) -> str:
        if self.blend:
            share = round(100 * self.FIT_WEIGHT)
            return f"the known pixels put back; the holes {share}% the fit, {100 - share}% biharmonic fill"
        return "the known pixels put back"

    def crop(self, y: np.ndarray, top: int, left: int, height: int, width: int):
        known = self.known[0, 0, top : top + height, left : left + width].cpu()
        if not known.any():
            from dip_cli.errors import InputError

            raise InputError(
                f"the {width}x{height} tile at ({left}, {top}) has no known pixels to fit: give a "
                "larger --tile (it needs known pixels around the hole) or --tile off"
            )
        return y[top : top + height, left : left + width], Mask(known, blend=self.blend)


class Downsample(Operator):
    """Super-resolution: y = D(x), a fixed separable antialiasing filter + stride.

    The default is the paper's (a Lanczos2 kernel with phase 0.5): 4*s taps at offsets
    (k - (4s - 1)/2) / s, so output pixel j is centred on input pixels [j*s, (j+1)*s), and
    edge-replicated padding of 1.5*s makes the output exactly H/s x W/s. ``kernel`` picks
    another of ``SR_KERNELS`` on the same grid, the way Pillow's antialiased resizes make
    low-res images (``downscale_taps``). Taps sum to one, so a constant image stays constant.
    """

    SCALES = SR_SCALES  # even factors: the kernels then centre exactly (odd ones would shift)
    KERNELS = SR_KERNELS

    def __init__(self, factor: int, channels: int, kernel: str = "lanczos2") -> None:
        super().__init__()
        if factor not in self.SCALES:
            raise ValueError(f"scale must be one of {self.SCALES}, got {factor}")
        self.factor = factor
        self.channels = channels
        self.kernel = kernel
        taps = downscale_taps(factor, kernel)
        weight = torch.outer(taps, taps)
        self.register_buffer("weight", weight.expand(channels, 1, *weight.shape).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.weight.shape[-1] - self.factor) // 2  # kernel - stride, split evenly
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
        return torch.nn.functional.conv2d(padded, self.weight, stride=self.factor, groups=self.channels)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height * self.factor, width * self.factor

    def tile_multiple(self) -> int:
        return self.factor

    def crop(self, y: np.ndarray, top: int, left: int, height: int, width: int):
        """An output box of s*h x s*w (on the s grid) observes the h x w low-res pixels under it.
        Its filter reaches 1.5 s past the box: the tiles' overlap absorbs that."""
        s = self.factor
        if top % s or left % s or height % s or width % s:
            raise ValueError(f"a x{s} super-resolution tile must lie on the {s}-pixel grid")
        return y[top // s : (top + height) // s, left // s : (left + width) // s], Downsample(
            s, self.channels, self.kernel
        )

    def extra_repr(self) -> str:
        return f"factor={self.factor}, channels={self.channels}, kernel={self.kernel}"


class JpegModel(Operator):
    """JPEG artifact removal against what the file holds (``jpeg_file.read_jpeg``).

    A(x) is the encoder applied to the network's output x (display orientation, [0, 1]):
    undo the EXIF rotation (an exact permutation, so the blocks line up with the file's),
    RGB -> YCbCr (JFIF), chroma subsampled as the file was (libjpeg's box average over the
    edge-replicated plane), level shift, and the 8x8 DCT on the file's block grid, partial
    blocks padded by edge replication as libjpeg pads them. The observation is the file's
    dequantized coefficients k*q, so luma is compared at full resolution and chroma at its
    stored resolution (4:2:0 chroma becomes a x2 super-resolution problem), with no decoder
    upsampling or rounding in between. The loss is the mean squared coefficient error on the
    0-1 scale (the DCT is orthonormal: the same as the pixel MSE in YCbCr).

    ``finish`` (with ``project``) moves the fitted image into the file's quantization box:
    every coefficient into [(k - 1/2) q, (k + 1/2) q], the set the true image lies in. The
    correction is the smallest one in YCbCr (constant over each subsampled chroma block, the
    pseudo-inverse of the box average), so it never moves the result away from the truth.
    With ``blend`` (the default) the output is the box's point nearest the mean of estimates of
    the image that err differently: the fit, a classical decode of the file (total variation
    lowered inside the box, ``smooth``) and, from quality ``DECODE_QUALITY`` up, the file's
    plain decode. On the 128 px crops of ``benchmarks.versus`` (4:2:0) the mean gained +0.66 /
    +0.77 / +0.81 / +0.72 / +0.64 dB over the JPEG at qualities 10 / 20 / 30 / 50 / 75 where the
    fit alone gained +0.56 / +0.58 / +0.59 / +0.27 / -0.22 and fell below the JPEG on 12 of 40
    crops; the mean fell below it on none (4:4:4: none of 40 either).
    """

    WEIGHTINGS = ("uniform", "quantization")
    DEQUANTIZATIONS = ("center", "laplacian")

    def __init__(
        self,
        jpeg,
        *,
        project: bool = True,
        blend: bool = True,
        weighting: str = "uniform",
        dequantize: str = "center",
        offsets: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if weighting not in self.WEIGHTINGS:
            raise ValueError(f"weighting must be one of {self.WEIGHTINGS}, got {weighting!r}")
        if dequantize not in self.DEQUANTIZATIONS:
            raise ValueError(f"dequantize must be one of {self.DEQUANTIZATIONS}, got {dequantize!r}")
        self.dequantize = dequantize
        self.jpeg = jpeg
        self.factors = jpeg.factors
        self.orientation = jpeg.orientation
        self.project = project
        self.blend = blend
        self.weighting = weighting
        self.block_shapes = [tuple(k.shape[:2]) for k in jpeg.coefficients]
        # The file's integer coefficients, shared with ``jpeg`` (no copy), and 64-entry tables per
        # component broadcast over the blocks: full-size float copies (target, steps, weights)
        # would cost a 24 MP photo's parent, which only cuts tiles, 0.4 GB for nothing.
        for c, k in enumerate(jpeg.coefficients):
            self.register_buffer(f"coefficients{c}", torch.from_numpy(k))
        tables = torch.stack(
            [torch.from_numpy(np.asarray(q, dtype=np.float32)).reshape(64) for q in jpeg.tables]
        )
        self.register_buffer("tables", tables)  # q per component, 0-255 scale
        # "quantization": each coefficient weighted by 1/q^2, the inverse of its rounding error's
        # variance (q^2/12), so finely stored coefficients count more than coarse ones; scaled so
        # that the weights' mean over every coefficient of the file is one.
        counts = torch.tensor([rows * cols for rows, cols in self.block_shapes], dtype=torch.float64)
        weights = (tables.double() / 255.0) ** -2
        mean = (counts[:, None] * weights).sum() / (counts.sum() * 64)
        self.register_buffer("weight_tables", (weights / mean).float())
        # "laplacian": a nonzero coefficient's target moves from its bin's centre toward zero, to
        # the bin's mean under a Laplacian fitted to that frequency (a tile takes its file's).
        if offsets is None and dequantize == "laplacian":
            offsets = laplacian_offsets(jpeg.coefficients, jpeg.tables)
        elif offsets is None:
            offsets = torch.zeros(len(jpeg.tables), 64)
        self.register_buffer("offset_tables", offsets)  # (components, 64), 0-255 scale
        # vec(D B D^T) = (D kron D) vec(B): the 2-D DCT of a flattened 8x8 block is one 64x64 matmul.
        self.register_buffer("dct", torch.kron(_dct_matrix(), _dct_matrix()))
        self.register_buffer("rgb_to_ycbcr", torch.tensor(_RGB_TO_YCBCR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_stored(x, self.orientation) * 255.0
        planes = torch.einsum("ck,bkhw->bchw", self.rgb_to_ycbcr, x) if x.shape[1] == 3 else x
        coefficients = []
        for c, ((v, h), (rows, cols)) in enumerate(zip(self.factors, self.block_shapes, strict=True)):
            plane = planes[:, c : c + 1]
            plane = _pad_replicate(plane, rows * 8 * v, cols * 8 * h)
            if (v, h) != (1, 1):
                plane = torch.nn.functional.avg_pool2d(plane, (v, h))
            shift = 128.0 if c == 0 else 0.0  # Y is level-shifted; Cb, Cr come centred on 0 here
            blocks = (plane[:, 0] - shift).unflatten(1, (rows, 8)).unflatten(3, (cols, 8))
            blocks = blocks.transpose(2, 3).reshape(blocks.shape[0], rows * cols, 64)
            coefficients.append((blocks @ self.dct.T).flatten(1))  # every block's 2-D DCT in one matmul
        return torch.cat(coefficients, dim=1) / 255.0

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The observation is the file's coefficients (a buffer); ``y``, its decode, is not used."""
        error = (self(x) - self.target) ** 2
        if self.weighting == "uniform":
            return torch.mean(error)
        weighted = sum(
            (part * weights).sum()
            for part, weights in zip(self._blocks(error), self.weight_tables, strict=True)
        )
        return weighted / error.numel()

    @property
    def target(self) -> torch.Tensor:
        """The file's dequantized coefficients (0-1 scale), flat, component after component: k*q,
        or with ``dequantize="laplacian"`` k*q - sign(k)*offset.

        Built on first use where the module lives and kept (a tile's fit uses it every step; a
        parent that only cuts tiles never builds it)."""
        cached = self.__dict__.get("_target")
        if cached is None or cached.device != self.tables.device:
            cached = self.__dict__["_target"] = self._dequantized(self.offset_tables)
        return cached

    @property
    def centers(self) -> torch.Tensor:
        """The centres k*q of the quantization bins (0-1 scale), in ``target``'s order."""
        if self.dequantize == "center":  # the targets are the centres: reuse the cached plane
            return self.target
        return self._dequantized(torch.zeros_like(self.offset_tables))

    def _dequantized(self, offsets: torch.Tensor) -> torch.Tensor:
        parts = []
        for c, (q, offset) in enumerate(zip(self.tables, offsets, strict=True)):
            k = getattr(self, f"coefficients{c}").float()
            parts.append((k * q.view(8, 8) - torch.sign(k) * offset.view(8, 8)).reshape(-1))
        return torch.cat(parts) / 255.0

    @property
    def step_tables(self) -> torch.Tensor:
        """(components, 64): each component's quantization steps on the 0-1 scale."""
        return self.tables / 255.0

    @property
    def step(self) -> torch.Tensor:
        """Every coefficient's quantization step (0-1 scale), in the order of ``target``."""
        steps = [
            steps.expand(rows * cols, 64).reshape(-1)
            for steps, (rows, cols) in zip(self.step_tables, self.block_shapes, strict=True)
        ]
        return torch.cat(steps)

    def finish(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The output: the fitted image moved into the quantization box (``project``); with
        ``blend`` and the file's decode ``y``, the box's point nearest the mean of the fit and the
        file's in-box TV decode (``smooth``), and of the decode itself from quality
        ``DECODE_QUALITY`` up (below it the decode's blocks cost more than its detail brings)."""
        if not self.project:
            return x
        x = self.into_box(x)
        if self.blend and y is not None:
            estimates = [x, self.smooth(y)] + ([y] if self.jpeg.quality >= self.DECODE_QUALITY else [])
            x = self.into_box(sum(estimates) / len(estimates))
        return x

    #: From this quality up the blend takes the plain decode too. On the 8 crops of
    #: ``benchmarks.versus`` the decode helped at qualities 50 and 75 (4:2:0: +0.72 against
    #: +0.66 dB, +0.64 against +0.40, where without it 3 of 8 crops ended below the JPEG) and
    #: cost 0.06-0.17 dB at 10-30; 4:4:4 alike.
    DECODE_QUALITY = 40

    def into_box(self, x: torch.Tensor) -> torch.Tensor:
        """Every coefficient into [(k - 1/2) q, (k + 1/2) q], by the smallest correction in YCbCr."""
        coefficients = self(x)
        parts = zip(
            self._blocks(coefficients), self._blocks(self.centers[None]), self.step_tables, strict=True
        )
        box = torch.cat(
            [
                torch.minimum(torch.maximum(part, target - steps / 2), target + steps / 2).flatten(1)
                for part, target, steps in parts
            ],
            dim=1,
        )
        correction = self._to_pixels(box - coefficients, x.shape[-2:])
        return (x + correction).clamp(0, 1)

    #: ``smooth``'s projected descent on total variation, chosen on the eight 128 px crops of
    #: ``benchmarks.jpeg_quality`` at qualities 10, 30 and 50 (4:2:0), before the crops of
    #: ``benchmarks.versus`` were scored: 100 steps of 0.001 / sqrt(step + 1) gained +0.58 /
    #: +0.55 / +0.50 dB over the JPEG there (jpeg2png +0.59 / +0.37 / +0.29), never less than
    #: +0.07 on a crop; larger steps gained more at quality 10 and lost more on single crops.
    SMOOTH_STEPS, SMOOTH_STEP, SMOOTH_EPS = 100, 0.001, 0.01

    def smooth(self, start: torch.Tensor) -> torch.Tensor:
        """A classical decode of the file (no network): from ``start`` (its decoded pixels), lower
        the image's total variation by projected gradient steps that keep every coefficient in
        the file's quantization box. Removes blocks and ringing, keeps what the file says."""
        x = self.into_box(start.detach())
        with torch.enable_grad():
            for step in range(self.SMOOTH_STEPS):
                x.requires_grad_(True)
                dx, dy = x[..., :-1, 1:] - x[..., :-1, :-1], x[..., 1:, :-1] - x[..., :-1, :-1]
                variation = torch.sqrt(dx**2 + dy**2 + self.SMOOTH_EPS**2).sum()
                (gradient,) = torch.autograd.grad(variation, x)
                with torch.no_grad():
                    x = self.into_box(x - self.SMOOTH_STEP / (step + 1) ** 0.5 * gradient)
        return x.detach()

    def finish_description(self) -> str:
        if not self.project:
            return "as fitted"
        if self.blend:
            decode = " and its decode" if self.jpeg.quality >= self.DECODE_QUALITY else ""
            return f"the mean of the fit, the file's in-box TV decode{decode}, in the quantization box"
        return "the fit, moved into the quantization box"

    def _blocks(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """A (batch, coefficients) tensor in ``target``'s order as one (batch, blocks, 64) view
        per component, to broadcast that component's 64-entry tables over."""
        parts, start = [], 0
        for rows, cols in self.block_shapes:
            count = rows * cols * 64
            parts.append(flat[:, start : start + count].unflatten(1, (rows * cols, 64)))
            start += count
        return parts

    def _to_pixels(self, coefficients: torch.Tensor, size) -> torch.Tensor:
        """The adjoint-like way back: inverse DCT per block, chroma repeated over its block (the
        pseudo-inverse of the box average), YCbCr -> RGB, to display orientation."""
        height, width = (size[1], size[0]) if self.orientation >= 5 else (size[0], size[1])
        planes, start = [], 0
        for (v, h), (rows, cols) in zip(self.factors, self.block_shapes, strict=True):
            count = rows * cols * 64
            blocks = coefficients[:, start : start + count].unflatten(1, (rows * cols, 64)) @ self.dct
            start += count
            pixels = (
                blocks.unflatten(1, (rows, cols))
                .unflatten(3, (8, 8))
                .transpose(2, 3)
                .flatten(3)
                .flatten(1, 2)
            )
            pixels = pixels.repeat_interleave(v, dim=1).repeat_interleave(h, dim=2)
            planes.append(pixels[:, :height, :width])
        stacked = torch.stack(planes, dim=1)
        if len(planes) == 3:
            stacked = torch.einsum("ck,bkhw->bchw", torch.linalg.inv(self.rgb_to_ycbcr), stacked)
        return to_display(stacked, self.orientation)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    def tile_multiple(self) -> int:
        """One MCU (16 px for 4:2:0, 8 for 4:4:4): a tile then holds whole blocks of every component."""
        return 8 * max(max(v, h) for v, h in self.factors)

    def crop(self, y: np.ndarray, top: int, left: int, height: int, width: int):
        """The file's blocks under one box (stored orientation, on the MCU grid). A box reaching
        the image's bottom or right edge keeps the padding blocks there, as the whole file does."""
        if self.orientation != 1:
            raise ValueError("tile a JPEG in its stored orientation (orientation 1), then rotate")
        mcu = self.tile_multiple()
        if top % mcu or left % mcu or (height % mcu and top + height != self.jpeg.height):
            raise ValueError(f"a JPEG tile must lie on the file's {mcu}-pixel MCU grid")
        if width % mcu and left + width != self.jpeg.width:
            raise ValueError(f"a JPEG tile must lie on the file's {mcu}-pixel MCU grid")
        blocks = []
        for k, (v, h) in zip(self.jpeg.coefficients, self.factors, strict=True):
            bottom = k.shape[0] if top + height >= self.jpeg.height else (top + height) // (8 * v)
            right = k.shape[1] if left + width >= self.jpeg.width else (left + width) // (8 * h)
            blocks.append(k[top // (8 * v) : bottom, left // (8 * h) : right])
        jpeg = replace(self.jpeg, height=height, width=width, coefficients=tuple(blocks))
        return y[top : top + height, left : left + width], self._with(jpeg)

    @property
    def display_size(self) -> tuple[int, int]:
        """(height, width) of the image as shown (the file's EXIF orientation applied)."""
        return self.jpeg.display_size

    def stored_size(self, height: int, width: int) -> tuple[int, int]:
        return (width, height) if self.orientation >= 5 else (height, width)

    def stored_frame(self) -> Frame:
        """The model of the file as stored (orientation 1), which tiles are cut from on its block
        grid; the arrays are turned there by undoing the EXIF orientation and back by applying it."""
        if self.orientation == 1:
            return super().stored_frame()
        orientation = self.orientation

        def turn(pixels: np.ndarray, to) -> np.ndarray:
            tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]
            return np.ascontiguousarray(to(tensor, orientation)[0].permute(1, 2, 0).numpy())

        stored = self._with(replace(self.jpeg, orientation=1))
        return Frame(stored, lambda p: turn(p, to_stored), lambda p: turn(p, to_display))

    def _with(self, jpeg) -> JpegModel:
        """The same model (projection, weighting, dequantization and its offsets) of other blocks."""
        return JpegModel(
            jpeg,
            project=self.project,
            blend=self.blend,
            weighting=self.weighting,
            dequantize=self.dequantize,
            offsets=self.offset_tables,
        )

    def describe(self) -> dict:
        loss = f"coefficient MSE ({self.weighting} weights"
        loss += ", Laplacian dequantization)" if self.dequantize == "laplacian" else ")"
        loss += ", then projected into the quantization box" if self.project else ""
        return {"kind": "jpeg-file", "loss": loss, **self.jpeg.describe()}

    def extra_repr(self) -> str:
        return (
            f"subsampling={self.jpeg.subsampling}, orientation={self.orientation}, weighting={self.weighting}"
        )


def laplacian_offsets(coefficients, tables) -> torch.Tensor:
    """Per component and frequency, how far toward zero the mean of a nonzero bin lies from its
    centre if that frequency's coefficients are Laplacian (AC coefficients of photos are close
    to it), with the rate read from the share of zeros: P(|x| < q/2) = 1 - exp(-rate q / 2).
    In a bin [a, a + q] the Laplacian's mean is a + 1/rate - q / (exp(rate q) - 1). The DC
    coefficient is not centred on zero and keeps its centre. (0-255 scale, (components, 64).)"""
    rows = []
    for k, q in zip(coefficients, tables, strict=True):
        k = np.asarray(k).reshape(-1, 64)
        q = np.asarray(q, dtype=np.float64).reshape(64)
        zeros = np.clip((k == 0).mean(axis=0), 1e-3, 1 - 1e-3)
        rate = -2 * np.log1p(-zeros) / q
        x = np.minimum(rate * q, 50.0)
        offset = np.clip(q / 2 - 1 / rate + q / np.expm1(x), 0, q / 2)
        offset[0] = 0.0
        rows.append(offset)
    return torch.tensor(np.stack(rows), dtype=torch.float32)


# JFIF: Y = .299 R + .587 G + .114 B; Cb, Cr centred on 128 (the level shift removes the offset).
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)


def _dct_matrix() -> torch.Tensor:
    """The orthonormal 8-point DCT-II (JPEG's FDCT): D[k, n] = c(k) cos((2n + 1) k pi / 16)."""
    k = torch.arange(8, dtype=torch.float64)[:, None]
    n = torch.arange(8, dtype=torch.float64)[None]
    matrix = torch.cos((2 * n + 1) * k * torch.pi / 16) * (2 / 8) ** 0.5
    matrix[0] /= 2**0.5
    return matrix.float()


def _pad_replicate(plane: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Extend to (height, width) by repeating the last row and column (libjpeg's edge expansion)."""
    extra_h, extra_w = height - plane.shape[-2], width - plane.shape[-1]
    if extra_h < 0 or extra_w < 0:
        plane = plane[..., :height, :width]
        extra_h, extra_w = max(extra_h, 0), max(extra_w, 0)
    if extra_h or extra_w:
        plane = torch.cat([plane, plane[..., -1:, :].expand(*plane.shape[:-2], extra_h, plane.shape[-1])], -2)
        plane = torch.cat([plane, plane[..., -1:].expand(*plane.shape[:-1], extra_w)], -1)
    return plane


def to_stored(x: torch.Tensor, orientation: int) -> torch.Tensor:
    """Undo EXIF ``orientation``: the displayed image back to the file's stored orientation.

    Flips first, then the transpose for the rotated orientations 5-8 (checked against
    Pillow's ``exif_transpose`` for all eight in the tests).
    """
    flip_columns = orientation in (2, 3, 6, 7)
    flip_rows = orientation in (3, 4, 7, 8)
    if flip_columns:
        x = x.flip(-1)
    if flip_rows:
        x = x.flip(-2)
    return x.transpose(-2, -1) if orientation >= 5 else x


def to_display(x: torch.Tensor, orientation: int) -> torch.Tensor:
    """The inverse of ``to_stored``: apply EXIF ``orientation`` as a viewer does."""
    if orientation >= 5:
        x = x.transpose(-2, -1)
    if orientation in (3, 4, 7, 8):
        x = x.flip(-2)
    if orientation in (2, 3, 6, 7):
        x = x.flip(-1)
    return x


def downscale_taps(factor: int, kernel: str = "lanczos2") -> torch.Tensor:
    """1-D taps for downsampling by ``factor`` with one of ``SR_KERNELS``, normalised to sum 1.

    As Pillow's antialiased resize computes them: the kernel stretched by ``factor`` and
    sampled at the input pixels' centres, phase 0.5 (output pixel j centred on input pixels
    [j*s, (j+1)*s)). ``bicubic`` is Keys' cubic with a = -0.5 (support 2), ``lanczos3``
    Lanczos with support 3, ``area`` the mean of the s pixels under the output pixel.
    """
    if kernel not in SR_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(SR_KERNELS)}, got {kernel!r}")
    if kernel == "area":
        return torch.full((factor,), 1.0 / factor)
    if kernel.startswith("lanczos"):
        return lanczos_taps(factor, int(kernel[-1]))
    length = 4 * factor  # bicubic: support 2
    offsets = ((torch.arange(length, dtype=torch.float64) - (length - 1) / 2) / factor).abs()
    a = -0.5
    near = ((a + 2) * offsets - (a + 3)) * offsets**2 + 1
    far = ((a * offsets - 5 * a) * offsets + 8 * a) * offsets - 4 * a
    taps = torch.where(offsets <= 1, near, torch.where(offsets < 2, far, 0.0))
    return (taps / taps.sum()).float()


def lanczos_taps(factor: int, support: int = 2) -> torch.Tensor:
    """1-D Lanczos-``support`` taps for downsampling by ``factor``, normalised to sum 1."""
    length = 2 * support * factor
    offsets = (torch.arange(length, dtype=torch.float64) - (length - 1) / 2) / factor
    taps = torch.sinc(offsets) * torch.sinc(offsets / support)
    taps[offsets.abs() >= support] = 0
    return (taps / taps.sum()).float()


# --- simulated degradations ------------------------------------------------------------------


def simulate_noise(pixels: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian noise of std ``sigma`` (on the 0-255 scale) and clip to [0, 1]."""
    rng = np.random.default_rng(seed)
    noisy = pixels + rng.normal(0.0, sigma / 255.0, size=pixels.shape)
    return np.clip(noisy, 0, 1).astype(np.float32)


def simulate_jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Compress with JPEG at ``quality`` (1-95) and decode again."""
    from PIL import Image

    decoded = np.asarray(Image.open(_io.BytesIO(encode_jpeg(pixels, quality)))).astype(np.float32) / 255.0
    return decoded[..., None] if decoded.ndim == 2 else decoded


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """A JPEG file of ``pixels`` at ``quality`` (Pillow's libjpeg, its default 4:2:0 chroma)."""
    from PIL import Image

    array = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = _io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def simulate_downscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    """The low-resolution observation the paper used: the same Lanczos-2 downsampler."""
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float()
    y = Downsample(factor, x.shape[1]).A(x)
    return np.clip(y[0].permute(1, 2, 0).numpy(), 0, 1).astype(np.float32)


def simulate_missing_pixels(shape: tuple[int, int], fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask (True = known) with ``fraction`` of the pixels dropped at random."""
    rng = np.random.default_rng(seed)
    return rng.random(shape) >= fraction
