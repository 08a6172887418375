"""A queued job whose broker message is lost still runs: beat's sweep sends it again.

The message is taken out of the Redis transport's queue list by hand, as a purge, a broker that
lost its last writes, or an API process killed between writing the record and sending would
leave it: a record that says ``queued`` and nothing in the broker that would ever run it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from PIL import Image

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.contract import MAX_PRIORITY, QUEUE_INFERENCE
from shared.queue import PRIORITY_SEP, job_ids_in_broker, run_job_id
from tests.conftest import ApiClient
from tests.security.conftest import stack_with

pytestmark = pytest.mark.slow

LOST_AFTER_S = 3


def drop_message(client: redis.Redis, job_id: str) -> None:
    """Remove the job's message from whichever priority list of the inference queue holds it."""
    for p in range(MAX_PRIORITY + 1):
        name = QUEUE_INFERENCE if p == 0 else f"{QUEUE_INFERENCE}{PRIORITY_SEP}{p}"
        for raw in client.lrange(name, 0, -1):
            if run_job_id(json.loads(raw)) == job_id:
                client.lrem(name, 1, raw)
                return
    raise AssertionError(f"job {job_id} had no message to lose")


def test_job_whose_message_was_lost_is_sent_again_and_runs_once(servers: Stack, tmp_path: Path,
                                                                photo: Image.Image) -> None:
    env = {"ARTFORGE_LOST_JOB_AFTER_S": str(LOST_AFTER_S), "ARTFORGE_LOST_JOB_CHECK_S": "1"}
    with stack_with(servers, tmp_path, env) as stack:
        client = ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("chaos"))
        upload = client.upload_image(photo.resize((96, 64)))
        job_id = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                                "params": {"style": "dark-oil"}}).json()["id"]
        broker = redis_client(stack.settings())
        drop_message(broker, job_id)  # no worker runs yet: nothing can have taken it
        lost_at = time.monotonic()
        assert job_id not in job_ids_in_broker(broker)

        stack.start_worker("inference")
        stack.start_beat()
        job = client.wait(job_id, timeout=120)
        ran_after_s = time.monotonic() - lost_at
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        print(f"lost message re-sent; the job succeeded {ran_after_s:.1f}s after its message was dropped")
        assert job_id not in job_ids_in_broker(broker)  # the one message was consumed and acked
