"""The DIP fitting loop: fit a network's weights so that A(net(z)) matches the observation y.

Read it top to bottom: one step is jitter z, forward, crop, loss through the operator, Adam
step, then bookkeeping (EMA of outputs, the early-stop statistic, metrics). Every few steps
(``log_every``) the host reads the metrics (one sync), asks the stop rule, and calls the hooks
that save checkpoints and snapshots. This module knows nothing of files or of the CLI: the
caller passes hooks.

Ctrl-C and SIGTERM (what docker stop, systemd, SLURM and Ray send) are deferred to the end of
the current step, so the state handed to ``on_checkpoint`` is always consistent and a resumed
run continues bit-for-bit. A checkpoint also records where the run stopped, so resuming a
finished run returns its result without stepping again.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from dip_cli.errors import FitError, Interrupted, Terminated
from dip_cli.metrics import METRIC_COLUMNS
from dip_cli.operators import Operator
from dip_cli.settings import Settings
from dip_cli.stopping import WindowedVariance


@dataclass(frozen=True)
class Cadence:
    """How often the loop reports (one host sync each), checkpoints and snapshots (0 = never)."""

    log_every: int = 25
    checkpoint_every: int = 0  # 0 = only on interrupt
    snapshot_every: int = 0


@dataclass
class Problem:
    """What to fit: observation y = A(x) (+ noise), and the image size to crop the output to."""

    y: torch.Tensor
    operator: Operator
    height: int
    width: int
    reference: torch.Tensor | None = None
    noise_variance: float | None = None  # of y, estimated; with ``stop.noise_floor`` gates the stop


@dataclass
class Status:
    """What the hooks see at each log point."""

    iteration: int  # steps completed
    iters: int
    loss: float
    psnr_input: float
    wmv: float
    psnr_reference: float | None
    selected_iteration: int | None


@dataclass
class Hooks:
    on_log: Callable[[list[dict], Status], None] | None = None
    on_checkpoint: Callable[[dict], None] | None = None
    on_snapshot: Callable[[int, torch.Tensor], None] | None = None


@dataclass
class FitResult:
    image: torch.Tensor  # (1, C, H, W) on CPU, the output to save
    iterations: int  # steps run in total
    selected_iteration: int  # the step whose output was kept (1-based count of steps)
    stop_reason: str  # "early-stop" | "budget"
    final_status: Status | None = None
    history: list[dict] = field(default_factory=list)


def fit(
    net: nn.Module,
    z: torch.Tensor,
    problem: Problem,
    settings: Settings,
    *,
    generator: torch.Generator,
    hooks: Hooks | None = None,
    resume: dict | None = None,
    cadence: Cadence = Cadence(),
) -> FitResult:
    """Fit ``net`` so that A(net(z)) matches ``problem.y``; return the selected output.

    Uses ``settings.fit`` (budget, lr, jitter, EMA) and ``settings.stop`` (the stop rule).
    """
    hooks = hooks or Hooks()
    recipe, rule = settings.fit, settings.stop  # the fit's budget, lr, jitter, EMA; the stop rule
    # foreach: one fused call per step instead of a Python loop over ~100 tensors (5 ms on CPU).
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr, foreach=True)
    stopper = WindowedVariance(rule.window, rule.patience if rule.rule == "auto" else None, rule.warmup)
    smoothed: torch.Tensor | None = None  # the EMA of the outputs, or the last output if EMA is off
    stop_reason = "budget"
    start = 0
    if resume is not None:
        net.load_state_dict(resume["net"])
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["noise_rng"])
        stopper.load_state_dict(resume["stopper"])
        smoothed, stop_reason, start = resume["smoothed"], resume["stop_reason"], resume["iteration"]

    def state(completed: int) -> dict:
        return {
            "iteration": completed,
            "net": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "noise_rng": generator.get_state(),
            "stopper": stopper.state_dict(),
            "smoothed": smoothed,
            "stop_reason": stop_reason,
        }

    net.train()  # BatchNorm uses the statistics of the one image, as in the paper
    # bf16: the forward pass under autocast; fp32 enters no context at all in the hot loop.
    bf16 = recipe.precision == "bf16"
    autocast = torch.autocast(z.device.type, torch.bfloat16) if bf16 else nullcontext()
    no_reference = torch.tensor(math.nan, device=z.device)  # made once, not every step
    floor = None  # the residual an output must be down to before it can be kept
    if rule.noise_floor > 0 and problem.noise_variance is not None:
        floor = rule.noise_floor * problem.noise_variance
    pending: list[torch.Tensor] = []
    history: list[dict] = []
    status: Status | None = None
    completed = start
    last_step = start if stop_reason != "budget" else recipe.iters  # a finished run takes no step
    with _deferred_interrupt() as interrupted:
        for step in range(start, last_step):
            # --- one DIP step -----------------------------------------------------------
            z_in = z
            if recipe.reg_noise_std > 0:
                jitter = torch.randn(z.shape, generator=generator, device=z.device)
                z_in = z + recipe.reg_noise_std * jitter
            with autocast:
                output = net(z_in)
            output = output[..., : problem.height, : problem.width].float()
            loss = problem.operator.loss(output, problem.y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            # --- bookkeeping, all on the device -------------------------------------------
            with torch.no_grad():
                output = output.detach()
                if recipe.ema > 0:
                    smoothed = output.clone() if smoothed is None else smoothed.lerp_(output, 1 - recipe.ema)
                else:
                    smoothed = output
                residual = problem.operator.loss(smoothed, problem.y)  # of the kept output
                eligible = None if floor is None else residual <= floor
                wmv = stopper.update(step, output, smoothed, eligible)
                pending.append(_step_metrics(loss, residual, smoothed, wmv, problem, no_reference))
            completed = step + 1

            # --- every log_every steps (and before any checkpoint): one host sync, hooks ----------
            last = completed == recipe.iters
            checkpoint_due = bool(cadence.checkpoint_every) and completed % cadence.checkpoint_every == 0
            if completed % cadence.log_every == 0 or last or checkpoint_due or interrupted.signum:
                rows = _flush(pending, first_iteration=completed - len(pending) + 1)
                history.extend(rows)
                status = _status(rows[-1], recipe.iters, stopper)
                if not math.isfinite(status.loss):
                    raise FitError(
                        f"the fit diverged at iteration {completed} (loss {status.loss}); "
                        "try a lower learning rate or another seed"
                    )
                if hooks.on_log:
                    hooks.on_log(rows, status)
            # The rule is asked on a fixed cadence, so where a run stops never depends on
            # --save-every or on where it was interrupted.
            if completed % cadence.log_every == 0 and stopper.should_stop(completed):
                stop_reason = "early-stop"
            # Metrics are flushed above, so a checkpoint never leaves rows only in memory.
            if interrupted.signum:
                if hooks.on_checkpoint:
                    hooks.on_checkpoint(state(completed))
                name = signal.Signals(interrupted.signum).name
                raise Interrupted(f"{name} at iteration {completed}; checkpoint saved", interrupted.signum)
            if hooks.on_snapshot and cadence.snapshot_every and completed % cadence.snapshot_every == 0:
                hooks.on_snapshot(completed, smoothed.cpu())
            finished = last or stop_reason != "budget"
            if hooks.on_checkpoint and (checkpoint_due or (finished and cadence.checkpoint_every)):
                hooks.on_checkpoint(state(completed))
            if stop_reason != "budget":
                break

    selected = stopper.selected_iteration if rule.rule == "auto" else None
    if selected is not None:
        image, selected_step = stopper.best_image, selected + 1
    else:
        image, selected_step = smoothed, completed
    if image is None:
        raise FitError("nothing was fitted: the iteration budget must be >= 1")
    return FitResult(image.detach().cpu(), completed, selected_step, stop_reason, status, history)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for images in [0, 1], as a device tensor."""
    return -10 * torch.log10(torch.mean((a - b) ** 2).clamp_min(1e-12))


