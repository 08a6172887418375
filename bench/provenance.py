"""The provenance step's cost per result at 512 and 1024 px, and its share of each job kind's time.

Measured: ``workers.job_storage.store_results`` for one result, exactly as the worker runs it
(watermark, PNG, XMP, C2PA signing and sidecar, the record built, chained and signed under the
tenant's lock, S3 writes of image, sidecar and records, the verify indexes in Redis), in this
process against the bench stack's real Redis and S3.
Baseline: the store step without provenance, as it was before: PNG encode, S3 put of the image
and of a small JSON beside it. The two alternate, run by run, after a warm-up; medians of
``--runs`` are reported. The share: what provenance adds (measured minus baseline, per result,
at the job's result sizes) over the running time of a job of each kind through the service in
the same run (style transfer and restoration at both sizes, creation of ``--count`` images
upscaled to 256 px, and a ``--train-steps`` GAN training job). A restoration's second result, its
mask, is counted like a marked result, though it is not watermarked: an upper bound.
Also the CPU time (this process, every thread) the same two steps take per image for a creation
job's results: 64 procedural paintings at 64 px, the default model's resolution.

    python -m bench.provenance [--runs 7] [--count 4] [--train-steps 12]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PIL import Image

from bench.common import ApiSession, Figure, command, median, photo, print_figures, running_stack, start_warm_worker

MODULE = "bench.provenance"
SIDES = (512, 1024)
WARMUP_RUNS = 2
MODEL = "bench-provenance"
# A creation job's results at the default model's resolution, for the CPU each stored image costs.
BATCH_COUNT = 64
BATCH_SIDE = 64
CPU_GOAL_MS = 5.0


def store_steps(stack: Any) -> tuple[Callable[[list[Image.Image]], object], Callable[[list[Image.Image]], object]]:
    """(the worker's store step with provenance, the same without) for one job's result images."""
    from shared.images import encode_png
    from shared.jobs import new_job_id
    from workers.job_storage import store_results
    from workers.pipelines.registry import Output, PipelineResult
    from workers.provenance.recording import parallel_map
    from workers.runtime import Runtime

    rt = Runtime.from_settings(stack.settings())
    bucket = rt.settings.bucket_results
    metadata = {"model": {"name": "bench-model", "version": "1", "weights_sha256": "0" * 64}, "note": "bench"}

    def job(count: int) -> Any:
        return rt.jobs.create(job_id=new_job_id(), tenant="bench", key_id="bench", kind="creation",
                              params={"count": count}, inputs={}, priority=0)

    def with_provenance(images: list[Image.Image]) -> object:
        return store_results(rt, job(len(images)), PipelineResult(outputs=[Output(i) for i in images],
                                                                  metadata=metadata))

    def without(images: list[Image.Image]) -> object:
        one = job(len(images))

        def store(index: int, image: Image.Image) -> object:
            rt.objects.put_bytes(bucket, f"bench/{one.id}/{index}.png", encode_png(image), "image/png")
            return rt.objects.put_json(bucket, f"bench/{one.id}/{index}.provenance.json",
                                       {"job_id": one.id, **metadata})

        return parallel_map(store, range(len(images)), images)

    return with_provenance, without


def cpu_per_image(fn: Callable[[list[Image.Image]], object], images: list[Image.Image]) -> float:
    """CPU seconds of this process (every thread) per image."""
    started = time.process_time()
    fn(images)
    return (time.process_time() - started) / len(images)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def running_s(job: dict[str, Any]) -> float:
    started, finished = (datetime.fromisoformat(job[k]).timestamp() for k in ("started_at", "finished_at"))
    return finished - started


def service_jobs(stack: Any, api: ApiSession, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """One job of each kind through the service (median running time of --service-runs)."""
    bodies: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        upload = api.upload(photo(side))
        bodies[f"style transfer {side} px"] = {"kind": "style_transfer", "inputs": {"content": upload},
                                               "params": {"style": "bold-ink", "max_side": side}}
        bodies[f"restoration {side} px (defade)"] = {"kind": "restoration", "inputs": {"image": upload},
                                                     "params": {"operations": ["defade"], "method": "classical"}}
    bodies[f"creation {args.count} x 256 px"] = {"kind": "creation", "params": {
        "model": MODEL, "count": args.count, "seed": 1, "upscale": True}}
    jobs: dict[str, dict[str, Any]] = {}
    for name, body in bodies.items():
        runs = [api.follow(api.submit(body)) for _ in range(args.service_runs)]
        times = [running_s(job) for job in runs]
        jobs[name] = {"running_s": median(times),
                      "sizes": [(r["width"], r["height"]) for r in runs[0]["results"]]}
    return jobs


def train(stack: Any, api: ApiSession, steps: int) -> dict[str, Any]:
    stack.start_worker("training")
    job = api.wait(api.submit({"kind": "training", "params": {
        "target": "gan", "model": MODEL, "dataset": "procedural", "resolution": 32, "steps": steps,
        "per_style": 16, "checkpoint_every": steps, "sample_every": steps}}), 0.5, timeout=900)
    stack.stop("worker-training")
    return {"running_s": running_s(job), "sizes": [(r["width"], r["height"]) for r in job["results"]]}


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    with running_stack("provenance") as stack:
        api = ApiSession(stack.start_api(), stack.create_key("bench", admin=True))
        jobs = {f"GAN training {args.train_steps} steps": train(stack, api, args.train_steps)}
        start_warm_worker(stack)
        jobs.update(service_jobs(stack, api, args))
        with_provenance, without = store_steps(stack)
        sides = sorted({*SIDES, *(max(size) for job in jobs.values() for size in job["sizes"])})
        cost: dict[int, dict[str, float]] = {}
        for side in sides:
            image = photo(side)
            times: dict[str, list[float]] = {"provenance": [], "plain": []}
            for run in range(WARMUP_RUNS + (args.runs if side in SIDES else max(3, args.runs // 2))):
                for name, fn in (("provenance", with_provenance), ("plain", without)):
                    seconds = timed(lambda fn=fn, image=image: fn([image]))
                    if run >= WARMUP_RUNS:
                        times[name].append(seconds)
            cost[side] = {name: median(values) * 1000 for name, values in times.items()}
        from workers.data.procedural import make_dataset

        paintings = [Image.fromarray(pixels) for pixels in make_dataset(-(-BATCH_COUNT // 6), BATCH_SIDE, 3)[0]]
        cpu: dict[str, list[float]] = {"provenance": [], "plain": []}
        for run in range(WARMUP_RUNS + args.runs):
            for name, fn in (("provenance", with_provenance), ("plain", without)):
                seconds = cpu_per_image(fn, paintings[:BATCH_COUNT])
                if run >= WARMUP_RUNS:
                    cpu[name].append(seconds)
        batch_cpu = {name: median(values) * 1000 for name, values in cpu.items()}
        api.close()
    return figures(cost, batch_cpu, jobs, args, argv)


def figures(cost: dict[int, dict[str, float]], batch_cpu: dict[str, float], jobs: dict[str, dict[str, Any]],
            args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    def added_ms(size: tuple[int, int]) -> float:
        side = max(size)
        return cost[side]["provenance"] - cost[side]["plain"]

    shares = []
    for name, job in jobs.items():
        added = sum(added_ms(size) for size in job["sizes"])
        shares.append(f"{name}: {added:.0f} ms of {job['running_s'] * 1000:.0f} ms "
                      f"({added / (job['running_s'] * 1000):.1%})")
    note = (f"median of {args.runs}; provenance adds, per job (added ms of the job's running time): "
            + "; ".join(shares))
    cmd = command(MODULE, argv)
    return [Figure(f"provenance store step {side} px", cost[side]["provenance"], cost[side]["plain"], "ms",
                   "store without provenance (PNG + S3 puts)", higher_is_better=False, command=cmd,
                   goal="<= 1.5" if side == 512 else "",
                   note=note if side == SIDES[-1] else f"median of {args.runs}")
            for side in SIDES] + [
        Figure(f"provenance CPU per stored image, {BATCH_COUNT} x {BATCH_SIDE} px", batch_cpu["provenance"],
               batch_cpu["plain"], "ms", "store without provenance (PNG + S3 puts), CPU", higher_is_better=False,
               command=cmd, note=f"CPU time of the worker's process, every thread, median of {args.runs}; "
               f"goal (issue 22): <= {CPU_GOAL_MS:g} ms a stored image "
               f"({'met' if batch_cpu['provenance'] <= CPU_GOAL_MS else 'not met'})")]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--service-runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=12)
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
