"""Creation end to end: train a conditional GAN through the real queue, then create with it.

One small model is trained per test session (32 px, the procedural dataset, a few minutes
on 2 cores) and shared by the tests below.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ApiClient, train_model
from workers.data.attributes import colour_attributes

MODEL = "abstract-test"
TRAINING = {"target": "gan", "model": MODEL, "dataset": "procedural", "resolution": 32, "steps": 900,
            "per_style": 160, "batch_size": 32, "checkpoint_every": 300, "sample_every": 300, "seed": 1}


@pytest.fixture(scope="session")
def trained(admin_client: ApiClient) -> dict:
    return train_model(admin_client, TRAINING)


def create(client: ApiClient, **params: object) -> dict:
    response = client.submit({"kind": "creation", "params": {"model": MODEL, **params}})
    assert response.status_code == 202, response.text
    job = client.wait(response.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    return job


def result_pixels(client: ApiClient, job: dict) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(client.get(r["url"]).content)).convert("RGB"))
                     for r in job["results"]])


@pytest.mark.slow
def test_training_registers_a_model_that_learned_the_styles(trained: dict) -> None:
    card, model = trained["card"], trained["model"]
    assert model["promoted_version"] == card["version"] == 1
    assert card["labels"] == ["grid", "color_field", "circles", "drips", "stripes", "shapes"]
    assert card["dataset"]["id"] == "procedural" and card["dataset"]["licence"]
    assert card["training"]["steps"] == TRAINING["steps"]
    metrics = card["metrics"]
    swd, floor, untrained = (metrics[k]["average"] for k in ("swd", "swd_real_floor", "swd_untrained"))
    print(f"SWD trained {swd:.1f}, real floor {floor:.1f}, untrained {untrained:.1f}; "
          f"conditional accuracy {metrics['conditional_accuracy']:.2f}")
    assert swd < 0.35 * untrained
    assert swd < 8 * floor
    assert metrics["conditional_accuracy"] >= 0.8
    assert metrics["classifier_real_accuracy"] >= 0.9


@pytest.mark.slow
def test_training_lists_sample_grids_and_progress(admin_client: ApiClient, trained: dict) -> None:
    job = trained["job"]
    names = [a["name"] for a in job["artifacts"]]
    assert "samples-step-000300.png" in names and len(names) >= 3
    grid = admin_client.get(job["artifacts"][0]["url"])
    assert grid.status_code == 200 and grid.headers["Content-Type"] == "image/png"
    height = Image.open(io.BytesIO(grid.content)).height
    assert 6 * 32 <= height < 7 * 32  # one row per style (with thin padding)
    assert job["results"] and job["progress"]["stage"] == "succeeded"


@pytest.mark.slow
def test_same_seed_gives_identical_pixels(client: ApiClient, trained: dict) -> None:
    first = create(client, style="circles", count=4, seed=123)
    second = create(client, style="circles", count=4, seed=123)
    other = create(client, style="circles", count=4, seed=124)
    # The files differ (each result's XMP and C2PA manifest name its own provenance record); at
    # 32 px the pixels carry no watermark, so they are identical.
    assert np.array_equal(result_pixels(client, first), result_pixels(client, second))
    assert not np.array_equal(result_pixels(client, first), result_pixels(client, other))
    assert first["params"]["model"] == f"{MODEL}@1"  # pinned at submission


@pytest.mark.slow
def test_upscaled_results_say_so(client: ApiClient, trained: dict) -> None:
    job = create(client, style="grid", count=2, seed=5, upscale=True)
    assert {(r["width"], r["height"]) for r in job["results"]} == {(256, 256)}
    provenance = client.get(job["results"][0]["provenance_url"]).json()
    assert provenance["output"]["details"]["upscaled"] is True
    assert provenance["output"]["details"]["generated_resolution"] == 32


@pytest.mark.slow
@pytest.mark.parametrize("prompt,attribute,direction", [
    ("抽象画，色彩鲜艳，有现代感", 1, +1),          # vivid: saturation up
    ("a dark, calm colour-field painting", 0, -1),  # dark: brightness down
])
def test_prompt_steers_colour_attributes(client: ApiClient, trained: dict, prompt: str, attribute: int,
                                         direction: int) -> None:
    plain = colour_attributes(result_pixels(client, create(client, count=32, seed=77))).mean(0)
    steered_job = create(client, count=32, seed=77, prompt=prompt)
    steered = colour_attributes(result_pixels(client, steered_job)).mean(0)
    change = (steered[attribute] - plain[attribute]) * direction
    print(f"{prompt!r}: attribute {attribute} {plain[attribute]:.3f} -> {steered[attribute]:.3f}")
    # The size of the move depends on the training set the held-out split leaves: 0.048 for the
    # Chinese prompt in a fresh-clone run on the content-hash split (attributes lie in 0..1).
    assert change > 0.03
    provenance = client.get(steered_job["results"][0]["provenance_url"]).json()
    assert provenance["output"]["details"]["prompt"]["attributes"]


@pytest.mark.slow
def test_bad_creation_requests(client: ApiClient, admin_client: ApiClient, trained: dict) -> None:
    def error(body_params: dict, status: int, who: ApiClient = client) -> dict:
        response = who.submit({"kind": "creation", "params": body_params})
        assert response.status_code == status, response.text
        return response.json()["error"]

    assert error({"model": "never-trained"}, 409)["code"] == "model_not_trained"
    assert "train" in error({"model": "never-trained"}, 409)["message"]
    assert error({"model": f"{MODEL}@99"}, 409)["code"] == "model_not_trained"
    assert error({"model": MODEL, "style": "cubism"}, 422)["details"]
    for count in (0, 65, "many"):
        error({"model": MODEL, "count": count}, 422)
    error({"model": "Bad Name!"}, 422)
    error({"model": MODEL, "truncation": 0}, 422)
    # Training needs an admin key.
    response = client.submit({"kind": "training", "params": TRAINING})
    assert response.status_code == 403
    bad_training = admin_client.submit({"kind": "training", "params": {**TRAINING, "resolution": 48}})
    assert bad_training.status_code == 422
    unknown_dataset = admin_client.submit({"kind": "training", "params": {**TRAINING, "dataset": "f" * 32}})
    assert unknown_dataset.status_code == 422


@pytest.mark.slow
def test_models_are_listed(client: ApiClient, trained: dict) -> None:
    items = client.get("/v1/models").json()["items"]
    mine = next(m for m in items if m["name"] == MODEL)
    assert mine["promoted_version"] == 1 and "drips" in mine["labels"]
    assert client.get("/v1/models/nothing-here").status_code == 404
