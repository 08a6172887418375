"""The worker's Celery app: ``celery -A workers.celery_app worker -Q inference,maintenance``."""

from __future__ import annotations

import logging

from celery.signals import setup_logging, worker_init, worker_process_init, worker_process_shutdown, worker_ready

from shared.contract import TASK_RENDER_STYLE_THUMBNAILS
from shared.logs import configure_logging
from shared.queue import make_celery
from shared.settings import Settings
from workers import devices, finalizing, telemetry
from workers.runtime import reset_after_fork

settings = Settings.from_env()
app = make_celery(settings, main="artforge-worker")
app.conf.update(
    task_soft_time_limit=settings.inference_soft_limit_s,
    task_time_limit=settings.inference_hard_limit_s,
    include=["workers.tasks"],
)


@setup_logging.connect
def _configure_logging(loglevel: int | None = None, **_: object) -> None:
    # Connected, so Celery leaves the root logger to us (worker, pool children and beat alike).
    configure_logging(settings, level=loglevel or logging.INFO)


@worker_init.connect
def _prepare_metrics(**_: object) -> None:
    # The main process, before the pool forks: the children write their samples there.
    telemetry.prepare_multiprocess_dir()


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    # The main process, once the pool has forked (no child holds the server's socket).
    telemetry.serve_worker_metrics(app, settings)


@worker_process_shutdown.connect
def _finish_and_forget_child(**_: object) -> None:
    # Results handed to the finalize stage are stored and their jobs settled before the pool process
    # exits (a warm shutdown); past the lease, the reaper would send those jobs again anyway.
    finalizing.drain_process_stage(timeout=settings.lease_s)
    telemetry.forget_this_process()


@worker_process_init.connect
def _fresh_clients_in_child(**_: object) -> None:
    # Never share Redis/S3 sockets (or, later, CUDA state) with the forking parent.
    reset_after_fork()
    if settings.torch_threads > 0:
        import torch

        torch.set_num_threads(settings.torch_threads)
    # cuDNN autotuning and TF32 where a GPU is visible (in the child: the parent never touches CUDA).
    devices.configure_backends()


@worker_ready.connect
def _ask_for_thumbnails(sender: object = None, **_: object) -> None:
    # Cheap when they exist already; any worker that consumes maintenance renders them.
    app.send_task(TASK_RENDER_STYLE_THUMBNAILS, expires=600)
