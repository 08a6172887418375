"""Stacks of their own for the security tests, on the session's Redis and S3: each module's
settings go in through the stack's environment, as an operator's would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.devstack import Stack
from tests.conftest import stack_on


@contextmanager
def stack_with(servers: Stack, workdir: Path, env: dict[str, str], workers: tuple[str, ...] = ()) -> Iterator[Stack]:
    """A namespace of its own on the session's servers (``stack_on``) and the API (one gunicorn
    worker, so every request meets the same process state), with ``env`` on top of the test
    settings; then the workers named."""
    stack = stack_on(servers, workdir, env)
    try:
        stack.start_api(workers=1, threads=8)
        for queue in workers:
            stack.start_worker(queue)
        yield stack
    finally:
        stack.stop_all()
