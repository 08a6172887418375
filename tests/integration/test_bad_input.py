"""Bad input gets its documented status and the one error shape; the service stays healthy."""

from __future__ import annotations

import io
import json
import socket
import struct
import zlib
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from tests.conftest import ApiClient, image_bytes


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A few hundred bytes that claim 3.6 billion pixels (all-zero rows, deflated)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def valid_png(photo: Image.Image) -> bytes:
    return image_bytes(photo.resize((128, 128)))


BAD_UPLOADS = {
    "not_an_image": (b"hello, this is plain text\n" * 10, 415, "unsupported_image"),
    "zero_bytes": (b"", 415, "unsupported_image"),
    "svg_named_png": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                      b"<rect width='10' height='10'/></svg>", 415, "unsupported_image"),
    "pdf_named_png": (b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF", 415,
                      "unsupported_image"),
    "decompression_bomb": (png_bomb(), 413, "image_too_large"),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
def test_bad_uploads_are_refused_with_their_status(client: ApiClient, name: str) -> None:
    data, status, code = BAD_UPLOADS[name]
    assert_error(client.upload(data, "picture.png"), status, code)


def test_truncated_png_is_refused(client: ApiClient, valid_png: bytes) -> None:
    assert_error(client.upload(valid_png[: len(valid_png) // 2]), 415, "corrupt_image")


def test_oversize_upload_is_refused_with_413(client: ApiClient) -> None:
    # The tests' API accepts 12 MiB; send 14 MiB.
    response = client.upload(b"\x89PNG\r\n\x1a\n" + b"\0" * (14 * 1024 * 1024))
    assert_error(response, 413)


def test_missing_file_field_is_invalid(client: ApiClient) -> None:
    response = client.post("/v1/uploads", files={"picture": ("a.png", b"x")})
    assert_error(response, 422, "invalid_parameters")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer af_nope_nope"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer "}])
def test_missing_or_wrong_key_is_401(client: ApiClient, headers: dict[str, str]) -> None:
    response = requests.get(client.base + "/v1/jobs", headers=headers, timeout=10)
    assert_error(response, 401, "unauthorized")


def test_unknown_job_id_is_404(client: ApiClient) -> None:
    assert_error(client.get("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "not_found")
    assert_error(client.post("/v1/jobs/not-even-an-id/cancel"), 404, "not_found")


def test_another_tenants_job_upload_and_results_look_unknown(
        client: ApiClient, other_client: ApiClient, valid_png: bytes) -> None:
    upload = client.upload(valid_png).json()
    job = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                         "params": {"style": "sepia-drawing"}}).json()
    done = client.wait(job["id"])
    assert done["status"] == "succeeded"

    assert_error(other_client.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
    assert_error(other_client.post(f"/v1/jobs/{job['id']}/cancel"), 404, "not_found")
    assert_error(other_client.get(f"/v1/jobs/{job['id']}/results/0"), 404, "not_found")
    assert_error(other_client.get(f"/v1/jobs/{job['id']}/results/0/provenance"), 404, "not_found")
    assert job["id"] not in {j["id"] for j in other_client.get("/v1/jobs").json()["items"]}
    # Using another tenant's upload as an input is refused as if it did not exist.
    response = other_client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                                    "params": {"style": "sepia-drawing"}})
    assert_error(response, 422, "unknown_upload")


def test_results_that_do_not_exist_are_404(client: ApiClient, valid_png: bytes) -> None:
    upload = client.upload(valid_png).json()
    job = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                         "params": {"style": "bold-ink"}}).json()
    client.wait(job["id"])
    assert_error(client.get(f"/v1/jobs/{job['id']}/results/7"), 404, "not_found")


BAD_JOBS = {
    "unknown_kind": ({"kind": "teleport", "params": {}, "inputs": {}}, 422),
    "unknown_style": ({"kind": "style_transfer", "params": {"style": "picasso-blue"}, "inputs": {"content": "U"}},
                      422),
    "strength_is_a_string": ({"kind": "style_transfer", "params": {"style": "bold-ink", "strength": "lots"},
                              "inputs": {"content": "U"}}, 422),
    "strength_out_of_range": ({"kind": "style_transfer", "params": {"style": "bold-ink", "strength": 1.5},
                               "inputs": {"content": "U"}}, 422),
    "max_side_too_big": ({"kind": "style_transfer", "params": {"style": "bold-ink", "max_side": 4096},
                          "inputs": {"content": "U"}}, 422),
    "params_is_a_list": ({"kind": "style_transfer", "params": ["bold-ink"], "inputs": {"content": "U"}}, 422),
    "inputs_not_strings": ({"kind": "style_transfer", "params": {"style": "bold-ink"}, "inputs": {"content": 5}},
                           422),
    "no_style_at_all": ({"kind": "style_transfer", "params": {}, "inputs": {"content": "U"}}, 422),
    "two_styles": ({"kind": "style_transfer", "params": {"style": "bold-ink"},
                    "inputs": {"content": "U", "style": "U"}}, 422),
    "no_content": ({"kind": "style_transfer", "params": {"style": "bold-ink"}, "inputs": {}}, 422),
    "unknown_param": ({"kind": "style_transfer", "params": {"style": "bold-ink", "colour": "red"},
                       "inputs": {"content": "U"}}, 422),
    "unknown_upload": ({"kind": "style_transfer", "params": {"style": "bold-ink"},
                        "inputs": {"content": "0" * 32}}, 422),
    "priority_out_of_range": ({"kind": "style_transfer", "params": {"style": "bold-ink"},
                               "inputs": {"content": "U"}, "priority": 42}, 422),
    "unknown_top_level_field": ({"kind": "style_transfer", "params": {"style": "bold-ink"},
                                 "inputs": {"content": "U"}, "colour": 1}, 422),
    "kind_is_a_number": ({"kind": 7, "params": {}, "inputs": {}}, 422),
}


