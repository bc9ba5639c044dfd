"""N independent DIP fits in one process, as one computation: their nets' weights stacked.

A GPU runs one small fit far below its capacity; N tiles fitted side by side in N processes
each hold their own CUDA context. Stacking N same-shaped nets (``torch.func.stack_module_state``)
and mapping one forward over the stack (``torch.func.vmap``) gives one kernel launch per layer
for all N. Adam is element-wise, so one Adam over the stacked weights is N independent Adams,
and the summed loss gives each net exactly its own gradient: the stacked fit is the N separate
fits, which ``tests/test_stacked_fits.py`` checks on the CPU. Whether it is faster is a GPU
question (measured by ``benchmarks.gpu_check``; on a CPU two processes were faster).

BatchNorm keeps no running statistics here (``replace_all_batch_norm_modules_``): a DIP fit
uses the batch statistics of its one image in training mode, so the outputs are unchanged.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from dip_cli.networks import PointwiseConv, build_for, make_input
from dip_cli.settings import Settings


def make_nets(settings: Settings, count: int, side: int, device, seed: int = 0):
    """``count`` independently seeded nets of the preset, and one input code z for each."""
    nets, codes = [], []
    for index in range(count):
        torch.manual_seed(seed + index)
        net, (height, width) = build_for(settings, 3, side, side)
        torch.func.replace_all_batch_norm_modules_(net)
        for module in net.modules():
            if isinstance(module, PointwiseConv):  # its one-thread CPU path asks for the memory
                module.__class__ = nn.Conv2d  # layout, which vmap cannot answer; same weights
        nets.append(net.to(device).train())
        generator = torch.Generator().manual_seed(seed + index)
        z = make_input(settings.input.kind, settings.input.depth, height, width, generator)
        codes.append(z.to(device))
    return nets, codes


def fit_separately(nets, codes, targets, steps: int, lr: float, optimizer: str = "Adam") -> torch.Tensor:
    """Each net fitted to its target alone (MSE; ``optimizer`` names a ``torch.optim`` class):
    the reference. Returns the outputs."""
    outputs = []
    for net, z, y in zip(nets, codes, targets, strict=True):
        step = getattr(torch.optim, optimizer)(net.parameters(), lr=lr)
        for _ in range(steps):
            loss = nn.functional.mse_loss(_crop(net(z), y), y)
            step.zero_grad(set_to_none=True)
            loss.backward()
            step.step()
        with torch.no_grad():
            outputs.append(_crop(net(z), y))
    return torch.stack(outputs)


def fit_stacked(nets, codes, targets, steps: int, lr: float, optimizer: str = "Adam") -> torch.Tensor:
    """The same fits as one stacked computation. Returns the outputs, stacked."""
    params, buffers = torch.func.stack_module_state(nets)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(nets[0]).to("meta")
    forward = torch.func.vmap(lambda p, b, z: torch.func.functional_call(base, (p, b), (z,)))
    z, y = torch.stack(codes), torch.stack(targets)
    step = getattr(torch.optim, optimizer)(params.values(), lr=lr)
    for _ in range(steps):
        out = _crop(forward(params, buffers, z), y)
        # The sum of the N mean losses: each net's gradient is its own loss's.
        loss = ((out - y) ** 2).flatten(1).mean(1).sum()
        step.zero_grad(set_to_none=True)
        loss.backward()
        step.step()
    with torch.no_grad():
        return _crop(forward(params, buffers, z), y)


def ms_per_step(fit, nets, codes, targets, steps: int, lr: float) -> float:
    """Milliseconds per step per net, after one warm-up step (allocations, kernel choice)."""
    fit(nets, codes, targets, 1, lr)
    _sync(codes[0].device)
    start = time.perf_counter()
    fit(nets, codes, targets, steps, lr)
    _sync(codes[0].device)
    return (time.perf_counter() - start) * 1000 / steps / len(nets)


def _crop(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return output[..., : target.shape[-2], : target.shape[-1]]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
