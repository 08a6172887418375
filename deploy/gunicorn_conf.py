"""gunicorn settings for the API: ``gunicorn -c python:deploy.gunicorn_conf ... 'api:create_app()'``.

Workers, threads and the bind address stay on the command line; this file holds the hooks:
- Prometheus multiprocess mode: each worker process writes its samples under
  ``PROMETHEUS_MULTIPROC_DIR``; the folder is emptied when the master starts (old samples
  would be added to new ones) and a dead worker's live gauges are dropped.
- gunicorn's own log lines go through ``shared.logs`` like the app's (JSON by default); the
  app logs one line per request itself, with its request id, so no access log is configured.
- The errors gunicorn answers itself, before the app sees a request (a request line over
  ``limit_request_line``: 414, a header over ``limit_request_field_size``: 431, a line it cannot
  parse: 400), come in the API's JSON error shape rather than gunicorn's HTML page.
- Each worker keeps at most half its threads in server-sent event streams (``post_fork``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.glogging import Logger
from prometheus_client import multiprocess

from api.errors import code_for_status, error_document
from shared.logs import configure_logging
from shared.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STREAMS_ENV = "ARTFORGE_SSE_STREAMS_PER_PROCESS"


class SharedLogger(Logger):  # type: ignore[misc]
    """gunicorn's error and access loggers, handed to the root logger that shared.logs configures."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging(Settings.from_env(), level=self.loglevel)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


logger_class = SharedLogger


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, writing the API's error shape. gunicorn hard-codes an HTML
    page there and has no setting for it (benoitc/gunicorn#993); its workers call it through the
    module (``util.write_error``), so replacing the module's function here, in the master before
    it forks, reaches every worker."""
    body = json.dumps(error_document(code_for_status(status_int), mesg or reason)).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn_util.write_error = write_json_error


def on_starting(server: Any) -> None:
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        Path(path).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)


def post_fork(server: Any, worker: Any) -> None:
    """An open event stream holds one of the worker's threads (api/event_streams.py): unless told
    otherwise, a worker keeps half its threads for the other requests. A sync worker (one
    thread) keeps no stream open, and its clients poll."""
    os.environ.setdefault(STREAMS_ENV, str(worker.cfg.threads // 2))
