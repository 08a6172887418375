"""gunicorn settings for the API: ``gunicorn -c python:deploy.gunicorn_conf ... 'api:create_app()'``.

Workers, threads and the bind address stay on the command line; this file holds the hooks:
- Prometheus multiprocess mode: each worker process writes its samples under
  ``PROMETHEUS_MULTIPROC_DIR``; the folder is emptied when the master starts (old samples
  would be added to new ones) and a dead worker's live gauges are dropped.
- gunicorn's own log lines go through ``shared.logs`` like the app's (JSON by default); the
  app logs one line per request itself, with its request id, so no access log is configured.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger
from prometheus_client import multiprocess

from shared.logs import configure_logging
from shared.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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


def on_starting(server: Any) -> None:
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        Path(path).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)
