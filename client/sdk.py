"""A small Python SDK for the ArtForge HTTP API.

Invariants:
- every JSON endpoint method returns the decoded JSON body unchanged (a dict); binary endpoints
  (results, artifacts, thumbnails) are saved to files by ``download*`` methods;
- any non-2xx answer raises ``ApiError``; a failure to reach the server raises ``ServiceUnreachable``;
- the bearer key is only ever sent to the configured API origin, never to presigned ``download_url``s.
"""

from __future__ import annotations

import codecs
import json
import mimetypes
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from client.config import ClientConfig

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
# A poll that meets a 503 waits the server's Retry-After, capped so a long value cannot stall ``wait``.
MAX_RETRY_AFTER_S = 10.0

# A job's event stream sends a keep-alive every ~15 s: a minute of silence means it is broken.
EVENTS_READ_TIMEOUT_S = 60.0
# Longest pause before reconnecting to an event stream, whatever its ``retry:`` asks for.
MAX_RECONNECT_DELAY_S = 5.0

Job = dict[str, Any]
ProgressCallback = Callable[[Job], None]
# {"event": "status" | "progress" | "artifact" | "end" | "poll", "id": str | None, "data": {...}}
JobEvent = dict[str, Any]
EventCallback = Callable[[JobEvent], None]


class ArtForgeError(Exception):
    """Base class of every error the SDK raises."""


