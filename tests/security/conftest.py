"""Stacks of their own for the security tests: each module's settings go in through the stack's
environment, as an operator's would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.devstack import Stack
from tests.conftest import TEST_ENV


@contextmanager
def stack_with(workdir: Path, env: dict[str, str], workers: tuple[str, ...] = ()) -> Iterator[Stack]:
    """Redis, S3 and the API (one gunicorn worker, so every request meets the same process
    state), with ``env`` on top of the test settings; then the workers named."""
    stack = Stack(workdir, env={**TEST_ENV, **env})
    try:
        stack.start_redis()
        stack.start_s3()
        stack.start_api(workers=1, threads=8)
        for queue in workers:
            stack.start_worker(queue)
        yield stack
    finally:
        stack.stop_all()