@pytest.mark.parametrize("name", sorted(BAD_JOBS))
def test_invalid_job_requests_are_422_and_create_nothing(client: ApiClient, valid_png: bytes, name: str) -> None:
    upload_id = client.upload(valid_png).json()["id"]
    body, status = BAD_JOBS[name]
    body = {**body, "inputs": body["inputs"]}
    if isinstance(body["inputs"], dict):
        body["inputs"] = {k: (upload_id if v == "U" else v) for k, v in body["inputs"].items()}
    before = len(client.get("/v1/jobs", params={"limit": 100}).json()["items"])
    error = assert_error(client.submit(body), status)
    assert error["details"], "a 422 names the fields at fault"
    assert len(client.get("/v1/jobs", params={"limit": 100}).json()["items"]) == before


def test_too_small_content_image_is_422(client: ApiClient, photo: Image.Image) -> None:
    tiny = client.upload_image(photo.resize((1, 1)))
    response = client.submit({"kind": "style_transfer", "params": {"style": "bold-ink"},
                              "inputs": {"content": tiny["id"]}})
    assert_error(response, 422, "image_too_small")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2", b"\xff\xfe"])
def test_malformed_json_is_400(client: ApiClient, body: bytes) -> None:
    response = client.post("/v1/jobs", data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400)


def test_wrong_query_types_are_422(client: ApiClient) -> None:
    assert_error(client.get("/v1/jobs", params={"limit": "many"}), 422)
    assert_error(client.get("/v1/jobs", params={"status": "sleeping"}), 422)
    assert_error(client.get("/v1/jobs", params={"cursor": "abc"}), 422)


def test_unknown_route_and_method_use_the_error_shape(client: ApiClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404)
    assert_error(requests.delete(client.base + "/v1/styles", timeout=10), 405)


def test_requests_gunicorn_refuses_use_the_error_shape(client: ApiClient) -> None:
    """gunicorn answers these itself, before the app sees them: a request line over its 4,094-byte
    limit, a header over its 8,190-byte limit (deploy/gunicorn_conf.py gives them the API's shape)."""
    assert_error(client.get("/v1/jobs", params={"cursor": "x" * 5000}), 414, "uri_too_long")
    assert_error(client.get("/v1/jobs", headers={"X-Padding": "x" * 9000}), 431, "headers_too_large")


def test_unparseable_request_line_uses_the_error_shape(client: ApiClient) -> None:
    host, port = urlsplit(client.base).hostname, urlsplit(client.base).port
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(b"GET /v1/jobs?a=1 & HTTP/1.1\r\nHost: x\r\n\r\n")  # a space in the query
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), raw[:200]
    assert b"Content-Type: application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == "malformed_request" and error["message"] and error["details"] == {}


def test_service_is_healthy_after_bad_input(client: ApiClient, valid_png: bytes) -> None:
    for data, _, _ in BAD_UPLOADS.values():
        client.upload(data)
    assert requests.get(client.base + "/readyz", timeout=10).status_code == 200
    upload = client.upload(valid_png)
    assert upload.status_code == 201
    job = client.submit({"kind": "style_transfer", "inputs": {"content": upload.json()["id"]},
                         "params": {"style": "neon-sketch"}}).json()
    assert client.wait(job["id"])["status"] == "succeeded"


def test_odd_but_valid_images_are_accepted(client: ApiClient, photo: Image.Image) -> None:
    small = photo.resize((96, 64))
    cmyk = image_bytes(small.convert("CMYK"), "JPEG")
    palette_alpha = small.convert("RGBA")
    palette_alpha.putalpha(128)
    sixteen_bit = io.BytesIO()
    Image.new("I;16", (40, 40), 40000).save(sixteen_bit, format="PNG")
    for data in (cmyk, image_bytes(palette_alpha.convert("P"), "PNG"), sixteen_bit.getvalue(),
                 image_bytes(small, "WEBP"), image_bytes(small, "TIFF")):
        response = client.upload(data)
        assert response.status_code == 201, response.text
