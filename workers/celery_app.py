"""The worker's Celery app: ``celery -A workers.celery_app worker -Q inference,maintenance``."""

from __future__ import annotations

from celery.signals import worker_process_init, worker_ready

from shared.contract import TASK_RENDER_STYLE_THUMBNAILS
from shared.queue import make_celery
from shared.settings import Settings
from workers.runtime import reset_after_fork

settings = Settings.from_env()
app = make_celery(settings, main="artforge-worker")
app.conf.update(
    task_soft_time_limit=settings.inference_soft_limit_s,
    task_time_limit=settings.inference_hard_limit_s,
    include=["workers.tasks"],
)


@worker_process_init.connect
def _fresh_clients_in_child(**_: object) -> None:
    # Never share Redis/S3 sockets (or, later, CUDA state) with the forking parent.
    reset_after_fork()
    if settings.torch_threads > 0:
        import torch

        torch.set_num_threads(settings.torch_threads)


@worker_ready.connect
def _ask_for_thumbnails(sender: object = None, **_: object) -> None:
    # Cheap when they exist already; any worker that consumes maintenance renders them.
    app.send_task(TASK_RENDER_STYLE_THUMBNAILS, expires=600)
