"""Batches on Ray: each image one Ray task, retried on worker or node loss, resumed from its checkpoint.

Ray is the engine practitioners use to fan per-file GPU jobs out over machines; dip does not grow
a scheduler of its own. The plan (which files, output names, skip-finished) is the local batch's
(``batch.plan``); only the running differs:

- ``--ray local`` starts a Ray instance on this machine for the batch and stops it after;
  ``auto`` joins the running cluster (``RAY_ADDRESS`` or ``ray start --head``); ``ray://host:port``
  a remote one. A process already connected to Ray (from Python) keeps its connection.
- Each image asks for ``cpus_per_image`` CPUs and ``gpus_per_image`` GPUs (fractions allowed:
  0.25 lets four small fits share one GPU); its torch threads follow its CPUs.
- A task whose worker process or node dies is retried (``max_retries``); the retry resumes the
  image from its checkpoint, so a killed worker costs at most ``--save-every`` iterations.
- Every worker must see the inputs and the output folder (shared storage): a probe on every node
  checks this before any image starts, and the batch fails once, clearly, if one cannot.
- Ctrl-C or SIGTERM cancels the queued images and interrupts the running ones, which checkpoint
  at their next step and stop (exit 130/143); a rerun resumes them. ``ray.cancel`` alone can be
  lost for a task that is being handed to its worker (seen once in the tests: after a Ctrl-C
  one image of three ran its whole budget), so the stop is also posted to the batch's progress
  actor, which each task asks a few times a second without waiting (``fit.request_stop``: a
  second request does not abort the checkpoint the way a second Ctrl-C would).

Ray is an optional extra (``pip install 'dip-cli[ray]'``): nothing here is imported by a local batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from dip_cli.batch.outcome import (
    BatchObserver,
    Finished,
    Outcome,
    not_started,
    report_to,
    restore_guarded,
)
from dip_cli.batch.plan import Item, finished_result, resumes
from dip_cli.errors import DipWarning, InputError
from dip_cli.progress import Event, Forward, deliver

#: Marks a run folder as started by one batch (its id), so a retried task knows to resume it
#: even under --overwrite, which otherwise starts each image over.
BATCH_MARKER = ".dip-batch"

#: Progress updates sent per image and second, at most (each is a call to the queue actor).
UPDATES_PER_SECOND = 4.0


@dataclass(frozen=True)
class RayOptions:
    """Where and how a batch runs on Ray (the CLI's --ray, --cpus-per-image, --gpus-per-image)."""

    address: str = "local"  # "local" | "auto" | "ray://host:port"
    cpus_per_image: float = 1.0
    gpus_per_image: float | None = None  # None: 1 where the cluster has GPUs and the device allows
    max_retries: int = 3  # retries after a worker or node died (not after an image's own error)

    def __post_init__(self) -> None:
        if self.cpus_per_image <= 0:
            raise InputError(f"--cpus-per-image must be above 0, got {self.cpus_per_image:g}")
        if self.address not in ("local", "auto") and not self.address.startswith("ray://"):
            raise InputError(
                f"--ray {self.address!r}: give 'local', 'auto' or a Ray Client address ray://host:port"
            )


def check_ray_installed() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError(
            "--ray needs Ray, an optional extra: pip install 'dip-cli[ray]' (or pip install ray)"
        ) from None


@contextlib.contextmanager
def connect(address: str) -> Iterator[None]:
    """Connect to Ray for the batch; a local instance started here is stopped after it."""
    check_ray_installed()
    import ray

    if ray.is_initialized():  # the caller (a Python program, a test) already chose a cluster
        yield
        return
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        with _ray_logs_at(logging.ERROR):  # Ray's start-up notes are not the user's business
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = "start one with 'ray start --head', or use --ray local" if address == "auto" else ""
        raise InputError(f"cannot connect to Ray at {address!r}: {exc}. {hint}".strip()) from None
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _ray_logs_at(level: int) -> Iterator[None]:
    logger = logging.getLogger("ray")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


class RayExecutor:
    """Each image a Ray task (``RayOptions``: where, and what each image asks for)."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options

    def run(self, todo: list[tuple[Item, object]], observer: BatchObserver) -> Finished:
        if not todo:
            return Finished({}, 0)
        with connect(self.options.address):
            device = todo[0][1].options.device  # every request comes from one template
            gpus = _gpus_per_image(self.options, device)
            threads = max(1, round(self.options.cpus_per_image))
            device = _task_device(device, gpus)
            todo = [(item, _for_a_task(request, device, threads)) for item, request in todo]
            _check_resources(self.options, gpus)
            _probe_nodes(todo)
            return _submit_and_wait(todo, self.options, gpus, observer)


def _for_a_task(request, device: str, threads: int):
    """A task computes where Ray gave it resources, with torch threads for its CPUs unless the
    user chose, and sees absolute paths (workers do not share the driver's working directory)."""
    request = request.with_options(device=device, threads=request.options.threads or threads)
    return _absolute(request)


# --- resources and checks before any image starts ----------------------------------------------


def _gpus_per_image(options: RayOptions, device: str) -> float:
    import ray

    if options.gpus_per_image is not None:
        if options.gpus_per_image > 0 and device in ("cpu", "mps"):
            raise InputError(f"--gpus-per-image {options.gpus_per_image} with --device {device}")
        return options.gpus_per_image
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    return 1.0 if has_gpus and device in ("auto", "cuda") else 0.0


def _task_device(device: str, gpus: float) -> str:
    """A task without a GPU computes on the CPU even where the node has one (Ray gave it none)."""
    if device == "cuda" and gpus == 0:
        raise InputError("--device cuda on Ray needs --gpus-per-image above 0 (e.g. 1, or 0.25 to share)")
    if device == "auto":
        return "cuda" if gpus > 0 else "cpu"
    return device


def _check_resources(options: RayOptions, gpus: float) -> None:
    """An image asking for more than any node has would wait forever: refuse it now."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    fits = any(node.get("CPU", 0) >= options.cpus_per_image and node.get("GPU", 0) >= gpus for node in nodes)
    if not fits:
        biggest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        raise InputError(
            f"no Ray node has {options.cpus_per_image:g} CPU(s) and {gpus:g} GPU(s) for one image "
            f"(the largest has {biggest.get('CPU', 0):g} CPU(s), {biggest.get('GPU', 0):g} GPU(s)); "
            "lower --cpus-per-image / --gpus-per-image"
        )


def _absolute(request):
    """Workers do not share the driver's working directory: every path they use is absolute."""
    paths = {
        name: Path(value).absolute()
        for name in ("input", "output", "reference")
        if (value := getattr(request, name)) is not None
    }
    mask = request.mask_path
    if mask is not None:
        paths["mask"] = str(mask.absolute())
    preset = request.preset
    if preset is not None and Path(preset).suffix == ".toml" and Path(preset).exists():
        paths["preset"] = str(Path(preset).absolute())
    options = request.options.replace(run_dir=request.options.run_dir.absolute())
    return replace(request, **paths, options=options)


def _probe_nodes(todo: list) -> None:
    """Every alive node must import this dip and see the files: fail once, before any image."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from dip_cli import __version__

    reads = sorted({str(p) for _, r in todo for p in (r.input, r.reference, r.mask_path) if p is not None})
    writes = sorted({str(d) for _, r in todo for d in (r.output.parent, r.options.run_dir.parent)})
    probe = ray.remote(num_cpus=0)(_probe)
    refs = {}
    for node in ray.nodes():
        if node.get("Alive"):
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            on_node = probe.options(scheduling_strategy=strategy)
            refs[node["NodeManagerAddress"]] = on_node.remote(reads, writes)
    problems = []
    for host, ref in refs.items():
        try:
            version, missing = ray.get(ref, timeout=120)
        except Exception as exc:  # dip not importable there, the node died, ...
            problems.append(f"node {host}: {type(exc).__name__}: {_first_line(exc)}")
            continue
        if version != __version__:
            problems.append(f"node {host} has dip {version}, this machine {__version__}")
        problems += [f"node {host} {what}" for what in missing[:3]]
    if problems:
        raise InputError(
            "the Ray workers cannot run this batch: "
            + "; ".join(problems)
            + ". Every node needs the same dip installed and the inputs and output folder on storage "
            "it can see (the same paths)"
        )


def _probe(reads: list[str], writes: list[str]) -> tuple[str, list[str]]:
    """On one node: dip's version, and which inputs it cannot read or folders it cannot write."""
    from dip_cli import __version__

    missing = [f"cannot read {p}" for p in reads if not os.access(p, os.R_OK)]
    for folder in writes:
        existing = Path(folder)
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent  # the folder is made later; its nearest parent must be writable
        if not os.access(existing, os.W_OK):
            missing.append(f"cannot write {folder}")
    return __version__, missing


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[-1][:300]


# --- running -------------------------------------------------------------------------------------


def _submit_and_wait(todo: list, options: RayOptions, gpus: float, observer: BatchObserver) -> Finished:
    import ray

    from dip_cli.workers import caught_stop_signals

    queue = ray.remote(num_cpus=0)(ProgressBox).remote()
    batch_id = uuid.uuid4().hex
    task = ray.remote(_restore_task).options(
        num_cpus=options.cpus_per_image, num_gpus=gpus, max_retries=options.max_retries
    )
    refs = {
        task.remote(item, request, key, batch_id, queue): (key, item)
        for key, (item, request) in enumerate(todo)
    }
    outcomes: dict[Item, Outcome] = {}
    with caught_stop_signals() as caught:
        pending, cancelled = list(refs), False
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                _drain(queue, observer)
                for ref in finished:
                    key, item = refs[ref]
                    outcome = outcomes[item] = _ref_outcome(ref, item)
                    observer.image_finish(key, outcome)
                if caught.signum and not cancelled:
                    queue.stop.remote(caught.signum)  # what ray.cancel misses, the tasks see here
                    for ref in pending:  # queued: dropped; running: interrupted, checkpoints, returns
                        ray.cancel(ref, force=False)
                    cancelled = True
            _drain(queue, observer)
        finally:
            ray.kill(queue)
    return Finished(outcomes, caught.signum)


def _ref_outcome(ref, item: Item) -> Outcome:
    import ray
    from ray.exceptions import TaskCancelledError

    try:
        return ray.get(ref)
    except TaskCancelledError:
        return not_started(item)
    except Exception as exc:  # retries used up: the worker or node kept dying
        message = f"Ray task failed: {type(exc).__name__}: {_first_line(exc)}"
        return Outcome(item, "failed", message=message)


def _drain(queue, observer: BatchObserver) -> None:
    import ray

    for message in ray.get(queue.take.remote()):
        if message[0] == Event.NOTE:
            deliver(message, note=lambda key, text: warnings.warn(text, DipWarning, stacklevel=1))
        else:
            report_to(observer, message)


class ProgressBox:
    """A Ray actor holding the tasks' progress messages until the driver takes them.

    Tasks send without waiting (``put.remote``): a task blocked in ``ray.get`` lends its CPUs
    back to Ray, which would then start more images at once than the resources allow.
    """

    def __init__(self) -> None:
        self.messages: list[tuple] = []
        self.signum = 0  # the signal that stopped the batch, 0 while it runs

    def put(self, message: tuple) -> None:
        self.messages.append(message)

    def take(self) -> list[tuple]:
        messages, self.messages = self.messages, []
        return messages

    def stop(self, signum: int) -> None:
        self.signum = signum

    def stopping(self) -> int:
        return self.signum


def _restore_task(item: Item, request, key: int, batch_id: str, queue) -> Outcome:
    """One image on a Ray worker. A retry of this batch's task resumes its run (the plan's rule)."""
    import ray

    from dip_cli.run_folder import RunFolder

    if ray.get(queue.stopping.remote()):  # stopped before this task ran (a brief wait, before any work)
        return not_started(item)
    marker = item.run_dir / BATCH_MARKER
    retry = marker.is_file() and marker.read_text() == batch_id
    finished = (RunFolder(item.run_dir).read_info() or {}).get("status") == "finished"
    if retry and finished and item.output.exists():
        return Outcome(item, "restored", finished_result(item), "finished before its worker was lost")
    resume = resumes(item.run_dir, request.options.overwrite, retry=retry)
    item.run_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(batch_id)
    forward = _QueueForward(queue, key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = restore_guarded(item, request.with_options(resume=resume, observer=forward))
    for warning in caught:
        queue.put.remote((Event.NOTE, key, f"{item.input.name}: {warning.message}"))
    return outcome


class _QueueForward(Forward):
    """restore()'s observer on a worker: its messages go to the batch's actor, updates at most a
    few times a second, and each update also asks whether the batch was stopped."""

    def __init__(self, queue, key: int) -> None:
        super().__init__(queue.put.remote, key)
        self.queue, self.last = queue, 0.0
        self.stop_asked = None  # the pending question to the actor: has the batch been stopped?

    def update(self, status) -> None:
        now = time.monotonic()
        if now - self.last >= 1 / UPDATES_PER_SECOND or status.iteration >= status.iters:
            self.last = now
            super().update(status)
            self._stop_if_asked()

    def _stop_if_asked(self) -> None:
        """Ask the actor whether the batch was stopped, never waiting for its answer (a task
        blocked in ``ray.get`` lends its CPUs back); the fit checkpoints and stops if it was."""
        import ray

        from dip_cli.fit import request_stop

        if self.stop_asked is None:
            self.stop_asked = self.queue.stopping.remote()
            return
        ready, _ = ray.wait([self.stop_asked], timeout=0)
        if ready:
            signum, self.stop_asked = ray.get(self.stop_asked), None
            if signum:
                request_stop(signum)
