"""Per job kind, on a fresh worker: cold start against warm cache, and memory against idle.

Measured, for each job kind on a worker process started for it alone (prefork, concurrency 1,
as the service runs it): the first job's latency (POST until its event stream says succeeded: the model
fetched from S3 and checked, networks built, ONNX sessions created, signing keys loaded), and
the peak resident memory of the pool process while the kind's jobs ran (sampled every 10 ms).
The training kinds are measured on a fresh training worker; they also train the models the
creation and restoration jobs serve (``--train-steps``; speed only, not quality).
Baselines, from the same worker in the same run: for cold start, the median latency of the
same job repeated ``--runs`` times once everything is cached; for memory, the resident memory
of the idle pool process before its first job.

    python -m bench.worker_footprint [--runs 3] [--train-steps 20]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
from PIL import Image

from bench.common import ApiSession, Figure, command, median, photo, print_figures, running_stack, style_job, wait_until

MODULE = "bench.worker_footprint"
GAN_MODEL = "bench-footprint-gan"
RESTORATION_MODEL = "bench-footprint-restoration"
MIB = 1024 * 1024


@dataclass
class MemorySampler:
    """Peak resident memory of one process, sampled in a thread until stopped."""

    pid: int
    interval_s: float = 0.01
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pool_process(stack: Any, name: str) -> int:
    """The pid of the worker's pool process (the one that runs jobs), once the worker is ready."""
    log = stack.processes[name].log

    def ready() -> int | None:
        with open(log, encoding="utf-8", errors="replace") as handle:
            if " ready." not in handle.read():
                return None
        children = psutil.Process(stack.processes[name].pid).children(recursive=True)
        return children[0].pid if children else None

    pid = int(wait_until(ready, 120, f"{name} ready", interval=0.2))
    time.sleep(1.0)  # let the start-up task (style thumbnails, cheap once they exist) finish
    return pid


def timed_job(api: ApiSession, body: dict[str, Any], timeout: float = 900) -> float:
    started = time.perf_counter()
    api.follow(api.submit(body), timeout=timeout)
    return time.perf_counter() - started


@dataclass
class Kind:
    title: str
    queue: str
    body: Callable[[], dict[str, Any]]
    cold_warm: bool = True  # training jobs run once: memory only


def kinds(api: ApiSession, train_steps: int) -> list[Kind]:
    content, painting = photo(512), photo(384).transpose(Image.Transpose.ROTATE_90)
    uploads: dict[str, str] = {}

    def upload(name: str, image: Image.Image) -> str:
        if name not in uploads:
            uploads[name] = api.upload(image)
        return uploads[name]

    def damaged() -> Image.Image:
        from workers.data.damage import DamageConfig, simulate_damage
        from workers.data.procedural import make_dataset

        images, _ = make_dataset(1, 512, seed=3)
        return Image.fromarray(simulate_damage(images[0], np.random.default_rng(0), DamageConfig()).image)

    training = {"checkpoint_every": train_steps, "sample_every": train_steps, "steps": train_steps}
    return [
        Kind("training, GAN 32 px", "training", lambda: {"kind": "training", "params": {
            "target": "gan", "model": GAN_MODEL, "dataset": "procedural", "resolution": 32, "per_style": 16,
            **training}}, cold_warm=False),
        Kind("training, restoration", "training", lambda: {"kind": "training", "params": {
            "target": "restoration", "model": RESTORATION_MODEL, "per_style": 8, **training}}, cold_warm=False),
        Kind("creation, 64 images at 32 px", "inference", lambda: {"kind": "creation", "params": {
            "model": GAN_MODEL, "count": 64, "seed": 7}}),
        Kind("style transfer, named style, 512 px", "inference",
             lambda: style_job(upload("content", content), max_side=512)),
        Kind("style transfer, any painting, 512 px", "inference", lambda: {
            "kind": "style_transfer", "params": {"max_side": 512},
            "inputs": {"content": upload("content", content), "style": upload("painting", painting)}}),
        Kind("restoration, learned, auto mask, 512 px", "inference", lambda: {
            "kind": "restoration", "inputs": {"image": upload("damaged", damaged())},
            "params": {"operations": ["inpaint", "defade"], "method": "learned", "auto_mask": True,
                       "model": RESTORATION_MODEL}}),
        Kind("restoration, classical, auto mask, 512 px", "inference", lambda: {
            "kind": "restoration", "inputs": {"image": upload("damaged", damaged())},
            "params": {"operations": ["inpaint", "defade", "denoise"], "method": "classical", "auto_mask": True}}),
    ]


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    cmd = command(MODULE, argv)
    figures: list[Figure] = []
    with running_stack("footprint") as stack:
        api = ApiSession(stack.start_api(), stack.create_key("bench", admin=True))
        for kind in kinds(api, args.train_steps):
            name = f"worker-{kind.queue}"
            stack.start_worker(kind.queue, name=name)
            pid = pool_process(stack, name)
            body = kind.body()
            with MemorySampler(pid) as sampler:
                idle = sampler.rss()
                cold = timed_job(api, body)
                warm = [timed_job(api, body) for _ in range(args.runs)] if kind.cold_warm else []
            stack.stop(name)
            figures.append(Figure(
                f"worker memory, {kind.title}", sampler.peak / MIB, idle / MIB, "MiB", "the same pool process idle",
                higher_is_better=False, command=cmd,
                note=f"peak resident memory of the pool process during {1 + len(warm)} job(s), sampled every 10 ms"))
            if warm:
                figures.append(Figure(
                    f"cold start, {kind.title}", cold * 1000, median(warm) * 1000, "ms",
                    "the same job, warm (median)", higher_is_better=False, command=cmd,
                    note=f"first job on a fresh worker, POST to GET succeeded; warm: median of {args.runs}"))
        api.close()
    return figures


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=20)
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
