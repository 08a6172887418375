"""Prometheus metrics of a worker (ML quality metrics live in ``workers.metrics``, not here).

Jobs run in prefork pool children, which write their samples to files under
``PROMETHEUS_MULTIPROC_DIR``; the worker's main process serves them, with the queue depths
read from Redis at scrape time, on ``http://{worker_metrics_host}:{worker_metrics_port}/metrics``
(port 0: no server). Metrics:

  artforge_job_duration_seconds{kind,outcome}   histogram; outcome succeeded | failed | canceled
                                                | superseded (another attempt took the job over)
  artforge_job_attempts_total{kind}              counter: attempts started
  artforge_job_failures_total{kind,code}         counter: attempts that failed the job, by error code
  artforge_queue_depth{queue}                    gauge: messages waiting, all priority lists together
  artforge_gpu_memory_allocated_bytes{device}    gauge: torch's allocated CUDA memory in the pool
                                                 processes, only where they use CUDA
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import redis
from celery import Celery
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.connections import redis_client
from shared.settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Every metric has labels, so none writes a sample file before a pool child uses it.
JOB_DURATION = Histogram("artforge_job_duration_seconds", "Duration of job attempts, by kind and outcome",
                         ["kind", "outcome"],
                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600))
JOB_ATTEMPTS = Counter("artforge_job_attempts_total", "Job attempts started, by kind", ["kind"])
JOB_FAILURES = Counter("artforge_job_failures_total", "Job attempts that failed the job, by kind and error code",
                       ["kind", "code"])
GPU_MEMORY = Gauge("artforge_gpu_memory_allocated_bytes", "CUDA memory allocated by torch in the pool processes",
                   ["device"], multiprocess_mode="livesum")


def record_attempt_started(kind: str) -> None:
    JOB_ATTEMPTS.labels(kind=kind).inc()


def record_attempt(kind: str, ending: str, code: str | None, duration_s: float) -> None:
    """An attempt's end as ``workers.attempt.Outcome`` says it: ``ending`` (succeeded, canceled,
    failed, requeued, superseded) and, for a failure, its error ``code``."""
    JOB_DURATION.labels(kind=kind, outcome=ending).observe(duration_s)
    if ending == "failed":
        JOB_FAILURES.labels(kind=kind, code=code or "unknown").inc()
    record_gpu_memory()


def record_gpu_memory() -> None:
    # Only where this process has used CUDA already: never import torch or initialise CUDA to
    # report on it (in the forking parent that would break every child).
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    for index in range(torch.cuda.device_count()):
        GPU_MEMORY.labels(device=f"cuda:{index}").set(torch.cuda.memory_allocated(index))


def forget_this_process() -> None:
    """A pool child on its way out: drop its live gauges (GPU memory) from the sums."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())


def queue_lists(app: Celery) -> dict[str, list[str]]:
    """The Redis lists of each queue. kombu's Redis transport keeps one list per priority step:
    ``name`` for the first, ``name{sep}{step}`` for the others (``_q_for_pri``)."""
    options = app.conf.broker_transport_options or {}
    sep = options.get("sep", "\x06\x16")
    steps = [step for step in options.get("priority_steps", [0]) if step]
    return {queue.name: [queue.name, *(f"{queue.name}{sep}{step}" for step in steps)]
            for queue in app.conf.task_queues or []}


class QueueDepthCollector(Collector):
    """Messages waiting in each queue, read from Redis when scraped."""

    def __init__(self, client: redis.Redis, lists: dict[str, list[str]]):
        self.redis, self.lists = client, lists

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for names in self.lists.values():
                    for name in names:
                        pipe.llen(name)
                lengths = iter(pipe.execute())
        except redis.RedisError as exc:
            log.warning("queue depths unavailable: %s", exc)
            return
        gauge = GaugeMetricFamily("artforge_queue_depth", "Messages waiting in the queue, all priorities",
                                  labels=["queue"])
        for queue, names in self.lists.items():
            gauge.add_metric([queue], float(sum(next(lengths) for _ in names)))
        yield gauge


def prepare_multiprocess_dir() -> None:
    """In the worker's main process, before the pool forks: an empty folder for this worker's
    samples (a previous run's files would be added to this one's)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


def serve_worker_metrics(app: Celery, settings: Settings) -> None:
    """Start the metrics server in the worker's main process (a daemon thread)."""
    if settings.worker_metrics_port == 0:
        return
    registry: CollectorRegistry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        log.warning("%s is not set: only jobs run in the main process (-P solo) are counted", MULTIPROC_ENV)
    registry.register(QueueDepthCollector(redis_client(settings), queue_lists(app)))
    start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=registry)
    log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_host, settings.worker_metrics_port)
