"""Creation end to end through the real queue: the shipped model every tenant can use, a tenant's
own short training, prompts, upscaling, and bad requests.

The quality of the shipped model is asserted on its own card and weights in
tests/unit/test_default_models.py; here a small model is trained (32 px, a minute or two on 2
cores) only to show that training jobs measure and register what they make.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ApiClient, train_model
from workers import devices
from workers.data.attributes import colour_attributes

SHIPPED = "abstract"
MODEL = "abstract-test"
TRAINING = {"target": "gan", "model": MODEL, "dataset": "procedural", "resolution": 32, "steps": 200,
            "per_style": 40, "batch_size": 16, "checkpoint_every": 100, "sample_every": 100, "seed": 1,
            "eval_per_label": 8}
BRIGHTNESS, SATURATION = 0, 1


@pytest.fixture(scope="session")
def trained(admin_client: ApiClient) -> dict:
    return train_model(admin_client, TRAINING)


def create(client: ApiClient, **params: object) -> dict:
    response = client.submit({"kind": "creation", "params": params})
    assert response.status_code == 202, response.text
    job = client.wait(response.json()["id"], timeout=180)
    assert job["status"] == "succeeded", job
    return job


def result_pixels(client: ApiClient, job: dict) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(client.get(r["url"]).content)).convert("RGB"))
                     for r in job["results"]])


def details(client: ApiClient, job: dict) -> dict:
    return client.get(job["results"][0]["provenance_url"]).json()["output"]["details"]


# -- the shipped model ---------------------------------------------------------------------


@pytest.mark.slow
def test_every_tenant_creates_from_the_shipped_model_out_of_the_box(client: ApiClient,
                                                                    other_client: ApiClient) -> None:
    for who in (client, other_client):
        listed = {m["name"]: m for m in who.get("/v1/models").json()["items"]}
        assert listed[SHIPPED]["public"] is True and listed[SHIPPED]["read_only"] is True
        card = who.get(f"/v1/models/public/{SHIPPED}").json()["cards"][0]
        assert card["quality_goals"] and card["metrics"]["frechet_distance"]["real_floor"] > 0
        job = create(who, style="ink_landscape", count=2, seed=3)
        assert job["params"]["model"] == f"public/{SHIPPED}@{card['version']}"  # pinned at submission
        assert {(r["width"], r["height"]) for r in job["results"]} == {(64, 64)}


@pytest.mark.slow
def test_same_seed_gives_the_same_works(client: ApiClient) -> None:
    first, second, other = (chroma(result_pixels(client, create(client, style="circles", count=4, seed=seed)))
                            for seed in (123, 123, 124))
    # Each 64 px result carries its own invisible watermark (it names its own provenance record),
    # which moves R, G and B alike; the colours the generator drew are the same (but for rounding
    # and the clipping at 0 and 255) for the same seed.
    assert np.mean(np.abs(first - second) > 1) < 0.01
    assert np.mean(np.abs(first - other) > 1) > 0.5


def chroma(pixels: np.ndarray) -> np.ndarray:
    """R - G and B - G: what a luma-only change leaves alone."""
    rgb = pixels.astype(int)
    return np.stack([rgb[..., 0] - rgb[..., 1], rgb[..., 2] - rgb[..., 1]], axis=-1)


@pytest.mark.slow
def test_upscaled_results_come_from_the_learned_upscaler(client: ApiClient) -> None:
    job = create(client, style="grid", count=2, seed=5, upscale=512)
    assert {(r["width"], r["height"]) for r in job["results"]} == {(512, 512)}
    upscaled = details(client, job)["upscaled"]
    assert upscaled["side"] == 512 and upscaled["method"] == "learned" and upscaled["model"]["name"] == "upscaler"
    assert details(client, job)["generated_resolution"] == 64
    assert {(r["width"], r["height"]) for r in create(client, count=1, seed=5, upscale=True)["results"]} == \
        {(256, 256)}


@pytest.mark.slow
@pytest.mark.parametrize(("high", "low", "attribute"), [
    ("vivid", "muted", SATURATION), ("色彩鲜艳", "柔和", SATURATION),
    ("bright", "dark", BRIGHTNESS), ("明亮", "暗", BRIGHTNESS),
])
def test_prompts_move_the_colours_the_way_people_mean_them(client: ApiClient, high: str, low: str,
                                                            attribute: int) -> None:
    """On the shipped model: a mean difference of at least 0.15 of the attribute's range, the right
    way round, over the same seed and styles."""
    means = {}
    for word in (high, low):
        job = create(client, count=24, seed=77, prompt=word)
        means[word] = colour_attributes(result_pixels(client, job))[:, attribute].mean()
        understood = details(client, job)["prompt"]["understood"]
        assert understood and all(term in word for term in understood), understood  # 色彩鲜艳 -> 鲜艳
    assert means[high] - means[low] >= 0.15, means


@pytest.mark.slow
def test_theme_words_pick_the_abstract_styles_and_the_job_says_what_it_understood(client: ApiClient) -> None:
    job = create(client, count=12, seed=8, prompt="抽象画，色彩鲜艳，有现代感")
    prompt = details(client, job)["prompt"]
    assert {"抽象", "鲜艳", "现代感"} <= set(prompt["understood"])
    assert set(details(client, job)["labels"]) <= {"grid", "color_field", "circles", "drips", "stripes", "shapes"}
    nothing = create(client, count=2, seed=8, prompt="the weather is nice today")
    assert details(client, nothing)["prompt"]["understood"] == []


# -- a tenant's own model ------------------------------------------------------------------


@pytest.mark.slow
def test_training_measures_and_registers_the_tenants_own_model(trained: dict) -> None:
    card, model = trained["card"], trained["model"]
    assert model["promoted_version"] == card["version"] == 1 and not model["public"]
    assert card["labels"] == ["grid", "color_field", "circles", "drips", "stripes", "shapes", "ink_landscape",
                              "skyline", "still_life"]
    assert card["dataset"]["id"] == "procedural" and card["dataset"]["licence"]
    # the worker runs on this machine: bf16 autocast where its CPU has bf16 units, and the card says which
    assert card["training"]["precision"] == devices.autocast_precision("cpu", cpu=True)
    metrics = card["metrics"]
    fd = metrics["frechet_distance"]
    # 200 steps at 32 px: measured, beside its floor and an untrained generator; the pixel-space
    # SWD already shows what was learned (the shipped model's quality: tests/unit/test_default_models.py)
    assert 0 < fd["real_floor"] < fd["generated"] and fd["untrained"] > fd["real_floor"]
    assert fd["ratio_to_floor"] == pytest.approx(fd["generated"] / fd["real_floor"], rel=0.01)
    assert metrics["swd"]["average"] < 0.5 * metrics["swd_untrained"]["average"]
    assert metrics["kid_x1e3"]["untrained"] > metrics["kid_x1e3"]["real_floor"]
    style_fd = metrics["frechet_distance_style"]  # the cross-check in a network no discriminator reads
    assert 0 < style_fd["real_floor"] < style_fd["untrained"] and "Magenta" in style_fd["features"]
    accuracy = metrics["conditional_accuracy"]
    assert accuracy["cnn_real"] > 0.7 and accuracy["features_real"] > 0.8
    assert set(card["quality_goals"]) == {"frechet_distance_at_most_3x_floor", "swd_at_most_1_5x_floor",
                                          "cnn_accuracy_at_least_0_95x_real", "feature_accuracy_at_least_0_95x_real",
                                          "diversity_at_least_half_of_real",
                                          "layout_diversity_at_least_half_of_real"}
    assert metrics["evaluated_on"]["held_out_real"] == 9 * TRAINING["eval_per_label"]


@pytest.mark.slow
def test_training_lists_sample_grids(admin_client: ApiClient, trained: dict) -> None:
    job = trained["job"]
    names = [a["name"] for a in job["artifacts"]]
    assert "samples-step-000100.png" in names
    grid = admin_client.get(job["artifacts"][0]["url"])
    assert grid.status_code == 200 and grid.headers["Content-Type"] == "image/png"
    assert 9 * 32 <= Image.open(io.BytesIO(grid.content)).height < 10 * 32  # one row per style


@pytest.mark.slow
def test_a_tenants_own_model_is_theirs_alone(client: ApiClient, other_client: ApiClient, trained: dict) -> None:
    assert create(client, model=MODEL, count=1, seed=1)["params"]["model"] == f"{MODEL}@1"
    response = other_client.submit({"kind": "creation", "params": {"model": MODEL}})
    assert response.status_code == 409 and response.json()["error"]["code"] == "model_not_trained"
    assert MODEL not in {m["name"] for m in other_client.get("/v1/models").json()["items"]}
    assert other_client.get(f"/v1/models/{MODEL}").status_code == 404


# -- bad requests --------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_creation_requests(client: ApiClient, admin_client: ApiClient) -> None:
    def error(body_params: dict, status: int, who: ApiClient = client) -> dict:
        response = who.submit({"kind": "creation", "params": body_params})
        assert response.status_code == status, response.text
        return response.json()["error"]

    assert error({"model": "never-trained"}, 409)["code"] == "model_not_trained"
    assert error({"model": f"{SHIPPED}@99"}, 409)["code"] == "model_not_trained"
    # Version 1 shipped other weights: pinning it is refused, never answered with other works.
    retired = error({"model": f"{SHIPPED}@1"}, 409)
    assert retired["code"] == "model_version_retired" and "no longer served" in retired["message"]
    assert error({"style": "cubism"}, 422)["details"]
    for count in (0, 65, "many"):
        error({"count": count}, 422)
    for upscale in (32, 2048, "big", 0):
        error({"upscale": upscale}, 422)
    error({"model": "Bad Name!"}, 422)
    error({"truncation": 0}, 422)
    # Training needs an admin key, and a resolution the networks know.
    assert client.submit({"kind": "training", "params": TRAINING}).status_code == 403
    assert admin_client.submit({"kind": "training", "params": {**TRAINING, "resolution": 48}}).status_code == 422
    unknown_dataset = admin_client.submit({"kind": "training", "params": {**TRAINING, "dataset": "f" * 32}})
    assert unknown_dataset.status_code == 422
    # The shipped model is read-only: it cannot be promoted or rolled back.
    assert admin_client.post(f"/v1/models/{SHIPPED}/promote", json={"version": 1}).status_code == 403
    assert client.get("/v1/models/public/no-such-model").status_code == 404
