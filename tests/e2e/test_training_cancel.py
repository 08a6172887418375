"""Canceling a training job stops it at its next step and keeps a checkpoint."""

from __future__ import annotations

import pytest

from deploy.devstack import Stack
from shared.objects import ObjectStore
from tests.conftest import ApiClient, eventually


@pytest.mark.slow
def test_cancel_training_saves_a_checkpoint_first(stack: Stack, admin_client: ApiClient) -> None:
    job_id = admin_client.submit({"kind": "training", "params": {
        "target": "gan", "model": "canceled-run", "steps": 5000, "per_style": 16, "batch_size": 16,
        "checkpoint_every": 10_000}}).json()["id"]
    eventually(lambda: (admin_client.get(f"/v1/jobs/{job_id}").json()["progress"]["message"] or "").startswith(
        "step "), 600, "the training's first steps", interval=0.2)
    assert admin_client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = admin_client.wait(job_id, timeout=120)
    assert job["status"] == "canceled"
    settings = stack.settings()
    key = f"alice/{job_id}/artifacts/checkpoint.safetensors"
    assert ObjectStore(settings).exists(settings.bucket_results, key)  # saved on cancel, not by schedule
    assert admin_client.get("/v1/models/canceled-run").status_code == 404