def _step_metrics(
    loss: torch.Tensor,
    residual: torch.Tensor,
    smoothed: torch.Tensor,
    wmv: torch.Tensor,
    problem: Problem,
    no_reference: torch.Tensor,
) -> torch.Tensor:
    """One step's figures as a device tensor: loss, PSNR vs input, ES-WMV, PSNR vs reference."""
    psnr_input = -10 * torch.log10(residual.clamp_min(1e-12))
    psnr_reference = no_reference if problem.reference is None else psnr(smoothed, problem.reference)
    return torch.stack([loss.detach(), psnr_input, wmv, psnr_reference])


def _flush(pending: list[torch.Tensor], first_iteration: int) -> list[dict]:
    """Bring the pending steps to the host (the one sync per log period); number them there."""
    values = torch.stack(pending).tolist()
    pending.clear()
    return [
        {"iteration": first_iteration + i, **dict(zip(METRIC_COLUMNS[1:], row, strict=True))}
        for i, row in enumerate(values)
    ]


def _status(row: dict, iters: int, stopper: WindowedVariance) -> Status:
    reference = row["psnr_reference"]
    return Status(
        iteration=row["iteration"],
        iters=iters,
        loss=row["loss"],
        psnr_input=row["psnr_input"],
        wmv=row["wmv"],
        psnr_reference=None if math.isnan(reference) else reference,
        selected_iteration=None if stopper.selected_iteration is None else stopper.selected_iteration + 1,
    )


class _Flag:
    """The first interrupting signal received, 0 while none was."""

    def __init__(self) -> None:
        self.signum = 0


_running: _Flag | None = None  # the flag of the fit running in this process, if one is
_stop_before_next_fit = 0  # a stop asked while no fit was running


def request_stop(signum: int) -> None:
    """Ask this process's fit to checkpoint and stop at its next step, as a Ctrl-C would (a
    second request does not abort, unlike a second Ctrl-C). Asked while no fit runs, the next
    fit stops after its first step. For worker processes: a parent's signal that lands between
    two jobs or while a job builds its network (``workers``), a Ray batch's stop (``batch.ray_tasks``)."""
    global _stop_before_next_fit
    if _running is not None:
        _running.signum = _running.signum or signum
    else:
        _stop_before_next_fit = _stop_before_next_fit or signum


@contextmanager
def _deferred_interrupt() -> Iterator[_Flag]:
    """Turn the first Ctrl-C or SIGTERM into a flag checked between steps; a second one aborts."""
    global _running, _stop_before_next_fit
    flag = _Flag()
    flag.signum, _stop_before_next_fit = _stop_before_next_fit, 0
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signum:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        flag.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _running = flag
    try:
        yield flag
    finally:
        _running = None
        for sig, old in previous.items():
            signal.signal(sig, old)
