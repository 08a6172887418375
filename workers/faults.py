"""Faults a job attempt meets: recognising them, and (tests only) injecting them.

``is_out_of_memory`` is production code: the worker reports an allocator failure as its own
error code (``out_of_memory``) instead of a generic pipeline error, and creation retries it once
at a smaller batch.

The rest injects faults for the chaos tests, and does nothing unless ``ARTFORGE_FAULT_INJECTION``
is set (the test stacks set it on their workers; production never does). Its value is a comma
separated list of faults, each ``FAULT:KIND[:ARG]``:

  crash:KIND        the process running an attempt of a KIND job kills itself (SIGKILL) as the
                    pipeline starts: a poison job that takes its worker process down every time.
  oom:KIND          an attempt of a KIND job raises ``torch.OutOfMemoryError`` as the pipeline starts.
  oom:KIND:N        ... only where the pipeline runs a batch of more than N items (creation: images
                    generated at once), as a GPU that fits N images at a time would.
  stall:KIND:S      an attempt of a KIND job shows the stage "stalled" and waits S seconds (wall
                    time, whatever the machine's load) before its pipeline runs: a job that is
                    surely mid-run for S seconds, to kill its worker, take S3 away or outlast a
                    time limit in, without a heavy job that takes longer on a busy machine.
  stall-store:KIND:S  the same once the pipeline has returned, before its results are stored (in
                    the finalize stage, ``workers.finalizing``), showing the stage "stalled storing".

The hooks are ``before_pipeline`` and ``before_store`` (``workers.attempt``) and ``before_batch``
(pipelines that batch). Each reads the setting once per process.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.settings import Settings

log = logging.getLogger(__name__)

FAULTS = ("crash", "oom", "stall", "stall-store")


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocator gave up: ``torch.OutOfMemoryError`` (what ``torch.cuda.OutOfMemoryError``
    names too), the CPU allocator's RuntimeError, or Python's MemoryError."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch
    except ImportError:  # pragma: no cover - workers always have torch
        return False
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# -- injection (tests only) ----------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    fault: str
    kind: str
    # oom: the largest batch that fits (None: none does); stall: the seconds to wait.
    arg: float | None = None


def parse(spec: str) -> tuple[Fault, ...]:
    faults = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        fault, _, rest = item.partition(":")
        kind, _, arg = rest.partition(":")
        if fault not in FAULTS or not kind:
            raise ValueError(f"ARTFORGE_FAULT_INJECTION: {item!r} is not FAULT:KIND[:ARG] with FAULT in {FAULTS}")
        try:
            faults.append(Fault(fault, kind, float(arg) if arg else None))
        except ValueError:
            raise ValueError(f"ARTFORGE_FAULT_INJECTION: {item!r}: {arg!r} is not a number") from None
        if fault.startswith("stall") and not arg:
            raise ValueError(f"ARTFORGE_FAULT_INJECTION: {item!r}: {fault}:KIND:SECONDS needs the seconds")
    return tuple(faults)


@functools.cache
def active() -> tuple[Fault, ...]:
    faults = parse(Settings.from_env().fault_injection)
    if faults:
        log.warning("fault injection is on (tests only): %s", ", ".join(f"{f.fault}:{f.kind}" for f in faults))
    return faults


def before_pipeline(kind: str, progress: Callable[[float, str, str], None] | None = None) -> None:
    """``progress(fraction, stage, message)``, where given, shows a stall on the job."""
    for fault in active():
        if fault.kind != kind:
            continue
        if fault.fault == "crash":
            log.warning("fault injection: killing this process (pid %d) running a %s job", os.getpid(), kind)
            os.kill(os.getpid(), signal.SIGKILL)
        if fault.fault == "oom" and fault.arg is None:
            raise_out_of_memory(f"injected at the start of a {kind} job")
        if fault.fault == "stall" and fault.arg is not None:
            _stall(kind, fault.arg, progress, 0.0, "stalled")


def before_store(kind: str, progress: Callable[[float, str, str], None]) -> None:
    for fault in active():
        if fault.kind == kind and fault.fault == "stall-store" and fault.arg is not None:
            _stall(kind, fault.arg, progress, 0.9, "stalled storing")


def _stall(kind: str, seconds: float, progress: Callable[[float, str, str], None] | None, fraction: float,
           stage: str) -> None:
    log.warning("fault injection: a %s job stalls for %g s (%s)", kind, seconds, stage)
    if progress is not None:
        progress(fraction, stage, f"fault injection: waiting {seconds:g} s")
    time.sleep(seconds)


def before_batch(kind: str, batch: int) -> None:
    for fault in active():
        if fault.kind == kind and fault.fault == "oom" and fault.arg is not None and batch > fault.arg:
            raise_out_of_memory(f"injected: a {kind} batch of {batch} is above {fault.arg:g}")


def raise_out_of_memory(why: str) -> None:
    import torch

    raise torch.OutOfMemoryError(f"CUDA out of memory ({why})")
