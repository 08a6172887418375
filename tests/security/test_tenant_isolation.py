"""Tenant isolation over every route of the app, and the presigned result links.

The routes are read from the app's own ``url_map``: every rule with a path parameter is either
tenant-scoped, and then called with ids of tenant ``alice`` by ``bob`` (and by an admin key of
``bob``'s) and must answer 404 in the error shape, while alice's own call does not; or it is on
the allow-list below with the reason it is not tenant-scoped. A new route on neither list fails
the test, so it cannot ship without a tenant check or a stated reason.

The presigned ``download_url`` of a result works without a key, for one object only (another
key or bucket in the same URL fails the signature) and not after ``ARTFORGE_PRESIGN_EXPIRY_S``
(SeaweedFS checks the expiry, as MinIO and S3 do).
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from PIL import Image

from deploy.devstack import Stack
from shared.connections import Stores, redis_client
from shared.queue import make_celery
from shared.schedules import ScheduleSpec, ScheduleStore
from tests.chaos.test_poison_and_oom import publish_untrained_gan
from tests.conftest import ApiClient, image_bytes
from tests.integration.test_bad_input import assert_error
from tests.security.conftest import stack_with

PRESIGN_EXPIRY_S = 3
ARTIFACT = "samples.png"
SCHEDULE = "nightly"
OWN_MODEL = "alices-gan"

# Rules with path parameters that are not tenant-scoped, and why.
NOT_TENANT_SCOPED = {
    "GET /docs/<path:path>": "Swagger UI's static files, public",
    "GET /static/<path:filename>": "the gallery page's static files, public",
    "GET /v1/styles/<name>/thumbnail": "the named styles are built in, the same for every tenant",
    "GET /v1/models/public/<name>": "the models shipped with the service, the same for every tenant",
    "GET /v1/protected-works/<work_id>": "the operator's protected list, applied to every tenant's inputs "
                                         "(admin keys manage it)",
    "DELETE /v1/protected-works/<work_id>": "the same operator list",
    "GET /v1/tenants/<tenant>/policy": "an operator route (admin keys) that names the tenant it manages",
    "PUT /v1/tenants/<tenant>/policy": "the same operator route",
}


@dataclass
class Alice:
    """Things of tenant alice, made through the API where the API makes them."""

    job: dict[str, Any]
    upload_id: str
    dataset_id: str
    artifact_key: str
    spare_key_id: str  # a key of alice's that her admin may revoke


@dataclass(frozen=True)
class Call:
    """One tenant-scoped route: its path with alice's ids, what alice's own call answers (None:
    not made, it would change what the other calls need), and the body that gets past validation."""

    path: str
    owner_status: int | None
    admin_only: bool = False
    json: dict[str, Any] | None = None
    files: Callable[[], dict[str, Any]] | None = None
    # Routes that create in the caller's own namespace (PUT by name): bob's call must not answer
    # 404 but must leave alice's thing as it was.
    upserts: bool = False


def tenant_scoped_calls(alice: Alice) -> dict[str, Call]:
    job = alice.job["id"]
    image = {"file": ("more.png", image_bytes(Image.new("RGB", (48, 48), (9, 99, 199))))}
    schedule_body = {"model": "creation-gan", "dataset": alice.dataset_id, "every_s": 3600}
    return {
        "GET /v1/jobs/<job_id>": Call(f"/v1/jobs/{job}", 200),
        "POST /v1/jobs/<job_id>/cancel": Call(f"/v1/jobs/{job}/cancel", 409),  # finished: already_finished
        "GET /v1/jobs/<job_id>/events": Call(f"/v1/jobs/{job}/events", 200),
        "GET /v1/jobs/<job_id>/results/<int:index>": Call(f"/v1/jobs/{job}/results/0", 200),
        "GET /v1/jobs/<job_id>/results/<int:index>/provenance": Call(f"/v1/jobs/{job}/results/0/provenance", 200),
        "GET /v1/jobs/<job_id>/artifacts/<name>": Call(f"/v1/jobs/{job}/artifacts/{ARTIFACT}", 200),
        "GET /v1/datasets/<dataset_id>": Call(f"/v1/datasets/{alice.dataset_id}", 200),
        "GET /v1/datasets/<dataset_id>/versions": Call(f"/v1/datasets/{alice.dataset_id}/versions", 200),
        "POST /v1/datasets/<dataset_id>/images": Call(f"/v1/datasets/{alice.dataset_id}/images", 200,
                                                      files=lambda: dict(image)),
        "GET /v1/schedules/<name>": Call(f"/v1/schedules/{SCHEDULE}", 200, admin_only=True),
        "DELETE /v1/schedules/<name>": Call(f"/v1/schedules/{SCHEDULE}", None, admin_only=True),
        "PUT /v1/schedules/<name>": Call(f"/v1/schedules/{SCHEDULE}", None, admin_only=True, json=schedule_body,
                                         upserts=True),
        # Keys: an admin key manages its own tenant's; another tenant and its keys are unknown to it.
        "POST /v1/tenants/<tenant>/keys": Call("/v1/tenants/alice/keys", 201, admin_only=True, json={}),
        "GET /v1/tenants/<tenant>/keys": Call("/v1/tenants/alice/keys", 200, admin_only=True),
        "DELETE /v1/keys/<key_id>": Call(f"/v1/keys/{alice.spare_key_id}", 204, admin_only=True),
        "GET /v1/uploads/<upload_id>/thumbnail": Call(f"/v1/uploads/{alice.upload_id}/thumbnail", 200),
        # Models: a tenant's own are its alone (the public, shipped ones are every tenant's).
        "GET /v1/models/<name>": Call(f"/v1/models/{OWN_MODEL}", 200),
        "POST /v1/models/<name>/promote": Call(f"/v1/models/{OWN_MODEL}/promote", 200, admin_only=True,
                                               json={"version": 1}),
    }


@pytest.fixture(scope="module")
def isolated(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"ARTFORGE_PRESIGN_EXPIRY_S": str(PRESIGN_EXPIRY_S), "ARTFORGE_SSE_MAX_S": "5"}
    with stack_with(servers, tmp_path_factory.mktemp("isolated"), env, workers=("inference",)) as stack:
        yield stack


def key_of(stack: Stack, tenant: str, admin: bool = False) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key(tenant, admin=admin))


@pytest.fixture(scope="module")
def clients(isolated: Stack) -> dict[str, ApiClient]:
    return {"alice": key_of(isolated, "alice"), "alice_admin": key_of(isolated, "alice", admin=True),
            "bob": key_of(isolated, "bob"), "bob_admin": key_of(isolated, "bob", admin=True)}


def dataset_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(12):
            archive.writestr(f"{i}.png", image_bytes(Image.new("RGB", (48, 48), (20 * i, 255 - 20 * i, 7 * i))))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def alice(isolated: Stack, clients: dict[str, ApiClient], photo: Image.Image) -> Alice:
    owner = clients["alice"]
    upload = owner.upload_image(photo.resize((96, 96)))
    submitted = owner.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                              "params": {"style": "bold-ink"}})
    assert submitted.status_code == 202, submitted.text
    job = owner.wait(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    dataset = owner.post("/v1/datasets", files={"file": ("set.zip", dataset_zip())}, data={"licence": "CC0-1.0"})
    assert dataset.status_code == 201, dataset.text
    # Artifacts come from training jobs; one is listed on this job the way a worker lists them.
    stores = Stores.from_settings(isolated.settings())
    artifact_key = f"alice/{job['id']}/artifacts/{ARTIFACT}"
    stores.objects.put_bytes(stores.settings.bucket_results, artifact_key, image_bytes(Image.new("RGB", (8, 8))),
                             "image/png")
    stores.jobs.record_artifact(job["id"], {"name": ARTIFACT, "key": artifact_key, "content_type": "image/png"})
    # Schedules need a trained model to be made over HTTP; alice's is stored the way PUT stores one.
    ScheduleStore(redis_client(isolated.settings()), make_celery(isolated.settings())).save(ScheduleSpec(
        name=SCHEDULE, tenant="alice", model="creation-gan", dataset=dataset.json()["id"], every_s=86400, cron=None,
        training={"steps": 10}, enabled=False, created_at=time.time(), updated_at=time.time()))
    publish_untrained_gan(isolated, "alice", OWN_MODEL)
    spare_key = isolated.create_key("alice")
    return Alice(job=job, upload_id=upload["id"], dataset_id=dataset.json()["id"], artifact_key=artifact_key,
                 spare_key_id=spare_key.removeprefix("af_").partition("_")[0])


def app_rules(stack: Stack) -> dict[str, str]:
    """``"METHOD /rule"`` -> endpoint for every rule with a path parameter, from the app itself."""
    from api import create_app

    app = create_app(stack.settings())
    return {f"{method} {rule.rule}": rule.endpoint for rule in app.url_map.iter_rules() if rule.arguments
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})}


def call(client: ApiClient, method: str, spec: Call) -> requests.Response:
    kwargs: dict[str, Any] = {}
    if spec.json is not None:
        kwargs["json"] = spec.json
    if spec.files is not None:
        kwargs["files"] = spec.files()
    return requests.request(method, client.base + spec.path, headers={"Authorization": f"Bearer {client.key}"},
                            timeout=60, **kwargs)


def test_every_route_with_an_id_is_tenant_scoped_or_allow_listed(isolated: Stack, alice: Alice) -> None:
    rules = app_rules(isolated)
    scoped = tenant_scoped_calls(alice)
    unclassified = sorted(set(rules) - set(scoped) - set(NOT_TENANT_SCOPED))
    assert not unclassified, f"routes with ids but no tenant-isolation check here, nor a reason why not: {unclassified}"
    stale = sorted((set(scoped) | set(NOT_TENANT_SCOPED)) - set(rules))
    assert not stale, f"listed here but no longer routes of the app: {stale}"
    assert not set(scoped) & set(NOT_TENANT_SCOPED)


def test_another_tenants_ids_answer_404_on_every_tenant_scoped_route(
        isolated: Stack, clients: dict[str, ApiClient], alice: Alice) -> None:
    schedules = ScheduleStore(redis_client(isolated.settings()), make_celery(isolated.settings()))
    alices_schedule = schedules.get("alice", SCHEDULE)
    checked = []
    for route, spec in tenant_scoped_calls(alice).items():
        method = route.split(" ", 1)[0]
        strangers = ["bob_admin"] if spec.admin_only else ["bob", "bob_admin"]
        for stranger in strangers:
            response = call(clients[stranger], method, spec)
            if spec.upserts:
                assert response.status_code != 500, (route, response.text)
            else:
                assert_error(response, 404, "not_found")
            checked.append((route, stranger, response.status_code))
        assert schedules.get("alice", SCHEDULE) == alices_schedule, f"{route} by bob changed alice's schedule"
        if spec.owner_status is not None:
            owner = clients["alice_admin" if spec.admin_only else "alice"]
            response = call(owner, method, spec)
            assert response.status_code == spec.owner_status, (route, response.status_code, response.text[:300])
    # Alice's things are all still there, as she left them.
    assert clients["alice"].get(f"/v1/jobs/{alice.job['id']}").json()["status"] == "succeeded"
    assert clients["alice_admin"].get(f"/v1/schedules/{SCHEDULE}").status_code == 200
    print(f"\n{len(checked)} calls with alice's ids by bob: {sorted({s for _, _, s in checked})}")


def test_lists_show_only_the_callers_own(clients: dict[str, ApiClient], alice: Alice) -> None:
    for stranger in ("bob", "bob_admin"):
        listed = clients[stranger].get("/v1/jobs", params={"limit": 100}).json()["items"]
        assert alice.job["id"] not in {job["id"] for job in listed}
    assert clients["bob_admin"].get("/v1/schedules").json()["items"] == []
    assert clients["bob"].get("/v1/provenance/chain").json()["length"] == 0
    assert clients["alice"].get("/v1/provenance/chain").json()["length"] >= 1
    # Another tenant's upload or dataset as a job's input is unknown, not merely forbidden.
    for stranger in ("bob", "bob_admin"):
        response = clients[stranger].submit({"kind": "style_transfer", "inputs": {"content": alice.upload_id},
                                             "params": {"style": "bold-ink"}})
        assert_error(response, 422, "unknown_upload")
    training = clients["bob_admin"].submit({"kind": "training", "params": {
        "target": "gan", "model": "bobs-gan", "dataset": alice.dataset_id, "steps": 10}})
    assert training.status_code == 422, training.text
    assert alice.dataset_id in training.text or "dataset" in training.text


# -- presigned result links ---------------------------------------------------------------------


def fresh_download_url(clients: dict[str, ApiClient], alice: Alice) -> tuple[str, dict[str, Any]]:
    job = clients["alice"].get(f"/v1/jobs/{alice.job['id']}").json()
    return job["results"][0]["download_url"], job["results"][0]


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def test_download_url_serves_its_object_without_a_key(isolated: Stack, clients: dict[str, ApiClient],
                                                      alice: Alice) -> None:
    import hashlib

    url, result = fresh_download_url(clients, alice)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert hashlib.sha256(response.content).hexdigest() == result["sha256"]
    assert "X-Amz-Signature=" in url and f"X-Amz-Expires={PRESIGN_EXPIRY_S}" in url


def test_download_url_is_scoped_to_its_one_object(isolated: Stack, clients: dict[str, ApiClient],
                                                  alice: Alice) -> None:
    settings = isolated.settings()
    url, _ = fresh_download_url(clients, alice)
    assert requests.get(url, timeout=10).status_code == 200
    others = {
        "another object of the same job": f"/{settings.bucket_results}/{alice.artifact_key}",
        "the same tenant's upload, in another bucket": f"/{settings.bucket_uploads}/alice/{alice.upload_id}.png",
    }
    for what, path in others.items():
        response = requests.get(with_path(url, path), timeout=10)
        assert response.status_code == 403, (what, response.status_code, response.text[:300])
        assert b"SignatureDoesNotMatch" in response.content, response.text[:300]


def test_download_url_expires(isolated: Stack, clients: dict[str, ApiClient], alice: Alice) -> None:
    url, _ = fresh_download_url(clients, alice)
    assert requests.get(url, timeout=10).status_code == 200
    time.sleep(PRESIGN_EXPIRY_S + 1.5)
    response = requests.get(url, timeout=10)
    assert response.status_code == 403, response.text[:300]
    print(f"\nexpired download_url: {response.status_code} {response.text[:160]!r}")
