"""The machine's resources and every policy that spends them, with the measurements behind each:
which device, how many threads, how much memory a fit needs, how large ``--tile auto``'s tiles
are, how many fits run side by side, how many images a batch restores at once.

Everything here is a measured constant or a rule over measured constants; nothing else in dip
sizes tiles, threads or workers.
"""

from __future__ import annotations

import bisect
import os

import torch
from torch import nn

from dip_cli.errors import InputError
from dip_cli.options import DEVICES
from dip_cli.settings import AUTO_TILE, MIN_TILE, Settings


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available here; use --device auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: Apple MPS is not available here; use --device auto or cpu")
    return torch.device(name)


def configure(device: torch.device, threads: int | None) -> None:
    """Threads for the CPU; TF32 and cuDNN autotuning on CUDA."""
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def memory_format(device: torch.device) -> torch.memory_format:
    """How the network's weights and activations are laid out on ``device``.

    On the CPU, channels-last (NHWC) lets oneDNN's convolutions skip the reorders NCHW needs.
    Measured here (2 cores, AVX-512; one fit step, forward + backward + Adam): 1.16-1.28x
    faster at 128 px, 1.33-1.45x at 512 px and 1.47-1.64x at 1280x800 for the jpeg, denoise
    and inpaint nets. On a GPU it is unmeasured, so the default layout stays.
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def default_threads(pixels: int) -> int:
    """One thread for tiny images, else all cores up to 8.

    Measured on 2 cores: at 48x48 one thread was 1.2x faster than two (thread handoffs cost
    more than the small convolutions); at 128x128 two threads were 1.14x faster.
    """
    if pixels < 64 * 64:
        return 1
    return max(1, min(8, cpu_cores()))


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def estimate_bytes(net: nn.Module, input_depth: int, height: int, width: int) -> int:
    """Peak memory of one fit step: activations kept for backward, parameters with Adam state."""
    activations = _activation_values(net, input_depth, height, width) * 4
    params = sum(p.numel() for p in net.parameters()) * 4 * 4  # weight, grad, Adam m and v
    # Every module output counted once matched the measured peak RSS of a step at 512 px
    # (~0.65 GB for skip-32); 1.5x leaves room for allocator slack and the metrics buffers.
    return int(activations * 1.5 + params + 200 * height * width * 4)


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def check_fits(needed: int, device: torch.device, what: str) -> None:
    available = available_bytes(device)
    if needed > 0.9 * available:
        raise InputError(
            f"{what} needs about {needed / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB is "
            f"free on {device.type}. Downscale the image, choose a lighter preset "
            "(dip presets lists them), or use a device with more memory"
        )


def _activation_values(net: nn.Module, input_depth: int, height: int, width: int) -> int:
    """Count every module output on a forward on the meta device (no memory, no compute).

    The count depends only on the architecture and the input's size, so it is kept per
    (architecture, size): a meta forward of the default nets takes 0.1-0.2 s, and every fit,
    every tile-side candidate and every worker's parts asked it again."""
    key = (repr(net), input_depth, height, width)
    if key not in _ACTIVATIONS:
        if len(_ACTIVATIONS) >= 256:  # a batch of many sizes: bounded
            _ACTIVATIONS.clear()
        _ACTIVATIONS[key] = _count_activations(net, input_depth, height, width)
    return _ACTIVATIONS[key]


_ACTIVATIONS: dict[tuple, int] = {}  # (repr of the network, input depth, height, width): count


