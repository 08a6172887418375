"""The real ``artforge`` command line, run as a subprocess against the real stack: upload, submit,
wait with a progress bar fed by the event stream (or by polling when the stream is unavailable),
download, ``--json`` answers that parse, and the admin commands' error paths."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.conftest import ApiClient, image_bytes
from workers.data.procedural import make_dataset


def artforge(*argv: str, client: ApiClient | None = None, cwd: Path, url: str | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the CLI with only the configuration given here (environment, or ``cwd``'s .artforge/env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFORGE_")}
    if client is not None:
        env.update(ARTFORGE_URL=url or client.base, ARTFORGE_API_KEY=client.key)
    return subprocess.run([sys.executable, "-m", "client.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def answer(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(result: subprocess.CompletedProcess[str], status: int, code: str | None = None) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"{status} " in result.stderr and (code is None or code in result.stderr), result.stderr


@pytest.fixture
def photo_file(tmp_path: Path, photo: Image.Image) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(photo, "JPEG"))
    return path


def test_upload_submit_wait_download_with_progress_and_json(client: ApiClient, photo_file: Path,
                                                            tmp_path: Path) -> None:
    upload = answer(artforge("--json", "upload", str(photo_file), client=client, cwd=tmp_path))
    assert upload["width"] == 512 and len(upload["id"]) == 32

    job = answer(artforge("submit", "style_transfer", "-i", f"content={upload['id']}", "-p", "style=starry-swirl",
                          "-p", "max_side=256", "--json", client=client, cwd=tmp_path))
    assert job["status"] == "queued" and job["params"]["max_side"] == 256

    waited = artforge("wait", job["id"], client=client, cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr
    assert f"{job['id']}  style_transfer  succeeded" in waited.stdout
    assert "100%" in waited.stderr and "stylizing" in waited.stderr  # the bar showed the stages
    assert "polling" not in waited.stderr

    final = answer(artforge("wait", job["id"], "--json", client=client, cwd=tmp_path))
    assert final["status"] == "succeeded" and len(final["results"]) == 1

    lines = artforge("events", job["id"], "--json", client=client, cwd=tmp_path).stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0]["event"] == "status" and events[0]["data"]["status"] == "queued"
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "succeeded"
    human = artforge("events", job["id"], "--last-event-id", events[-3]["id"], client=client, cwd=tmp_path)
    assert human.returncode == 0 and human.stdout.splitlines()[-1].startswith("end ")

    paths = answer(artforge("download", job["id"], "-o", str(tmp_path / "out"), "--json", client=client,
                            cwd=tmp_path))
    png, record = (Path(p) for p in paths)
    assert Image.open(png).size == (256, 256)
    assert json.loads(record.read_text())["job_id"] == job["id"]

    # Configuration from .artforge/env alone (a parent folder's), no environment variables.
    (tmp_path / ".artforge").mkdir()
    (tmp_path / ".artforge" / "env").write_text(f"ARTFORGE_URL={client.base}\nARTFORGE_API_KEY={client.key}\n")
    (tmp_path / "sub").mkdir()
    status = answer(artforge("status", job["id"], "--json", cwd=tmp_path / "sub"))
    assert status["id"] == job["id"] and status["status"] == "succeeded"


@pytest.fixture
def no_events_proxy(client: ApiClient) -> Iterator[str]:
    """The API behind a proxy whose event streams are broken (502): clients must poll."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0].endswith("/events"):
                self.send_response(502)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"bad gateway")
                return
            upstream = requests.get(client.base + self.path, timeout=30,
                                    headers={"Authorization": self.headers.get("Authorization", "")})
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_wait_polls_when_the_event_stream_is_unavailable(client: ApiClient, photo_file: Path, tmp_path: Path,
                                                         no_events_proxy: str) -> None:
    upload = answer(artforge("--json", "upload", str(photo_file), client=client, cwd=tmp_path))
    job = answer(artforge("--json", "submit", "style_transfer", "-i", f"content={upload['id']}", "-p",
                          "style=starry-swirl", "-p", "max_side=256", client=client, cwd=tmp_path))
    waited = artforge("wait", job["id"], client=client, url=no_events_proxy, cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr
    assert "polling instead" in waited.stderr and "100%" in waited.stderr
    assert "succeeded" in waited.stdout


def test_unknown_and_foreign_jobs_fail_cleanly(client: ApiClient, other_client: ApiClient, tmp_path: Path) -> None:
    mine = client.submit({"kind": "style_transfer", "inputs": {"content": client.upload_image(
        Image.new("RGB", (64, 64), (200, 40, 40)))["id"]}, "params": {"style": "starry-swirl"}}).json()["id"]
    for command in (("wait", mine), ("events", mine), ("status", mine), ("cancel", mine)):
        refused(artforge(*command, client=other_client, cwd=tmp_path), 404, "not_found")
    for command in (("wait", "f" * 32), ("events", "f" * 32), ("status", "f" * 32)):
        refused(artforge(*command, client=other_client, cwd=tmp_path), 404, "not_found")


def test_schedule_commands_and_their_error_paths(client: ApiClient, admin_client: ApiClient, tmp_path: Path) -> None:
    assert "items" in answer(artforge("schedules", "list", "--json", client=admin_client, cwd=tmp_path))
    refused(artforge("schedules", "list", client=client, cwd=tmp_path), 403, "forbidden")
    refused(artforge("schedules", "put", "nightly", "--model", "no-such-model", "--dataset", "procedural",
                     "--every", "3600", "-t", "steps=10", client=admin_client, cwd=tmp_path), 422, "unknown_model")
    refused(artforge("schedules", "put", "Bad_Name", "--model", "abstract", "--dataset", "procedural", "--cron",
                     "0 3 * * *", client=admin_client, cwd=tmp_path), 422)
    refused(artforge("schedules", "show", "no-such-schedule", client=admin_client, cwd=tmp_path), 404)
    refused(artforge("schedules", "delete", "no-such-schedule", client=admin_client, cwd=tmp_path), 404)
    usage = artforge("schedules", "put", "x", "--model", "m", "--dataset", "procedural", client=admin_client,
                     cwd=tmp_path)
    assert usage.returncode == 2 and "--every" in usage.stderr


def test_model_and_policy_commands(client: ApiClient, admin_client: ApiClient, tmp_path: Path) -> None:
    assert isinstance(answer(artforge("models", "list", "--json", client=client, cwd=tmp_path))["items"], list)
    refused(artforge("models", "show", "no-such-model", client=client, cwd=tmp_path), 404)
    refused(artforge("models", "promote", "no-such-model", "1", client=admin_client, cwd=tmp_path), 404)

    policy = answer(artforge("policy", "set", "cli-tenant", "30", "--json", client=admin_client, cwd=tmp_path))
    assert policy == {"tenant": "cli-tenant", "results_retention_days": 30.0,
                      "effective_results_retention_days": 30.0}
    shown = artforge("policy", "show", "cli-tenant", client=admin_client, cwd=tmp_path)
    assert shown.returncode == 0 and "30 days" in shown.stdout
    reset = answer(artforge("policy", "set", "cli-tenant", "default", "--json", client=admin_client, cwd=tmp_path))
    assert reset["results_retention_days"] is None
    refused(artforge("policy", "show", "cli-tenant", client=client, cwd=tmp_path), 403)

    health = answer(artforge("health", "--json", client=client, cwd=tmp_path))
    assert set(health) == {"health", "ready"}
    styles = answer(artforge("styles", "--json", client=client, cwd=tmp_path))
    name = styles["items"][0]["name"]
    thumbnail = answer(artforge("thumbnail", name, "-o", str(tmp_path / "t.png"), "--json", client=client,
                                cwd=tmp_path))
    assert Image.open(thumbnail["path"]).format == "PNG"


def labeled_zip(tmp_path: Path) -> tuple[Path, Path]:
    """A two-label dataset zip, and one more image of the first label."""
    images, labels = make_dataset(per_style=6, size=48, seed=5)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            if label in (0, 3):
                archive.writestr(f"{'grid' if label == 0 else 'drips'}/{i}.png", image_bytes(Image.fromarray(pixels)))
    (tmp_path / "set.zip").write_bytes(buffer.getvalue())
    extra, _ = make_dataset(per_style=7, size=48, seed=5)
    (tmp_path / "one.png").write_bytes(image_bytes(Image.fromarray(extra[6])))  # style 0's 7th image: new
    return tmp_path / "set.zip", tmp_path / "one.png"


def test_dataset_commands(client: ApiClient, other_client: ApiClient, tmp_path: Path) -> None:
    archive, one = labeled_zip(tmp_path)
    dataset = answer(artforge("datasets", "create", str(archive), "--licence", "CC0-1.0", "--name", "cli",
                              "--json", client=client, cwd=tmp_path))
    assert dataset["images"] == 12 and dataset["version"] == 1

    grown = answer(artforge("datasets", "add", dataset["id"], str(one), "--label", "grid", "--json", client=client,
                            cwd=tmp_path))
    assert (grown["added"], grown["duplicates"], grown["version"]) == (1, 0, 2)
    again = artforge("datasets", "add", dataset["id"], str(one), "--label", "grid", client=client, cwd=tmp_path)
    assert again.returncode == 0 and "added 0, skipped 1 duplicates" in again.stdout

    versions = answer(artforge("datasets", "versions", dataset["id"], "--json", client=client, cwd=tmp_path))
    assert [v["images"] for v in versions["items"]] == [12, 13]
    assert answer(artforge("datasets", "show", dataset["id"], "--json", client=client, cwd=tmp_path))["images"] == 13

    refused(artforge("datasets", "show", dataset["id"], client=other_client, cwd=tmp_path), 404)
    refused(artforge("datasets", "add", "procedural", str(one), client=client, cwd=tmp_path), 409, "builtin_dataset")
    refused(artforge("datasets", "create", str(one), "--licence", "CC0-1.0", client=client, cwd=tmp_path), 415)
    refused(artforge("datasets", "add", dataset["id"], str(one), client=client, cwd=tmp_path), 422)
