"""Scheduled retraining through real beat, real workers and schedules of seconds.

One small GAN is trained per module on a tenant's dataset (a weak first version, 40 steps);
a schedule then retrains it every few seconds: nothing happens while the dataset is unchanged,
appended images start a fine-tuning run whose version the promotion gate promotes when it is
better, a deliberately bad challenger (one step from scratch) is measured and not promoted,
and an admin rolls back and forth through the API while creation jobs follow without a
worker restart.
"""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deploy.devstack import Stack
from tests.conftest import ApiClient, eventually, image_bytes, train_model
from workers.data.procedural import STYLES, make_dataset

MODEL = "retrain-test"
LABELS = (0, 4)  # grid, stripes: two styles a GAN tells apart within a few hundred steps
FIRST = {"target": "gan", "model": MODEL, "resolution": 32, "steps": 40, "batch_size": 16,
         "checkpoint_every": 100, "sample_every": 100, "seed": 3, "eval_per_label": 8}
RETRAIN = {"steps": 200, "batch_size": 16, "checkpoint_every": 100, "sample_every": 100, "seed": 3,
           "eval_per_label": 8}

pytestmark = pytest.mark.slow


def dataset_zip(per_style: int, seed: int) -> bytes:
    images, labels = make_dataset(per_style, 48, seed=seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            if label in LABELS:
                archive.writestr(f"{STYLES[label].name}/{seed}-{index}.png", image_bytes(Image.fromarray(pixels)))
    return buffer.getvalue()


def append(admin: ApiClient, dataset_id: str, per_style: int, seed: int) -> dict[str, Any]:
    more = dataset_zip(per_style, seed)
    response = admin.post(f"/v1/datasets/{dataset_id}/images", files={"file": ("more.zip", more)})
    assert response.status_code == 200, response.text
    assert response.json()["added"] > 0
    return dict(response.json())


def runs_of(admin: ApiClient, name: str) -> list[dict[str, Any]]:
    response = admin.get(f"/v1/schedules/{name}")
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def next_run_after(admin: ApiClient, name: str, since: float, outcome: str, timeout: float = 60) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((r for r in runs_of(admin, name) if r["at"] > since and r["outcome"] == outcome), None)

    return dict(eventually(found, timeout, f"a '{outcome}' run of schedule {name}", interval=0.5))


def training_result(admin: ApiClient, name: str, job_id: str, timeout: float = 900) -> dict[str, Any]:
    job = admin.wait(job_id, timeout=timeout)
    assert job["status"] == "succeeded", job
    last = admin.get(f"/v1/schedules/{name}").json()["last_training"]
    assert last["job_id"] == job_id, last
    return dict(last["training_result"])


def served_version(client: ApiClient) -> int:
    """The model version a creation job that names no version was served by, from its provenance."""
    response = client.submit({"kind": "creation", "params": {"model": MODEL, "count": 1, "seed": 5}})
    assert response.status_code == 202, response.text
    job = client.wait(response.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    record = client.get(job["results"][0]["provenance_url"]).json()
    return int(record["model"]["version"])


@pytest.fixture(scope="module")
def dataset(admin_client: ApiClient) -> str:
    response = admin_client.post("/v1/datasets", files={"file": ("data.zip", dataset_zip(24, seed=0))},
                                 data={"licence": "CC0-1.0", "name": "retraining"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def first_version(admin_client: ApiClient, dataset: str) -> dict[str, Any]:
    return train_model(admin_client, {**FIRST, "dataset": dataset})


def test_schedule_retrains_on_new_data_and_the_gate_decides(admin_client: ApiClient, client: ApiClient,
                                                            dataset: str, first_version: dict) -> None:
    assert first_version["model"]["promoted_version"] == 1
    trainings_before = admin_client.get("/v1/jobs", params={"kind": "training", "limit": 100}).json()["items"]

    # 1. Unchanged dataset: runs, records why it did nothing, trains nothing.
    started = time.time()
    response = admin_client.put("/v1/schedules/nightly", json={
        "model": MODEL, "dataset": dataset, "every_s": 2, "init_from": "promoted", "training": RETRAIN})
    assert response.status_code == 200, response.text
    schedule = response.json()
    assert schedule["training"]["steps"] == RETRAIN["steps"] and schedule["training"]["resolution"] == 32
    assert schedule["next_run_at"] is not None
    skipped = next_run_after(admin_client, "nightly", started, "skipped")
    assert "unchanged" in skipped["reason"] and f"{MODEL}@1" in skipped["reason"], skipped
    trainings_now = admin_client.get("/v1/jobs", params={"kind": "training", "limit": 100}).json()["items"]
    assert len(trainings_now) == len(trainings_before)

    # 2. Appended images: a fine-tuning run, measured against v1 by the gate, promoted.
    appended = time.time()
    append(admin_client, dataset, 8, seed=1)
    launched = next_run_after(admin_client, "nightly", appended, "training")
    better = training_result(admin_client, "nightly", launched["job_id"])
    print("better challenger:", better["gate"]["reason"])
    assert better["version"] == 2 and better["promoted"] and better["serving"], better
    assert better["gate"]["promote"] and better["gate"]["metric"] == "swd"  # a 32 px model (gate_metric)
    assert len(better["gate"]["per_seed"]) >= 3
    model = admin_client.get(f"/v1/models/{MODEL}").json()
    assert model["promoted_version"] == 2
    assert model["cards"][1]["training"]["init"] == {"from": f"{MODEL}@1"}
    assert model["promotion_history"][-1]["version"] == 2 and "gate" in model["promotion_history"][-1]
    # The version the gate promoted serves creation jobs at once, without a worker restart.
    assert served_version(client) == 2
    # Its data is now the promoted version's: the schedule goes back to skipping.
    assert "unchanged" in next_run_after(admin_client, "nightly", time.time(), "skipped")["reason"]

    # 3. A deliberately bad challenger (one step from scratch) is measured and not promoted.
    response = admin_client.put("/v1/schedules/nightly", json={
        "model": MODEL, "dataset": dataset, "every_s": 2, "init_from": "scratch",
        "training": {**RETRAIN, "steps": 1}})
    assert response.status_code == 200, response.text
    appended = time.time()
    append(admin_client, dataset, 4, seed=2)
    launched = next_run_after(admin_client, "nightly", appended, "training")
    worse = training_result(admin_client, "nightly", launched["job_id"])
    print("worse challenger:", worse["gate"]["reason"])
    assert worse["version"] == 3 and not worse["promoted"] and not worse["serving"], worse
    assert not worse["gate"]["promote"] and worse["gate"]["challenger"] > worse["gate"]["incumbent"]
    assert admin_client.get(f"/v1/models/{MODEL}").json()["promoted_version"] == 2
    # The same data is not trained on again just because its version was not promoted.
    again = next_run_after(admin_client, "nightly", time.time(), "skipped")
    assert "not promoted" in again["reason"], again

    # 4. Rollback and forward through the API; creation follows without a restart.
    response = admin_client.post(f"/v1/models/{MODEL}/promote", json={"version": 1})
    assert response.status_code == 200, response.text
    assert response.json()["promoted_version"] == 1
    assert "rollback" in response.json()["promotion_history"][-1]["reason"]
    assert served_version(client) == 1
    assert admin_client.post(f"/v1/models/{MODEL}/promote", json={"version": 2}).status_code == 200
    assert served_version(client) == 2

    # 5. A deleted schedule stops running.
    assert admin_client.delete("/v1/schedules/nightly").status_code == 204
    assert admin_client.get("/v1/schedules/nightly").status_code == 404
    names = [s["name"] for s in admin_client.get("/v1/schedules").json()["items"]]
    assert "nightly" not in names


@pytest.mark.parametrize(("body", "field"), [
    ({"every_s": 10, "cron": "* * * * *"}, "every_s"),
    ({}, "every_s"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "every day"}, "cron"),
    ({"every_s": 0}, "every_s"),
    ({"every_s": 60, "training": {"steps": -5}}, "params.steps"),
    ({"every_s": 60, "training": {"model": "other"}}, "training"),
])
def test_invalid_schedules_are_refused(admin_client: ApiClient, dataset: str, first_version: dict,
                                       body: dict, field: str) -> None:
    response = admin_client.put("/v1/schedules/bad", json={"model": MODEL, "dataset": dataset, **body})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    fields = error["details"]["fields"]
    assert field in fields.get("json", fields), error


def test_schedules_need_a_known_model_and_dataset_and_an_admin(stack: Stack, admin_client: ApiClient,
                                                               client: ApiClient, dataset: str,
                                                               first_version: dict) -> None:
    unknown_model = admin_client.put("/v1/schedules/x", json={"model": "no-such-model", "dataset": dataset,
                                                              "every_s": 60})
    assert unknown_model.status_code == 422 and unknown_model.json()["error"]["code"] == "unknown_model"
    unknown_dataset = admin_client.put("/v1/schedules/x", json={"model": MODEL, "dataset": "0" * 32, "every_s": 60})
    assert unknown_dataset.status_code == 422 and unknown_dataset.json()["error"]["code"] == "unknown_dataset"
    bad_name = admin_client.put("/v1/schedules/Bad_Name", json={"model": MODEL, "dataset": dataset, "every_s": 60})
    assert bad_name.status_code == 422
    for call in (lambda: client.get("/v1/schedules"), lambda: client.put(
            "/v1/schedules/x", json={"model": MODEL, "dataset": dataset, "every_s": 60}),
            lambda: client.post(f"/v1/models/{MODEL}/promote", json={"version": 1})):
        response = call()
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert admin_client.post(f"/v1/models/{MODEL}/promote", json={"version": 99}).status_code == 404
    assert admin_client.post(f"/v1/models/{MODEL}/promote", json={"version": "two"}).status_code == 422
    # Nothing half-created by the refusals; another tenant cannot see this tenant's schedule.
    assert admin_client.get("/v1/schedules/x").status_code == 404
    assert admin_client.put("/v1/schedules/mine", json={"model": MODEL, "dataset": dataset,
                                                        "cron": "0 3 * * *"}).status_code == 200
    other_admin = ApiClient(admin_client.base, stack.create_key("bob", admin=True))
    assert other_admin.get("/v1/schedules/mine").status_code == 404
    assert other_admin.delete("/v1/schedules/mine").status_code == 404
    assert admin_client.delete("/v1/schedules/mine").status_code == 204


def test_two_beats_send_each_run_once(isolated_stack: Stack) -> None:
    """Two beat processes share the schedules through Redis; redbeat's lock lets one send."""
    isolated_stack.start_worker("training")  # it consumes the maintenance queue too, where runs are decided
    admin = ApiClient(f"http://127.0.0.1:{isolated_stack.api_port}", isolated_stack.create_key("ops", admin=True))
    train_model(admin, {"target": "gan", "model": "tiny", "dataset": "procedural", "per_style": 8,
                        "resolution": 32, "steps": 1, "batch_size": 8, "seed": 0, "eval_per_label": 4}, timeout=300)
    isolated_stack.start_beat("beat-1")
    isolated_stack.start_beat("beat-2")
    response = admin.put("/v1/schedules/often", json={"model": "tiny", "dataset": "procedural", "every_s": 2,
                                                      "training": {"per_style": 8, "steps": 1, "batch_size": 8,
                                                                   "eval_per_label": 4}})
    assert response.status_code == 200, response.text
    started = time.time()
    # Four runs, at least 6 s of beats: two beats sending each run would have doubled some by then.
    eventually(lambda: len([run for run in runs_of(admin, "often") if run["at"] > started]) >= 4, 120,
               "four runs of the schedule", interval=0.5)
    runs = sorted(run["at"] for run in runs_of(admin, "often") if run["at"] > started)
    elapsed = time.time() - started
    print(f"{len(runs)} runs in {elapsed:.0f}s, every 2s, two beats")
    assert all("unchanged" in run["reason"] for run in runs_of(admin, "often"))
    gaps = np.diff(runs)
    assert len(runs) >= 4 and gaps.min() > 1.0, runs  # two beats sending would leave pairs ms apart
    assert len(runs) <= elapsed / 2 + 2