class ApiError(ArtForgeError):
    """The API answered with a non-2xx status; fields come from its ``{"error": {...}}`` body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        """Build the error from any response, JSON error shape or not (HTML, empty, truncated)."""
        status = response.status_code
        code = f"http_{status}"
        message = response.reason or "HTTP error"
        details: dict[str, Any] = {}
        error = _error_object(response)
        if error is not None:
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
            details = error["details"] if isinstance(error.get("details"), dict) else {}
        elif response.text.strip():
            message = f"{message}: {response.text.strip()[:200]}"
        return cls(status, code, message, details, _retry_after_seconds(response))


class ServiceUnreachable(ArtForgeError):
    """The request never got an HTTP answer (connection refused, DNS failure, timeout)."""


class JobTimeout(ArtForgeError):
    """``wait`` gave up before the job reached a terminal state; ``last_job`` is the last poll."""

    def __init__(self, job_id: str, timeout: float, last_job: Job | None) -> None:
        status = last_job.get("status") if last_job else "unknown"
        super().__init__(f"job {job_id} still {status} after {timeout:g}s")
        self.job_id = job_id
        self.timeout = timeout
        self.last_job = last_job


class ArtForgeClient:
    """Client for one ArtForge API. Thread-safety is that of the ``requests.Session`` given."""

    def __init__(
        self,
        url: str,
        api_key: str,
        timeout: float = 30,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    @classmethod
    def from_config(cls, config: ClientConfig, **kwargs: Any) -> ArtForgeClient:
        """A client for ``config.url`` with ``config.api_key``; ``kwargs`` go to the constructor."""
        return cls(config.url, config.api_key, **kwargs)

    def __repr__(self) -> str:
        return f"ArtForgeClient(url={self.url!r})"

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> ArtForgeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- endpoints ---------------------------------------------------------------------------

    def upload(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes,
        filename: str | None = None,
        *,
        licence: str | None = None,
        rights_holder: str | None = None,
        requester_holds_rights: bool = False,
    ) -> dict:
        """``POST /v1/uploads``: a file path (str or PathLike) or raw image bytes.

        Style references and images to restore need a rights declaration: ``licence`` and
        ``rights_holder``, or ``requester_holds_rights=True`` (you hold the rights yourself).
        """
        name, content, content_type = _file_part(path_or_bytes, filename, "upload.png")
        form = {"licence": licence, "rights_holder": rights_holder,
                "requester_holds_rights": "true" if requester_holds_rights else None}
        return self._json("POST", "/v1/uploads", files={"file": (name, content, content_type)},
                          data={k: v for k, v in form.items() if v is not None})

    def verify(self, path_or_bytes: str | os.PathLike[str] | bytes, filename: str | None = None) -> dict:
        """``POST /v1/verify``: whether an image came from this service, from which job (your own
        results only), and the evidence (C2PA, sha256, watermark, perceptual hash)."""
        name, content, content_type = _file_part(path_or_bytes, filename, "image.png")
        return self._json("POST", "/v1/verify", files={"file": (name, content, content_type)})

    def provenance_chain(self, start: int = 0, limit: int | None = None) -> dict:
        """``GET /v1/provenance/chain``: whether your provenance records are intact, signed and linked."""
        query = {"start": start, **({"limit": limit} if limit is not None else {})}
        return self._json("GET", "/v1/provenance/chain", params=query)

    def add_protected_work(self, path_or_bytes: str | os.PathLike[str] | bytes, title: str,
                           rights_holder: str | None = None, note: str | None = None) -> dict:
        """``POST /v1/protected-works`` (admin): list a work; near copies of it are refused as inputs."""
        name, content, content_type = _file_part(path_or_bytes, None, "work.png")
        form = {"title": title, "rights_holder": rights_holder, "note": note}
        return self._json("POST", "/v1/protected-works", files={"file": (name, content, content_type)},
                          data={k: v for k, v in form.items() if v is not None})

    def protected_works(self) -> dict:
        """``GET /v1/protected-works`` (admin): ``{"items": [...]}``."""
        return self._json("GET", "/v1/protected-works")

    def delete_protected_work(self, work_id: str) -> None:
        """``DELETE /v1/protected-works/<id>`` (admin)."""
        self._send("DELETE", f"{self.url}/v1/protected-works/{_segment(work_id)}", auth=True).close()

    def protected_work_refusals(self, limit: int | None = None) -> dict:
        """``GET /v1/protected-works/refusals`` (admin): refused inputs, newest first."""
        return self._json("GET", "/v1/protected-works/refusals",
                          params={"limit": limit} if limit is not None else None)

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str] | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
    ) -> Job:
        """``POST /v1/jobs``; with ``idempotency_key`` a retried submit returns the same job;
        ``webhook_url`` is called (signed) when the job ends."""
        body: dict[str, Any] = {"kind": kind, "params": dict(params or {}), "inputs": dict(inputs or {}),
                                "priority": priority}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", "/v1/jobs", json=body, headers=headers)

    def analysis_report(self, job: Mapping[str, Any]) -> dict:
        """The JSON report of a finished ``analysis`` job (its result with role ``report``)."""
        for result in job.get("results") or []:
            if result.get("content_type") == "application/json":
                response = self._send("GET", self._on_api_origin(result["url"]), auth=True)
                body = response.json()
                if isinstance(body, dict):
                    return body
        raise ApiError(404, "not_found", f"job {job.get('id')} has no report")

    def similar_works(self, upload_id: str, k: int = 8) -> dict:
        """``GET /v1/works/similar``: your uploads and results most like one of your uploads."""
        return self._json("GET", "/v1/works/similar", params={"upload": upload_id, "k": k})

    def job(self, job_id: str) -> Job:
        """``GET /v1/jobs/<id>``."""
        return self._json("GET", f"/v1/jobs/{_segment(job_id)}")

    def jobs(
        self,
        status: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict:
        """``GET /v1/jobs``: one page, ``{"items": [...], "next_cursor": str | None}``."""
        query = {"status": status, "kind": kind, "limit": limit, "cursor": cursor}
        return self._json("GET", "/v1/jobs", params={k: v for k, v in query.items() if v is not None})

    def cancel(self, job_id: str) -> Job:
        """``POST /v1/jobs/<id>/cancel``."""
        return self._json("POST", f"/v1/jobs/{_segment(job_id)}/cancel")

    def styles(self) -> dict:
        """``GET /v1/styles``: ``{"items": [{"name", "description", "thumbnail_url"}]}``."""
        return self._json("GET", "/v1/styles")

    def models(self) -> dict:
        """``GET /v1/models``: ``{"items": [{"name", "versions", "promoted_version", "labels", ...}]}``."""
        return self._json("GET", "/v1/models")

    def model(self, name: str) -> dict:
        """``GET /v1/models/<name>``: versions, model cards (with metrics), promotion history."""
        return self._json("GET", f"/v1/models/{_segment(name)}")

    def create_dataset(self, zip_path_or_bytes: str | os.PathLike[str] | bytes, licence: str,
                       name: str | None = None) -> dict:
        """``POST /v1/datasets``: a zip of images (one folder per label, optional) and its licence."""
        if isinstance(zip_path_or_bytes, bytes | bytearray):
            content = bytes(zip_path_or_bytes)
        else:
            content = Path(zip_path_or_bytes).read_bytes()
        form = {"licence": licence, **({"name": name} if name else {})}
        return self._json("POST", "/v1/datasets", files={"file": ("dataset.zip", content, "application/zip")},
                          data=form)

    def dataset(self, dataset_id: str) -> dict:
        """``GET /v1/datasets/<id>``: images, labels, newest version and its manifest hash."""
        return self._json("GET", f"/v1/datasets/{_segment(dataset_id)}")

    def add_dataset_images(self, dataset_id: str, path_or_bytes: str | os.PathLike[str] | bytes,
                           filename: str | None = None, label: str | None = None) -> dict:
        """``POST /v1/datasets/<id>/images``: a zip laid out as for a new dataset, or one image
        (with its ``label`` in a labeled dataset). Images already there are skipped; the answer
        says how many were ``added`` and how many were ``duplicates``."""
        name, content, content_type = _file_part(path_or_bytes, filename, "images.zip")
        return self._json("POST", f"/v1/datasets/{_segment(dataset_id)}/images",
                          files={"file": (name, content, content_type)}, data={"label": label} if label else None)

    def dataset_versions(self, dataset_id: str) -> dict:
        """``GET /v1/datasets/<id>/versions``: ``{"items": [...]}``, oldest first."""
        return self._json("GET", f"/v1/datasets/{_segment(dataset_id)}/versions")

    def promote(self, name: str, version: int) -> dict:
        """``POST /v1/models/<name>/promote`` (admin): serve ``version`` (a promotion or a rollback)."""
        return self._json("POST", f"/v1/models/{_segment(name)}/promote", json={"version": version})

    def schedules(self) -> dict:
        """``GET /v1/schedules`` (admin): ``{"items": [...]}``."""
        return self._json("GET", "/v1/schedules")

    def schedule(self, name: str) -> dict:
        """``GET /v1/schedules/<name>`` (admin): the schedule, its next run and recent runs."""
        return self._json("GET", f"/v1/schedules/{_segment(name)}")

    def put_schedule(self, name: str, model: str, dataset: str, *, every_s: int | None = None,
                     cron: str | None = None, training: Mapping[str, Any] | None = None,
                     init_from: str | None = None, promotion_margin: float | None = None,
                     enabled: bool = True) -> dict:
        """``PUT /v1/schedules/<name>`` (admin): retrain ``model`` on ``dataset`` every ``every_s``
        seconds or on a five-field UTC ``cron``; creates or replaces the schedule."""
        body: dict[str, Any] = {"model": model, "dataset": dataset, "training": dict(training or {}),
                                "enabled": enabled}
        optional = {"every_s": every_s, "cron": cron, "init_from": init_from, "promotion_margin": promotion_margin}
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._json("PUT", f"/v1/schedules/{_segment(name)}", json=body)

    def delete_schedule(self, name: str) -> None:
        """``DELETE /v1/schedules/<name>`` (admin)."""
        self._send("DELETE", f"{self.url}/v1/schedules/{_segment(name)}", auth=True).close()

    def tenant_policy(self, tenant: str) -> dict:
        """``GET /v1/tenants/<tenant>/policy`` (admin): the tenant's results retention."""
        return self._json("GET", f"/v1/tenants/{_segment(tenant)}/policy")

    def put_tenant_policy(self, tenant: str, results_retention_days: float | None) -> dict:
        """``PUT /v1/tenants/<tenant>/policy`` (admin): keep results this many days (0: forever;
        None: the service default)."""
        return self._json("PUT", f"/v1/tenants/{_segment(tenant)}/policy",
                          json={"results_retention_days": results_retention_days})

    def create_key(self, tenant: str, *, admin: bool = False, operator: bool = False) -> dict:
        """``POST /v1/tenants/<tenant>/keys`` (admin key; another tenant's: operator key): a new key,
        whose full value (``key``) this answer alone shows."""
        return self._json("POST", f"/v1/tenants/{_segment(tenant)}/keys", json={"admin": admin, "operator": operator})

    def keys(self, tenant: str) -> dict:
        """``GET /v1/tenants/<tenant>/keys`` (admin): the tenant's key ids and roles, never a secret."""
        return self._json("GET", f"/v1/tenants/{_segment(tenant)}/keys")

    def revoke_key(self, key_id: str) -> None:
        """``DELETE /v1/keys/<key id>`` (admin): the key answers 401 from its next request on."""
        self._send("DELETE", f"{self.url}/v1/keys/{_segment(key_id)}", auth=True).close()

    def protected_work(self, work_id: str) -> dict:
        """``GET /v1/protected-works/<id>`` (admin)."""
        return self._json("GET", f"/v1/protected-works/{_segment(work_id)}")

    def job_events(self, job_id: str, last_event_id: str | None = None, *, timeout: float | None = None,
                   reconnect: bool = True) -> Iterator[JobEvent]:
        """``GET /v1/jobs/<id>/events``: the job's events as ``{"event", "id", "data"}`` (``data``
        decoded), from its first one (or after ``last_event_id``) until the ``end`` event, whose
        data is the final job record.

        A stream the server closes without ``end`` (streams are time-bounded) is resumed with
        ``Last-Event-ID`` when ``reconnect``, else the iterator ends. Raises ``ApiError`` (404 for
        unknown and foreign jobs), ``ServiceUnreachable`` when the stream breaks, and ``JobTimeout``
        once ``timeout`` seconds have passed without ``end``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        retry_s = 1.0
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {})}
            read_timeout = EVENTS_READ_TIMEOUT_S if deadline is None else min(
                EVENTS_READ_TIMEOUT_S, max(deadline - time.monotonic(), 0.1))
            with self._send("GET", f"{self.url}/v1/jobs/{_segment(job_id)}/events", auth=True, headers=headers,
                            stream=True, timeout=(self.timeout, read_timeout)) as response:
                if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                    raise ApiError(response.status_code, "invalid_response", "the API did not answer with events")
                try:
                    for event in parse_sse(_until(response.iter_content(chunk_size=None), deadline, job_id, timeout)):
                        if event.retry is not None:
                            retry_s = min(event.retry / 1000, MAX_RECONNECT_DELAY_S)
                        if not event.data:
                            continue
                        last_event_id = event.id or last_event_id
                        yield {"event": event.event, "id": event.id, "data": json.loads(event.data)}
                        if event.event == "end":
                            return
                except (requests.RequestException, ValueError) as exc:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise JobTimeout(job_id, timeout or 0.0, None) from exc
                    raise ServiceUnreachable(f"the event stream of job {job_id} broke: {exc}") from exc
            if not reconnect:
                return
            time.sleep(retry_s)

    def style_thumbnail(self, name: str, path: str | os.PathLike[str]) -> Path:
        """``GET /v1/styles/<name>/thumbnail`` saved to ``path`` (PNG)."""
        return self._save(f"{self.url}/v1/styles/{_segment(name)}/thumbnail", Path(path))

    def download_artifact(self, job_id: str, name: str, path: str | os.PathLike[str]) -> Path:
        """``GET /v1/jobs/<id>/artifacts/<name>`` (a training run's sample grid, say) saved to ``path``."""
        return self._save(f"{self.url}/v1/jobs/{_segment(job_id)}/artifacts/{_segment(name)}", Path(path))

    def health(self) -> dict:
        """``GET /healthz`` (no auth)."""
        return self._probe("/healthz")

    def ready(self) -> dict:
        """``GET /readyz`` (no auth); a not-ready server answers 503, raised as ``ApiError``."""
        return self._probe("/readyz")

    # --- helpers built on the endpoints ------------------------------------------------------

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Poll the job until it is succeeded, failed or canceled and return that final record.

        ``on_progress`` gets every polled record, the final one included. A 503 answer is
        retried after its Retry-After; any other ``ApiError`` propagates. Raises ``JobTimeout``
        once ``timeout`` seconds (None: no limit) have passed without a terminal state.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_job: Job | None = None
        while True:
            pause = poll_interval
            try:
                last_job = self.job(job_id)
            except ApiError as exc:
                if exc.status != 503:
                    raise
                pause = min(exc.retry_after or poll_interval, MAX_RETRY_AFTER_S)
            else:
                if on_progress is not None:
                    on_progress(last_job)
                if last_job.get("status") in TERMINAL_STATUSES:
                    return last_job
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise JobTimeout(job_id, timeout or 0.0, last_job)
                pause = min(pause, remaining)
            time.sleep(pause)

    def follow(self, job_id: str, timeout: float | None = None, on_event: EventCallback | None = None,
               poll_interval: float = 0.5) -> Job:
        """Wait for the job over its event stream and return its final record.

        ``on_event`` gets every event (see ``job_events``). Should the stream break (connection
        lost, no event stream, a 5xx), the wait goes on by polling, and ``on_event`` then gets
        each polled record as ``{"event": "poll", "id": None, "data": event_data(record)}``.
        Raises ``JobTimeout`` after ``timeout`` seconds (None: no limit) without a terminal state.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for event in self.job_events(job_id, timeout=timeout):
                if on_event is not None:
                    on_event(event)
                if event["event"] == "end":
                    final = event["data"]
                    return final if "results" in final else self.job(job_id)
        except JobTimeout as exc:
            raise JobTimeout(job_id, timeout or 0.0, self._last_record(job_id)) from exc
        except ServiceUnreachable:
            pass
        except ApiError as exc:
            if exc.status < 500 and exc.code != "invalid_response":
                raise
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)

        def polled(job: Job) -> None:
            if on_event is not None:
                on_event({"event": "poll", "id": None, "data": event_data(job)})

        return self.wait(job_id, timeout=remaining, poll_interval=poll_interval, on_progress=polled)

    def _last_record(self, job_id: str) -> Job | None:
        try:
            return self.job(job_id)
        except ArtForgeError:
            return None

    def download(self, job: Mapping[str, Any] | str, directory: str | os.PathLike[str]) -> list[Path]:
        """Save each result of ``job`` (a job record, or an id to fetch) into ``directory``.

        Writes ``<job_id>_<index>.png`` (``.json`` for a report) and
        ``<job_id>_<index>.provenance.json`` per result, in that order, fetched from the
        authenticated ``url`` / ``provenance_url``. A file appears only once complete. Returns the
        written paths; a job without results yields [].
        """
        record = self.job(job) if isinstance(job, str) else job
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for position, result in enumerate(record.get("results") or []):
            stem = f"{record['id']}_{result.get('index', position)}"
            suffix = ".json" if result.get("content_type") == "application/json" else ".png"
            written.append(self._save(result["url"], target / f"{stem}{suffix}"))
            written.append(self._save(result["provenance_url"], target / f"{stem}.provenance.json"))
        return written

    # --- transport ---------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> dict:
        """Send a request to ``path`` under the base URL and decode its JSON object body."""
        response = self._send(method, self.url + path, auth=auth, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "invalid_response", "the API answered with non-JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(response.status_code, "invalid_response", "the API answered with a non-object")
        return body

    def _probe(self, path: str) -> dict:
        """A health probe's JSON body, or ``{"status": <text>}`` when it answers plain text."""
        response = self._send("GET", self.url + path, auth=False)
        try:
            body = response.json()
        except ValueError:
            return {"status": response.text.strip() or "ok"}
        return body if isinstance(body, dict) else {"status": body}

    def _save(self, link: str, path: Path) -> Path:
        """Stream an authenticated API link into ``path`` via a ``.part`` file, then rename."""
        partial = path.with_name(path.name + ".part")
        with self._send("GET", self._on_api_origin(link), auth=True, stream=True) as response:
            with partial.open("wb") as sink:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    sink.write(chunk)
        partial.replace(path)
        return path

    def _send(
        self,
        method: str,
        url: str,
        *,
        auth: bool,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP exchange; raises ``ServiceUnreachable`` or ``ApiError``, else the 2xx response."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        if auth:
            all_headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            kwargs.setdefault("timeout", self.timeout)
            response = self._session.request(method, url, headers=all_headers, **kwargs)
        except requests.RequestException as exc:
            raise ServiceUnreachable(f"cannot reach ArtForge at {self.url}: {exc}") from exc
        if not response.ok:
            error = ApiError.from_response(response)
            response.close()
            raise error
        return response

    def _on_api_origin(self, link: str) -> str:
        """The link with its scheme and host replaced by the configured API's.

        Result links are built by the server from its public URL, which may name the same API
        differently (localhost vs 127.0.0.1, an external host name). Fetching the same path from
        the configured origin keeps the bearer key on the server the user chose to trust.
        """
        api = urlsplit(self.url)
        target = urlsplit(link)
        return urlunsplit((api.scheme, api.netloc, target.path, target.query, ""))


def event_data(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job record in the shape of a job event's data (for progress shown from polling)."""
    progress = job.get("progress") or {}
    return {"job_id": job.get("id"), "type": "poll", "status": job.get("status"), "stage": progress.get("stage"),
            "fraction": progress.get("fraction"), "message": progress.get("message") or "", "eta_s": None,
            "preview_url": None}


# --- server-sent events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event of a text/event-stream: its type, data (lines joined by "\n"), and
    the ``id:`` and ``retry:`` fields it carried (None when absent)."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


_LINE_END = re.compile(r"\r\n|\r|\n")


def sse_lines(chunks: Iterable[bytes | str]) -> Iterator[str]:
    """The lines of a stream that arrives in arbitrary pieces: UTF-8 decoded, split at CRLF, LF or
    CR (a CR at the end of a piece waits for the next, which may start with its LF). A last line
    without its line end is incomplete and dropped."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending, first = "", True
    for chunk in chunks:
        pending += decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if first and pending:
            pending, first = pending.removeprefix("\ufeff"), False
        start = 0
        for end in _LINE_END.finditer(pending):
            if end.group() == "\r" and end.end() == len(pending):
                break
            yield pending[start:end.start()]
            start = end.end()
        pending = pending[start:]
    pending += decoder.decode(b"", final=True)
    if pending.endswith("\r"):
        yield pending[:-1]


def parse_sse(chunks: Iterable[bytes | str]) -> Iterator[ServerSentEvent]:
    """Events of a text/event-stream, as the HTML standard's parser dispatches them: a blank line
    ends an event; ``:`` lines are comments (keep-alives); one space after a field's colon is
    dropped; an event without data lines is not dispatched, but its ``retry`` is still reported."""
    event, event_id, retry = "", None, None
    data: list[str] = []
    for line in sse_lines(chunks):
        if not line:
            if data or retry is not None:
                yield ServerSentEvent(event or "message", "\n".join(data), event_id, retry)
            event, data, event_id, retry = "", [], None, None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)


def _until(chunks: Iterable[bytes], deadline: float | None, job_id: str, timeout: float | None) -> Iterator[bytes]:
    """``chunks`` until ``deadline`` (monotonic) passes; then ``JobTimeout``. Keep-alives arrive
    every ~15 s, so even a quiet stream is checked that often."""
    for chunk in chunks:
        if deadline is not None and time.monotonic() > deadline:
            raise JobTimeout(job_id, timeout or 0.0, None)
        yield chunk
    if deadline is not None and time.monotonic() > deadline:
        raise JobTimeout(job_id, timeout or 0.0, None)


def _file_part(path_or_bytes: str | os.PathLike[str] | bytes, filename: str | None,
               default_name: str) -> tuple[str, bytes, str]:
    """(name, bytes, content type) of a multipart file given as a path or as bytes."""
    if isinstance(path_or_bytes, bytes | bytearray):
        content = bytes(path_or_bytes)
        name = filename or default_name
    else:
        path = Path(path_or_bytes)
        content = path.read_bytes()
        name = filename or path.name
    return name, content, mimetypes.guess_type(name)[0] or "application/octet-stream"


def _segment(value: str) -> str:
    """A path segment with every character that could change the path (``/``, ``?``, ``#``) escaped."""
    return quote(value, safe="")


def _error_object(response: requests.Response) -> dict[str, Any] | None:
    """The ``error`` object of an error body, or None when the body is not that shape."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After in seconds when given as a number (the form the API sends), else None."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
