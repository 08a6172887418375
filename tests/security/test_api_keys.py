"""API keys: stored hashed, compared in constant time, managed over HTTP by admin keys (their own
tenant's) and operator keys (any tenant's), revocable at once, and never logged; nor are the other
secrets (S3 secret key, watermark key, webhook secret).

On a stack of its own with one gunicorn worker, so that every request meets the same process
(and whatever it might remember about a key) and the logs hold only this module's requests.

Constant time is checked by behaviour, not by timing: the key store must hand the stored digest
and the presented secret's digest to ``hmac.compare_digest`` (CPython's constant-time compare)
and decide by its answer. Timing a compare on a shared machine measures the machine's noise.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from PIL import Image

from api import auth
from api.auth import KEY_PREFIX, KeyStore
from deploy.devstack import Stack
from shared.connections import redis_client
from tests.conftest import OWN_RIGHTS, ApiClient, eventually
from tests.integration.test_bad_input import assert_error
from tests.security.conftest import stack_with

SECRETS_ENV = {
    "ARTFORGE_WATERMARK_KEY": "wm-" + secrets.token_urlsafe(24),
    "ARTFORGE_WEBHOOK_SECRET": "wh-" + secrets.token_urlsafe(24),
}


@pytest.fixture(scope="module")
def keyed(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_with(servers, tmp_path_factory.mktemp("keyed"), SECRETS_ENV, workers=("inference",)) as stack:
        yield stack


@pytest.fixture(scope="module")
def store(keyed: Stack) -> KeyStore:
    return KeyStore(redis_client(keyed.settings()))


def base(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.api_port}"


def secret_of(key: str) -> str:
    return key[len(KEY_PREFIX):].partition("_")[2]


def artforge_admin(stack: Stack, key: str, workdir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``artforge admin ...`` as a person runs it: configured by ``.artforge/env`` in ``workdir`` (the file
    ``make up`` writes) and nothing else, speaking HTTP to the stack's API."""
    (workdir / ".artforge").mkdir(exist_ok=True)
    (workdir / ".artforge" / "env").write_text(f"ARTFORGE_URL={base(stack)}\nARTFORGE_API_KEY={key}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFORGE_")}
    return subprocess.run([sys.executable, "-m", "client.cli", "admin", *argv], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def server_admin(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    """``flask --app api ...`` where the API runs, with the stack's own settings and no key."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "api", *argv], env={**os.environ, **stack.env},
                          capture_output=True, text=True, timeout=60, check=False)


def key_id_of(key: str) -> str:
    return key[len(KEY_PREFIX):].partition("_")[0]


# -- hashed, constant-time ------------------------------------------------------------------------


def test_only_the_secrets_digest_is_stored(store: KeyStore) -> None:
    key, principal = store.create("dora")
    record = store.redis.hgetall(f"af:apikey:{principal.key_id}")
    assert record["secret_sha256"] == hashlib.sha256(secret_of(key).encode()).hexdigest()
    assert secret_of(key) not in str(record) and key not in str(record)


def test_a_wrong_secret_with_a_real_key_id_is_refused(store: KeyStore) -> None:
    key, principal = store.create("dora")
    secret = secret_of(key)
    assert store.verify(key) == principal
    near_misses = [
        key[:-1] + ("A" if key[-1] != "A" else "B"),  # last character wrong
        key[:-1],  # a prefix of the secret
        key + "x",  # one character more
        f"{KEY_PREFIX}{principal.key_id}_{secrets.token_urlsafe(32)}",  # the right id, another secret
        f"{KEY_PREFIX}{principal.key_id}_{hashlib.sha256(secret.encode()).hexdigest()}",  # the stored digest itself
        f"{KEY_PREFIX}{principal.key_id}_",
        f"{KEY_PREFIX}{secrets.token_hex(8)}_{secret}",  # the right secret under another id
        f"{KEY_PREFIX}{principal.key_id}_{secret}\u00e9",  # non-ASCII
    ]
    for presented in near_misses:
        assert store.verify(presented) is None, presented


def test_the_digests_are_compared_with_compare_digest(store: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    key, principal = store.create("dora")
    compared: list[tuple[Any, Any]] = []
    real = auth.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert store.verify(key) == principal
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert store.verify(wrong) is None
    digest = hashlib.sha256(secret_of(key).encode()).hexdigest()
    assert compared == [(digest, digest), (digest, hashlib.sha256(secret_of(wrong).encode()).hexdigest())]
    # The answer is compare_digest's: told "equal", the store accepts even a wrong secret.
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: True)
    assert store.verify(wrong) == principal


def test_a_wrong_secret_answers_401_over_http(keyed: Stack, store: KeyStore) -> None:
    key, _ = store.create("dora")
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert requests.get(base(keyed) + "/v1/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=10
                        ).status_code == 200
    assert_error(requests.get(base(keyed) + "/v1/jobs", headers={"Authorization": f"Bearer {wrong}"}, timeout=10),
                 401, "unauthorized")


# -- revocable ----------------------------------------------------------------------------------


def test_a_key_revoked_with_the_cli_answers_401_at_once(keyed: Stack, tmp_path: Path) -> None:
    operator = keyed.create_key("ops", operator=True)
    created = artforge_admin(keyed, operator, tmp_path, "create-key", "--tenant", "erin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith(KEY_PREFIX) and "shown this once" in created.stderr
    client = ApiClient(base(keyed), key)
    for _ in range(5):  # used, so anything that remembers keys has remembered this one
        assert client.get("/v1/jobs").status_code == 200
    listed = artforge_admin(keyed, operator, tmp_path, "keys", "--tenant", "erin", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [k["id"] for k in json.loads(listed.stdout)["items"]] == [key_id_of(key)]
    assert secret_of(key) not in listed.stdout

    revoked = artforge_admin(keyed, operator, tmp_path, "revoke-key", key_id_of(key))
    assert revoked.returncode == 0, revoked.stderr
    statuses = [client.get("/v1/jobs").status_code for _ in range(10)]
    assert statuses == [401] * 10, statuses
    assert_error(client.get("/v1/styles"), 401, "unauthorized")
    again = artforge_admin(keyed, operator, tmp_path, "revoke-key", key_id_of(key))
    assert again.returncode == 1 and "404" in again.stderr and f"no key {key_id_of(key)}" in again.stderr


def test_an_admin_key_manages_its_own_tenants_keys_and_no_one_elses(keyed: Stack) -> None:
    hank_admin = ApiClient(base(keyed), keyed.create_key("hank", admin=True))
    hank = ApiClient(base(keyed), keyed.create_key("hank"))
    ivys_key = keyed.create_key("ivy")

    made = hank_admin.post("/v1/tenants/hank/keys", json={"admin": False})
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["tenant"] == "hank" and not new["admin"] and not new["operator"]
    assert new["key"].startswith(f"{KEY_PREFIX}{new['id']}_")
    assert ApiClient(base(keyed), new["key"]).get("/v1/jobs").status_code == 200
    listed = hank_admin.get("/v1/tenants/hank/keys").json()["items"]
    assert new["id"] in {k["id"] for k in listed} and key_id_of(hank.key) in {k["id"] for k in listed}
    assert all(set(k) == {"id", "tenant", "admin", "operator", "created_at"} for k in listed), listed

    # Another tenant's keys are unknown to hank's admin key; an operator key is not its to make.
    assert_error(hank_admin.post("/v1/tenants/ivy/keys", json={}), 404, "not_found")
    assert_error(hank_admin.get("/v1/tenants/ivy/keys"), 404, "not_found")
    assert_error(hank_admin.delete(f"/v1/keys/{key_id_of(ivys_key)}"), 404, "not_found")
    assert ApiClient(base(keyed), ivys_key).get("/v1/jobs").status_code == 200
    assert_error(hank_admin.post("/v1/tenants/hank/keys", json={"operator": True}), 403, "forbidden")
    assert_error(hank_admin.post("/v1/tenants/hank/keys", json={"admin": "yes"}), 422, "invalid_parameters")
    assert_error(hank_admin.post("/v1/tenants/bad%20name/keys", json={}), 422, "invalid_parameters")
    # A plain key manages none, not even its own tenant's.
    assert_error(hank.post("/v1/tenants/hank/keys", json={}), 403, "forbidden")
    assert_error(hank.get("/v1/tenants/hank/keys"), 403, "forbidden")
    assert_error(hank.delete(f"/v1/keys/{new['id']}"), 403, "forbidden")

    assert hank_admin.delete(f"/v1/keys/{new['id']}").status_code == 204
    assert_error(ApiClient(base(keyed), new["key"]).get("/v1/jobs"), 401, "unauthorized")
    assert new["id"] not in {k["id"] for k in hank_admin.get("/v1/tenants/hank/keys").json()["items"]}


def test_the_server_side_command_makes_a_first_key_with_the_stacks_own_settings(keyed: Stack) -> None:
    created = server_admin(keyed, "keys", "create", "--tenant", "root-ops", "--operator")
    assert created.returncode == 0, created.stderr
    operator = ApiClient(base(keyed), created.stdout.strip())
    made = operator.post("/v1/tenants/judy/keys", json={"admin": True})  # any tenant's: an operator key
    assert made.status_code == 201, made.text
    assert made.json()["admin"] and ApiClient(base(keyed), made.json()["key"]).get("/v1/schedules").status_code == 200

    listed = server_admin(keyed, "keys", "list", "--tenant", "judy")
    assert listed.returncode == 0 and made.json()["id"] in listed.stdout and "admin" in listed.stdout
    assert server_admin(keyed, "keys", "revoke", made.json()["id"]).returncode == 0
    assert_error(ApiClient(base(keyed), made.json()["key"]).get("/v1/jobs"), 401, "unauthorized")
    unknown = server_admin(keyed, "keys", "revoke", made.json()["id"])
    assert unknown.returncode == 1 and f"no key {made.json()['id']}" in unknown.stderr
    refused = server_admin(keyed, "keys", "create", "--tenant", "no spaces")
    assert refused.returncode == 2 and "tenant name" in refused.stderr


# -- no raw key in Redis, no secret in any log line -----------------------------------------------


def every_value(client: redis.Redis) -> Iterator[tuple[str, str]]:
    """(key, its whole value as text) for every key in Redis, whatever its type."""
    for name in client.scan_iter(count=1000):
        kind = client.type(name)
        value: Any
        if kind == "string":
            value = client.get(name)
        elif kind == "hash":
            value = client.hgetall(name)
        elif kind == "list":
            value = client.lrange(name, 0, -1)
        elif kind == "set":
            value = client.smembers(name)
        elif kind == "zset":
            value = client.zrange(name, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(name)
        else:
            value = ""
        yield name, f"{kind} {value!r}"


def busy_day(stack: Stack, photo: Image.Image) -> tuple[list[str], str]:
    """Uploads, jobs, results, verification, bad and misplaced keys; returns the API keys used and the job."""
    admin = ApiClient(base(stack), stack.create_key("frank", admin=True))
    user = ApiClient(base(stack), stack.create_key("grace"))
    upload = user.upload_image(photo.resize((96, 96)), rights=OWN_RIGHTS)
    job = user.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]}, "params": {"style": "bold-ink"}},
                      headers={"Idempotency-Key": "day-1"})
    assert job.status_code == 202, job.text
    done = user.wait(job.json()["id"])
    assert done["status"] == "succeeded", done
    result = requests.get(done["results"][0]["download_url"], timeout=10)
    assert result.status_code == 200
    assert user.post("/v1/verify", files={"file": ("r.png", result.content)}).status_code == 200
    assert user.get("/v1/webhooks/secret").status_code == 200
    assert admin.get("/v1/protected-works").status_code == 200
    assert user.upload(b"not an image").status_code == 415
    url = base(stack)
    wrong = user.key[:-1] + ("A" if user.key[-1] != "A" else "B")
    misuses: list[dict[str, Any]] = [
        {"headers": {"Authorization": f"Bearer {wrong}"}},  # a real key id with a wrong secret
        {"headers": {"Authorization": f"Basic {user.key}"}},  # the right key, the wrong scheme
        {"headers": {"X-Api-Key": user.key}},  # the right key in a header nobody reads
        {"headers": {"X-Request-ID": user.key}},  # or as a request id
        {"params": {"api_key": user.key}},  # or in the query string
    ]
    for misuse in misuses:
        assert requests.get(url + "/v1/jobs", timeout=10, **misuse).status_code == 401
    assert requests.get(f"{url}/v1/jobs/{user.key}", headers={"Authorization": f"Bearer {user.key}"},
                        timeout=10).status_code == 404  # a key pasted into the path
    assert admin.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                         "params": {"style": "bold-ink"}}).status_code == 422  # not admin's upload
    return [admin.key, user.key, wrong], done["id"]


def test_no_raw_key_in_redis_and_no_secret_in_any_log(keyed: Stack, servers: Stack, photo: Image.Image) -> None:
    keys, job_id = busy_day(keyed, photo)
    # Every line is in its file: the worker's last line about the job, and the API's about a last request.
    logs_dir = keyed.workdir / "logs"
    eventually(lambda: f"job {job_id}: style_transfer attempt 1 succeeded" in
               (logs_dir / "worker-inference.log").read_text(errors="replace"), 30, "the worker's last line")
    last = f"last-request-{secrets.token_hex(4)}"
    assert requests.get(base(keyed) + "/v1/styles", headers={"X-Request-ID": last}, timeout=10).status_code == 401
    eventually(lambda: last in (logs_dir / "api.log").read_text(errors="replace"), 30, "the API's last line")
    settings = keyed.settings()
    needles = {f"API key {i}": key for i, key in enumerate(keys)}
    needles |= {f"API key {i}'s secret": secret_of(key) for i, key in enumerate(keys)}
    needles |= {"S3 secret key": settings.s3_secret_key, "watermark key": settings.watermark_key,
                "webhook secret": settings.webhook_secret}
    assert all(len(needle) >= 20 for needle in needles.values())

    client = redis_client(settings)
    scanned = 0
    for name, value in every_value(client):
        scanned += 1
        for what, needle in needles.items():
            if what.startswith("API key"):
                assert needle not in name and needle not in value, f"{what} stored raw in Redis key {name}"
    assert scanned > 20, "Redis should hold the day's keys, jobs and uploads"

    # This module's processes, and the session's Redis and S3 servers it used.
    logs = sorted((keyed.workdir / "logs").glob("*.log"))
    logs += [Path(servers.processes[name].log) for name in ("redis", "s3")]
    assert {path.stem for path in logs} >= {"api", "worker-inference", "redis", "s3"}
    lines = 0
    for path in logs:
        text = path.read_text(errors="replace")
        lines += text.count("\n")
        for what, needle in needles.items():
            assert needle not in text, f"{what} in {path.name}: {_around(text, needle)}"
    assert any("[REDACTED]" in path.read_text(errors="replace") for path in logs), \
        "the misplaced keys were logged masked (shared.logs.RedactFilter), so the check above saw them"
    print(f"\n{scanned} Redis keys and {lines} log lines in {len(logs)} files: no raw key, no secret")


def _around(text: str, needle: str) -> str:
    at = text.index(needle)
    return text[max(0, at - 200):at + len(needle) + 50].replace(needle, "<SECRET>")

