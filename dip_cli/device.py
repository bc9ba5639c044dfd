"""Device choice, CPU threads, and a memory estimate made before a run starts."""

from __future__ import annotations

import os

import torch
from torch import nn

from dip_cli.errors import InputError

DEVICES = ("auto", "cpu", "cuda", "mps")


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
    """Count every module output on a forward on the meta device (no memory, no compute)."""
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


def release_freed_memory() -> None:
    """Return this process's freed heap memory to the OS now (glibc's ``malloc_trim``).

    The CLI keeps freed memory for reuse (``cli._reuse_freed_memory``: a fit reuses each step's
    blocks), so a process's resident size stays at its peak. A parent that has prepared a large
    photo and now only waits for its tile workers has no use for its transient copies: on a
    24 MP JPEG it held 2.6 GB while its workers fitted. Elsewhere than glibc it does nothing.
    """
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL(None).malloc_trim(0)
