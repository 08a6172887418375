"""A job that runs past its soft time limit fails with a clear error instead of hanging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image

from deploy.devstack import Stack
from tests.conftest import TEST_ENV, ApiClient

pytestmark = pytest.mark.slow


@pytest.fixture
def short_limit_stack(tmp_path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    stack = Stack(tmp_path, env={**TEST_ENV, "ARTFORGE_INFERENCE_SOFT_LIMIT_S": "2",
                                 "ARTFORGE_INFERENCE_HARD_LIMIT_S": "60"})
    try:
        stack.start_redis()
        stack.start_s3()
        stack.start_api(workers=1, threads=2)
        stack.start_worker("inference")
        yield stack
    finally:
        stack.stop_all()


def test_job_past_its_soft_limit_fails_with_timeout(short_limit_stack: Stack, photo: Image.Image) -> None:
    client = ApiClient(f"http://127.0.0.1:{short_limit_stack.api_port}", short_limit_stack.create_key("slow"))
    upload = client.upload_image(photo.resize((2048, 2048)), "JPEG")
    job_id = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                            "params": {"style": "dark-oil", "max_side": 2048}}).json()["id"]
    job = client.wait(job_id, timeout=120)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "timeout" and job["results"] == []
    assert job["attempts"] == 1  # a timeout is final, not retried in a loop