def _count_activations(net: nn.Module, input_depth: int, height: int, width: int) -> int:
    total = 0

    def count(_module, _inputs, output) -> None:
        nonlocal total
        total += output.numel()

    meta_net = _meta_copy(net)
    handles = [m.register_forward_hook(count) for m in meta_net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            meta_net(torch.empty(1, input_depth, height, width, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total


def _meta_copy(net: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(net).to("meta")


# --- memory a fit needs ----------------------------------------------------------------------------


def fit_bytes(settings: Settings, channels: int, height: int, width: int) -> int:
    """The memory estimate (``estimate_bytes``) of fitting the preset's network to an output of
    ``height`` x ``width``."""
    from dip_cli.networks import build_for

    net, (padded_h, padded_w) = build_for(settings, channels, height, width)
    return estimate_bytes(net, settings.input.depth, padded_h, padded_w)


# --- tiles: how large, and how many fitted side by side -------------------------------------------

#: ``tile="auto"`` fits an image of up to ``AUTO_WHOLE`` px a side whole: the presets' budgets
#: are set at the paper's sizes (512 px). A larger image fitted whole is still far from done at
#: the end of them: a 1024 x 1024 JPEG (quality 10, 26.97 dB) fitted whole with the jpeg preset
#: was at 23.0 dB after 1000 of its 2400 iterations, rising 0.9 dB per 200, while 128-512 px
#: problems pass their JPEG within a few hundred. The same budget on smaller tiles gets further
#: (tiles were 0.04-1.3 dB better than whole 256 and 512 px images, JPEG at 512 px 0.13 worse).
AUTO_WHOLE = 512
#: A larger image is cut into tiles of at most ``AUTO_TILE`` px a side (``settings.AUTO_TILE``,
#: or less where the preset's ``[tile] max_side`` says: the denoisers'). Tiles are shrunk to the
#: smallest side that covers the image with their overlap, so the largest side allowed gives the
#: fewest pixels fitted twice: with 512 a 1024 px photo took 3 x 3 tiles of 384 px (1.33 MP of
#: tiles, five rounds of two workers), with 576 it takes 2 x 2 of 544 px (1.18 MP, two rounds).
#: ... and, on a CPU, at most the side whose fit the memory estimate (``estimate_bytes``)
#: keeps within ``AUTO_TILE_BYTES``: a network heavier than the JPEG preset's gets smaller tiles.
#: A GPU fits its tiles one at a time, so there the bound is the device's free memory.
AUTO_TILE_BYTES = 640 * 2**20
#: A CPU run's memory is its fits (side by side, each in a worker: ``WORKER_BYTES`` plus the
#: fit) and its parent's image planes (the observation, the blended result and the operator's
#: buffers: 0.58 GB for a 24 MP RGB photo, negligible at 1 MP). The planes are paid from the
#: fits' budget (``fit_budget``), so a run stays near ``fits x (WORKER_BYTES +
#: AUTO_TILE_BYTES)`` plus one interpreter whatever the image: a 1 MP photo keeps 544 px jpeg
#: tiles, a 24 MP one gets smaller tiles. Measured on 24 MP denoising with two workers: 384 px
#: tiles (the per-fit bound alone) peaked at 3.25 GB, the parent holding 1.09 of it; with the
#: planes paid, 320 px tiles, 2.93 GB (a 24 MP JPEG: 448 px tiles, 2.74 GB).
#: The first ``FREE_PLANE_BYTES`` of planes (a 5 MP photo's) are not charged, so a 1 MP photo's
#: tiles do not shrink for its 25 MB (its run is far below the bound). Below ``MIN_FIT_BYTES``
#: (beyond ~45 MP of RGB with two workers) the tiles stop shrinking.
FREE_PLANE_BYTES = 128 * 2**20
MIN_FIT_BYTES = AUTO_TILE_BYTES // 4
#: The overlap between neighbouring tiles: a quarter of a small tile, at most 64 px (the blend
#: window's ramp).
TILE_OVERLAP = 64
#: A worker process's memory besides its fit: Python, torch and its libraries, not shared with
#: the parent (measured: a worker that has imported torch holds 280 MB of private memory, a
#: proportional set size of 325 MB).
WORKER_BYTES = 400 * 2**20
#: Starting a worker (a Python with torch) takes 2-3 s here; fits run side by side only when
#: their work, pixels x iterations summed, is at least this: ~20 s of steps on one core.
MIN_PARALLEL_WORK = 20_000_000


def tile_overlap(tile: int) -> int:
    return max(8, min(TILE_OVERLAP, tile // 4))


def auto_tile_side(
    settings: Settings, channels: int, multiple: int = 1, device: str = "cpu", budget: int = AUTO_TILE_BYTES
) -> int:
    """The largest tile side up to the preset's ``[tile] max_side`` (``AUTO_TILE`` unless it
    asks for less; on a grid of ``multiple``, 16 px at least) whose fit the memory estimate keeps
    within the budget: ``budget`` on a CPU, 80% of the free memory on a GPU. The preset's
    network and budget decide the side, not the image."""
    torch_device = resolve_device(device)
    if torch_device.type != "cpu":
        budget = int(0.8 * available_bytes(torch_device))
    step = max(16, multiple)
    sides = range(2 * step, settings.tile.max_side // step * step + 1, step)
    # The estimate grows with the side, so bisect: a handful of estimates instead of one a side.
    within = bisect.bisect_right(sides, False, key=lambda s: fit_bytes(settings, channels, s, s) > budget)
    return sides[within - 1] if within else max(step, MIN_TILE)


def fit_budget(planes: int, fits: int) -> int:
    """A CPU fit's memory budget when ``fits`` run at once beside image planes of ``planes``
    bytes: the run's ``fits x (WORKER_BYTES + AUTO_TILE_BYTES)`` less the planes (beyond
    ``FREE_PLANE_BYTES``) and the workers' interpreters, shared out (one fit runs in the
    parent: no worker), and at most ``AUTO_TILE_BYTES``, at least ``MIN_FIT_BYTES``."""
    fits = max(1, fits)
    workers = fits if fits > 1 else 0
    charged = max(0, planes - FREE_PLANE_BYTES)
    left = fits * (WORKER_BYTES + AUTO_TILE_BYTES) - charged - workers * WORKER_BYTES
    return int(max(MIN_FIT_BYTES, min(AUTO_TILE_BYTES, left / fits)))


def image_planes_bytes(y, operator) -> int:
    """What the parent of a tiled run holds for the image while its tiles are fitted: the
    observation, the blended float32 result and the operator's buffers (a mask, a JPEG's
    coefficients)."""
    height, width = operator.output_size(y.shape[0], y.shape[1])
    operator_bytes = sum(b.numel() * b.element_size() for b in operator.buffers())
    return y.size * 4 + height * width * y.shape[2] * 4 + operator_bytes


def fits_at_once(device: str, threads: int | None) -> int:
    """How many fits a CPU run will put side by side (``parallel_fits``: one per thread of its
    budget); 1 on a GPU."""
    if resolve_device(device).type != "cpu":
        return 1
    return threads or default_threads(AUTO_TILE * AUTO_TILE)


def parallel_fits(
    device: str, count: int, work: int, threads: int, settings: Settings, channels: int, largest: tuple
) -> int:
    """How many of ``count`` fits (``work``: pixels x iterations, summed) to run at once: on a CPU
    one per thread of the image's budget (``threads``), no more than there are fits, and no more
    than memory holds (each worker's fit of the ``largest`` (height, width) plus its interpreter,
    ``WORKER_BYTES``). One where the work is too small to pay for starting workers
    (``MIN_PARALLEL_WORK``), and on a GPU: several processes sharing a device are not measured."""
    torch_device = resolve_device(device)
    if torch_device.type != "cpu" or count < 2 or work < MIN_PARALLEL_WORK:
        return 1
    per_worker = fit_bytes(settings, channels, *largest) + WORKER_BYTES
    by_memory = int(0.8 * available_bytes(torch_device) // per_worker)
    return max(1, min(threads, count, by_memory))


# --- batches ---------------------------------------------------------------------------------------


def default_workers(device: str, images: int) -> int:
    """Images a local batch restores at once. CPU: one worker per core (up to 4), each with its
    share of the threads (``worker_threads``); GPU: one.

    Measured on 2 cores (benchmarks/batch_throughput.py): at 128 px two threads make one image
    only 1.14-1.19x faster, while two one-thread workers restored 1.84x more images per minute.
    On a GPU several processes would share one device; that is not measured, so one.
    """
    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(images, cpu_cores(), 4))


def worker_threads(workers: int) -> int:
    """Each of ``workers`` side-by-side processes gets an equal share of the cores."""
    return max(1, cpu_cores() // workers)
