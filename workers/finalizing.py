"""The finalize stage: where a job attempt's results are marked, signed, stored and its job
settled, off the model's critical path.

A worker process runs its jobs' pipelines one at a time. Once a pipeline has returned, what is
left (``workers.attempt``: watermark, C2PA, S3 writes, the job's last transition) needs the CPU
and the network but not the model, so a ``BackgroundFinalizer`` does it on one thread of its own
while the worker takes its next job; on a GPU the device stays busy meanwhile.

- Order: one thread, first in first out, so a job's steps run in the order they were handed over.
- Backpressure: at most ``backlog`` steps wait or run there. Handing over one more blocks the
  worker until one is done, so a slow S3 cannot pile up finished images in memory.
- Durability: a job turns ``succeeded`` only in this stage, once its results are written; its
  lease is renewed until then. Should the process die mid-finalize (its Celery message is already
  acknowledged), the lease runs out and the reaper sends the job again (RELIABILITY.md).
- Shutdown: the worker drains the stage before its process exits (``workers.celery_app``).

``run_now`` is the same stage run inline, for local runs, benches and tests that want each step
finished before the call returns.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from shared.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
# Hands a step over to the finalize stage; the future holds what the step returned (or raised).
Finalize = Callable[[Callable[[], T]], "Future[T]"]


def run_now(step: Callable[[], T]) -> Future[T]:
    """The finalize stage inline: runs ``step`` before returning. An exception the step raises is
    carried by the future, as an executor's would be; what ends the process (SystemExit,
    KeyboardInterrupt) is raised on, as it would be without a stage, so the attempt stops its lease
    keeper and leaves the job to the reaper."""
    future: Future[T] = Future()
    try:
        future.set_result(step())
    except Exception as exc:
        future.set_exception(exc)
    return future


class BackgroundFinalizer:
    """Runs handed-over steps on one background thread, in order. ``submit`` blocks while
    ``backlog`` steps already wait or run there."""

    def __init__(self, backlog: int):
        if backlog < 1:
            raise ValueError(f"a background finalize stage needs a backlog of at least 1, not {backlog}")
        self._slots = threading.BoundedSemaphore(backlog)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finalize")

    def submit(self, step: Callable[[], T]) -> Future[T]:
        self._slots.acquire()
        # The step runs with the caller's log context (job id, tenant, request id).
        future = self._executor.submit(contextvars.copy_context().run, step)
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def drain(self, timeout: float) -> bool:
        """Waits up to ``timeout`` s for every step handed over so far; True once all have run."""
        done = self._executor.submit(lambda: None)  # first in first out: done once all before it are
        try:
            done.result(timeout)
        except TimeoutError:
            log.warning("finalize stage: steps still running after %.0f s; their jobs' leases will run out "
                        "and the reaper will send them again", timeout)
            return False
        return True


@functools.cache
def _stage_of_this_process() -> BackgroundFinalizer | None:
    backlog = Settings.from_env().finalize_backlog
    return BackgroundFinalizer(backlog) if backlog > 0 else None


def process_stage() -> Finalize:
    """This worker process's finalize stage, built on first use (in the pool process that runs
    jobs, after the fork): a background one, or ``run_now`` where ``finalize_backlog`` is 0."""
    stage = _stage_of_this_process()
    return stage.submit if stage is not None else run_now


def drain_process_stage(timeout: float) -> bool:
    """Waits for what this process's finalize stage still holds: before the process exits."""
    stage = _stage_of_this_process() if _stage_of_this_process.cache_info().currsize else None
    return stage is None or stage.drain(timeout)
