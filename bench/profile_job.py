"""Where a job's running time goes: one attempt under a profiler, split by what it spends it on.

Submits a job through the API of a fresh stack (Redis, S3, API; no worker consumes it), then
runs the worker's own ``workers.attempt.execute_job`` on it in this process under yappi (CPU
or wall clock, every thread), after one unprofiled job of the same kind has warmed the caches
(model, signing keys, ONNX sessions). The profile is split into buckets by function (the model,
the watermark, PNG encoding, C2PA signing, S3, Redis ...); ``--top`` lists every function too.

    python -m bench.profile_job creation [--count 64]
    python -m bench.profile_job style_transfer [--side 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import yappi

from bench.common import ApiSession, add_profiler_arguments, bucket_times, photo, running_stack, style_job

MODULE = "bench.profile_job"
# What a job's time is spent on: (title, file fragment, function name as yappi names it). The
# functions do not call one another, except where the title says "incl.".
BUCKETS: list[tuple[str, str, str]] = [
    ("model forward", "workers/models/gan.py", "generate_from_noise"),
    ("model forward", "workers/models/style_networks.py", "stylize_named_array"),
    ("model forward", "workers/models/style_networks.py", "stylize_arbitrary"),
    ("inputs: S3 read and decode", "workers/job_storage.py", "load_inputs"),
    ("watermark embed", "shared/marks/watermark.py", "embed"),
    ("watermark read-back", "shared/marks/watermark.py", "detect"),
    ("PNG encode", "shared/images.py", "encode_png"),
    ("XMP", "shared/marks/xmp.py", "embed_xmp"),
    ("C2PA sign", "shared/marks/c2pa_manifest.py", "sign_png"),
    ("perceptual hashes", "shared/marks/perceptual.py", "perceptual_hashes"),
    ("record chain (incl. its S3 writes)", "shared/provenance_index.py", "RecordChain.append"),
    ("S3 writes (the record chain's included)", "shared/objects.py", "ObjectStore.put_bytes"),
    ("verify index (Redis)", "shared/provenance_index.py", "ProvenanceIndex.add_all"),
    ("watermark payloads (Redis)", "shared/provenance_index.py", "ProvenanceIndex.allocate_payloads"),
    ("job record (Redis)", "shared/jobs.py", "JobStore."),
]


def job_body(admin: ApiSession, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    if kind == "style_transfer":
        return style_job(admin.upload(photo(args.side)), max_side=args.side)
    from bench.creation import MODEL

    return {"kind": "creation", "params": {"model": MODEL, "count": args.count, "seed": 7}}


def profile(args: argparse.Namespace) -> None:
    from workers.attempt import SUCCEEDED, execute_job
    from workers.runtime import Runtime

    def requeue(job_id: str, kind: str, priority: int) -> None:
        raise RuntimeError(f"job {job_id} was handed back to the queue: S3 failed during the profile")

    with running_stack("profile") as stack:
        admin = ApiSession(stack.start_api(), stack.create_key("bench", admin=True))
        body = job_body(admin, args.kind, args)
        rt = Runtime.from_settings(stack.settings())
        assert execute_job(rt, admin.submit(body), requeue) == SUCCEEDED
        # Submitted only now: a creation job waiting beside the first would have joined its batch.
        measured = admin.submit(body)
        yappi.set_clock_type(args.clock)
        started = time.perf_counter()
        yappi.start(profile_threads=True)
        outcome = execute_job(rt, measured, requeue)
        yappi.stop()
        wall = time.perf_counter() - started
        admin.close()
    assert outcome == SUCCEEDED, outcome
    stats = yappi.get_func_stats()
    print(f"{args.kind}: one attempt took {wall * 1000:.0f} ms (under the profiler)")
    for title, seconds in sorted(bucket_times(stats, BUCKETS).items(), key=lambda item: -item[1]):
        print(f"  {title:<40} {seconds * 1000:8.1f} ms  {seconds / wall * 100:5.1f} % of the attempt")
    print(f"  ({args.clock} time summed over threads: the store step runs up to 8 results at a time, so a"
          " bucket can exceed the attempt)")
    if args.top:
        stats.sort("ttot").print_all(columns={0: ("name", 60), 1: ("ncall", 8), 3: ("ttot", 8)})


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["creation", "style_transfer"])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--side", type=int, default=512)
    add_profiler_arguments(parser)
    profile(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
