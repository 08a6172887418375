"""The finalize stage (workers.finalizing): in order, bounded, failures kept, drained on demand."""

from __future__ import annotations

import threading
import time

import pytest

from shared.logs import current_log_context, log_context
from workers.finalizing import BackgroundFinalizer, run_now


def test_steps_run_in_the_order_they_were_handed_over_off_the_callers_thread() -> None:
    stage = BackgroundFinalizer(backlog=3)
    ran: list[tuple[int, str]] = []
    futures = [stage.submit(lambda i=i: ran.append((i, threading.current_thread().name))) for i in range(20)]
    assert stage.drain(timeout=30)
    assert all(future.done() for future in futures)
    assert [i for i, _ in ran] == list(range(20))
    assert {name for _, name in ran} != {threading.current_thread().name}


def test_handing_over_waits_while_the_backlog_is_full() -> None:
    backlog = 2
    stage = BackgroundFinalizer(backlog)
    finished = 0

    def slow_step() -> None:
        nonlocal finished
        time.sleep(0.02)
        finished += 1

    waiting_at_hand_over = []
    for handed in range(1, 11):
        stage.submit(slow_step)
        waiting_at_hand_over.append(handed - finished)
    assert stage.drain(timeout=30) and finished == 10
    assert max(waiting_at_hand_over) <= backlog, waiting_at_hand_over


def test_a_failing_step_is_kept_in_its_future_and_the_next_steps_still_run() -> None:
    stage = BackgroundFinalizer(backlog=2)

    def fails() -> None:
        raise OSError("S3 went away")

    failed, after = stage.submit(fails), stage.submit(lambda: "stored")
    assert after.result(timeout=30) == "stored"
    with pytest.raises(OSError, match="S3 went away"):
        failed.result()


def test_steps_keep_the_log_context_they_were_handed_over_in() -> None:
    stage = BackgroundFinalizer(backlog=1)
    with log_context(job_id="job-1", tenant="t"):
        seen = stage.submit(current_log_context)
    assert seen.result(timeout=30)["job_id"] == "job-1"


def test_drain_says_when_steps_are_still_running() -> None:
    stage = BackgroundFinalizer(backlog=1)
    release = threading.Event()
    stage.submit(lambda: release.wait(30))
    assert not stage.drain(timeout=0.05)
    release.set()
    assert stage.drain(timeout=30)


def test_inline_stage_runs_the_step_before_returning() -> None:
    assert run_now(lambda: 7).result(timeout=0) == 7
    assert isinstance(run_now(lambda: 1 / 0).exception(timeout=0), ZeroDivisionError)
    with pytest.raises(ValueError):
        BackgroundFinalizer(backlog=0)


@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt])
def test_inline_stage_lets_what_ends_the_process_through(ending: type[BaseException]) -> None:
    def step() -> None:
        raise ending()

    with pytest.raises(ending):
        run_now(step)
