"""The ``artforge`` command line: every API endpoint as a subcommand.

Exit codes: 0 success; 1 an API error, an unreachable server, a wait timeout, or a job that
ended failed/canceled; 2 a configuration or usage error; 130 interrupted.
With ``--json`` stdout carries only the JSON answer, so scripts can parse it; notes go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from client.config import ConfigError, load_config
from client.sdk import ArtForgeClient, ArtForgeError, Job, JobEvent

FAILED_STATUSES = frozenset({"failed", "canceled"})


# --- value parsing for -p/-i ------------------------------------------------------------------


def parse_value(raw: str) -> Any:
    """A JSON literal if ``raw`` parses as one (``0.8``, ``true``, ``null``, ``[1, 2]``), else the string.

    NaN and Infinity are not JSON, so they stay strings.
    """
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return raw


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``key=value`` at the first ``=``; the key must be non-empty, the value may be empty."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value


def params_from_assignments(assignments: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``-p`` pairs as a params object, values JSON-parsed; a repeated key keeps its last value."""
    return {key: parse_value(value) for key, value in assignments}


def rights_options(args: argparse.Namespace) -> dict[str, Any]:
    """The upload rights declaration given with --licence/--rights-holder/--own-rights."""
    return {"licence": getattr(args, "licence", None), "rights_holder": getattr(args, "rights_holder", None),
            "requester_holds_rights": bool(getattr(args, "own_rights", False))}


def inputs_from_assignments(client: ArtForgeClient, assignments: Sequence[tuple[str, str]],
                            rights: dict[str, Any] | None = None) -> dict[str, str]:
    """``-i`` pairs as an inputs object: an existing file is uploaded (with ``rights``, the
    declaration style references and images to restore need) and its id used, else the value is
    taken as an upload id as is."""
    inputs: dict[str, str] = {}
    for role, value in assignments:
        if Path(value).is_file():
            upload = client.upload(value, **(rights or {}))
            _note(f"uploaded {value} as {role}: {upload['id']}")
            inputs[role] = upload["id"]
        else:
            inputs[role] = value
    return inputs


# --- progress ---------------------------------------------------------------------------------


class JobProgress:
    """Job progress on stderr, fed with job events (``show_event``, for ``client.follow``) or with
    polled job records (call it, for ``client.wait``). A terminal gets a tqdm bar (``progress_for``);
    anything else, a log or a pipe, gets ``JobProgressLines``."""

    def __init__(self) -> None:
        self._polling = False

    def __call__(self, job: Job) -> None:
        progress = job.get("progress") or {}
        self._show(job.get("status"), progress.get("fraction"), progress.get("stage"), progress.get("message"), None)

    def show_event(self, event: JobEvent) -> None:
        data = event.get("data") or {}
        if event.get("event") == "end":
            self(data)
            return
        if event.get("event") == "poll" and not self._polling:
            self._polling = True
            self._note("artforge: the event stream is unavailable; polling instead")
        self._show(data.get("status"), data.get("fraction"), data.get("stage"), data.get("message"), data.get("eta_s"))

    def close(self) -> None:
        pass

    def _show(self, status: Any, fraction: Any, stage: Any, message: Any, eta_s: Any) -> None:
        raise NotImplementedError

    def _note(self, line: str) -> None:
        raise NotImplementedError


def _percent(status: Any, fraction: Any) -> int | None:
    if status == "succeeded":
        return 100
    if isinstance(fraction, int | float):
        return round(100 * min(max(float(fraction), 0.0), 1.0))
    return None


class JobProgressBar(JobProgress):
    """A tqdm bar: 0..100 from the progress fraction, described by the stage (or the status before
    a stage exists), with the ETA and message after it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"
        self._stream = stream or sys.stderr
        self._bar = tqdm(total=100, desc="queued", bar_format=bar_format, file=self._stream)

    def _show(self, status: Any, fraction: Any, stage: Any, message: Any, eta_s: Any) -> None:
        percent = _percent(status, fraction)
        if percent is not None:
            self._bar.n = percent
        self._bar.set_description_str(stage or status or "waiting", refresh=False)
        eta = f"eta {eta_s}s " if isinstance(eta_s, int) else ""
        self._bar.set_postfix_str((eta + (message or ""))[:60], refresh=False)
        self._bar.refresh()

    def _note(self, line: str) -> None:
        tqdm.write(line, file=self._stream)

    def close(self) -> None:
        self._bar.close()


class JobProgressLines(JobProgress):
    """Progress for a log: a line when the stage (or status) changes or the percentage reaches the
    next tenth, never a carriage return; a job of thousands of updates makes at most a few dozen."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream or sys.stderr
        self._shown: tuple[str, int] | None = None

    def _show(self, status: Any, fraction: Any, stage: Any, message: Any, eta_s: Any) -> None:
        label = str(stage or status or "waiting")
        percent = _percent(status, fraction)
        tenth = -1 if percent is None else percent // 10
        if self._shown is not None and label == self._shown[0] and tenth <= self._shown[1]:
            return  # the same stage, not a tenth further
        self._shown = (label, tenth)
        shown = "" if percent is None else f" {percent:3d}%"
        self._note(f"{label}:{shown}" + (f" {message}" if message else ""))

    def _note(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


def progress_for(stream: TextIO | None = None) -> JobProgress:
    """A bar where ``stream`` (default stderr) is a terminal, lines elsewhere."""
    stream = stream or sys.stderr
    return JobProgressBar(stream) if stream.isatty() else JobProgressLines(stream)


def wait_with_progress(client: ArtForgeClient, job_id: str, timeout: float | None = None, show_bar: bool = True,
                       use_events: bool = True) -> Job:
    """Wait for the job with a progress bar on stderr (none when ``show_bar`` is false), fed by
    the job's event stream (``client.follow``, which polls should the stream break), or by
    polling alone when ``use_events`` is false."""
    bar = progress_for() if show_bar else None
    try:
        if use_events:
            return client.follow(job_id, timeout=timeout, on_event=bar.show_event if bar else None)
        return client.wait(job_id, timeout=timeout, on_progress=bar)
    finally:
        if bar is not None:
            bar.close()


# --- human output -----------------------------------------------------------------------------


def describe_job(job: Job) -> str:
    """One line: id, kind, status, progress, and the error if there is one."""
    parts = [job.get("id", "?"), job.get("kind", "?"), job.get("status", "?")]
    fraction = (job.get("progress") or {}).get("fraction")
    if job.get("status") == "running" and isinstance(fraction, int | float):
        parts.append(f"{fraction:.0%}")
    error = job.get("error")
    if error:
        parts.append(f"error {error.get('code')}: {error.get('message')}")
    return "  ".join(str(part) for part in parts)


def describe_job_details(job: Job) -> str:
    """Several lines: the summary, timestamps, attempts and result links."""
    progress = job.get("progress") or {}
    lines = [
        describe_job(job),
        f"  stage:    {progress.get('stage') or '-'}  {progress.get('message') or ''}".rstrip(),
        f"  created:  {job.get('created_at') or '-'}",
        f"  started:  {job.get('started_at') or '-'}",
        f"  finished: {job.get('finished_at') or '-'}",
        f"  attempts: {job.get('attempts', 0)}",
    ]
    for result in job.get("results") or []:
        size = f"{result.get('width')}x{result.get('height')}"
        lines.append(f"  result {result.get('index')}: {size} {result.get('url')}")
    return "\n".join(lines)


def describe_event(event: JobEvent) -> str:
    """One line per job event: time, event, status, stage, percent, ETA, message, preview."""
    data = event.get("data") or {}
    if event.get("event") == "end":
        return f"end       {describe_job(data)}"
    at = str(data.get("at") or "")[11:19] or "--:--:--"
    fraction = data.get("fraction")
    parts = [at, f"{event.get('event'):<9}", data.get("status"), data.get("stage") or "-",
             f"{fraction:.0%}" if isinstance(fraction, int | float) else "",
             f"eta {data['eta_s']}s" if isinstance(data.get("eta_s"), int) else "", data.get("message") or "",
             f"preview {data['preview_url']}" if data.get("preview_url") else ""]
    return "  ".join(str(part) for part in parts if part)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _emit(args: argparse.Namespace, answer: Any, human_text: str) -> None:
    """Print the raw answer as JSON under ``--json``, else the human text."""
    if args.json:
        _print_json(answer)
    else:
        print(human_text)


def _note(message: str) -> None:
    print(message, file=sys.stderr)


# --- commands ---------------------------------------------------------------------------------
# Each takes (client, args) and returns the exit code.


def cmd_upload(client: ArtForgeClient, args: argparse.Namespace) -> int:
    upload = client.upload(args.file, **rights_options(args))
    if args.json:
        _print_json(upload)
    else:
        print(
            f"{upload['id']}  {upload.get('width')}x{upload.get('height')} {upload.get('format')}"
            f"  {upload.get('bytes')} bytes  sha256 {upload.get('sha256')}"
        )
    return 0


def cmd_submit(client: ArtForgeClient, args: argparse.Namespace) -> int:
    job = client.submit(
        args.kind,
        params=params_from_assignments(args.params),
        inputs=inputs_from_assignments(client, args.inputs, rights_options(args)),
        priority=args.priority,
        idempotency_key=args.idempotency_key,
        webhook_url=args.webhook_url,
    )
    if not args.wait:
        _emit(args, job, describe_job(job))
        return 0
    if not args.json:
        print(describe_job(job))
    return _finish_wait(client, job["id"], args, timeout=None)


def cmd_analyze(client: ArtForgeClient, args: argparse.Namespace) -> int:
    """Upload a work, analyse it, print what the report says (``--json``: the report itself)."""
    upload = client.upload(args.file)
    job = client.submit("analysis", params={"similar": args.similar, "language": args.language},
                        inputs={"image": upload["id"]})
    job = wait_with_progress(client, job["id"], timeout=args.timeout, show_bar=not args.json)
    if job.get("status") != "succeeded":
        _note(describe_job(job))
        return 1
    report = client.analysis_report(job)
    if args.output is not None:
        for path in client.download(job, args.output):
            _note(f"saved {path}")
    _emit(args, report, describe_report(report, upload["id"], job["id"]))
    return 0


def describe_report(report: dict[str, Any], upload_id: str, job_id: str) -> str:
    """The description, then the palette, the nearest styles and similar works, one per line."""
    description = report.get("description") or {}
    lines = [text for text in (description.get("en"), description.get("zh")) if text]
    lines.append("palette: " + ", ".join(f"{c.get('name_en')} {c.get('hex')} {c.get('share', 0):.0%}"
                                         for c in report.get("palette") or []))
    lines.append("nearest styles: " + ", ".join(f"{s.get('name')} {s.get('score')}"
                                                for s in (report.get("style") or {}).get("top") or []))
    for work in report.get("similar_works") or []:
        where = f"result {work.get('result')} of job {work.get('id')}" if work.get("kind") == "result" \
            else f"upload {work.get('id')}"
        lines.append(f"similar: {where}  score {work.get('score')}")
    lines.append(f"upload {upload_id}, job {job_id}")
    return "\n".join(lines)


def cmd_similar(client: ArtForgeClient, args: argparse.Namespace) -> int:
    answer = client.similar_works(args.upload, args.k)
    works = answer.get("works") or []
    text = "\n".join(f"{w.get('kind')} {w.get('id')}" + (f" result {w['result']}" if "result" in w else "")
                     + f"  score {w.get('score')}" for w in works) or "no similar works indexed yet"
    _emit(args, answer, text)
    return 0


def cmd_status(client: ArtForgeClient, args: argparse.Namespace) -> int:
    job = client.job(args.job)
    _emit(args, job, describe_job_details(job))
    return 0


def cmd_wait(client: ArtForgeClient, args: argparse.Namespace) -> int:
    return _finish_wait(client, args.job, args, timeout=args.timeout)


def _finish_wait(client: ArtForgeClient, job_id: str, args: argparse.Namespace, timeout: float | None) -> int:
    job = wait_with_progress(client, job_id, timeout=timeout, show_bar=not args.json,
                             use_events=not getattr(args, "poll", False))
    _emit(args, job, describe_job(job))
    return 1 if job.get("status") in FAILED_STATUSES else 0


def cmd_download(client: ArtForgeClient, args: argparse.Namespace) -> int:
    job = client.job(args.job)
    paths = client.download(job, args.output)
    if args.json:
        _print_json([str(path) for path in paths])
    elif not paths:
        print(f"job {job['id']} has no results (status {job.get('status')})")
    else:
        for path in paths:
            print(path)
    return 0


def cmd_list(client: ArtForgeClient, args: argparse.Namespace) -> int:
    page = client.jobs(status=args.status, kind=args.kind, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(page)
        return 0
    for job in page.get("items") or []:
        print(f"{describe_job(job)}  {job.get('created_at') or ''}".rstrip())
    if page.get("next_cursor"):
        print(f"more: artforge list --cursor {page['next_cursor']}")
    return 0


def cmd_cancel(client: ArtForgeClient, args: argparse.Namespace) -> int:
    job = client.cancel(args.job)
    _emit(args, job, describe_job(job))
    return 0


def cmd_styles(client: ArtForgeClient, args: argparse.Namespace) -> int:
    styles = client.styles()
    if args.json:
        _print_json(styles)
        return 0
    for style in styles.get("items") or []:
        print(f"{style.get('name'):<20} {style.get('description') or ''}".rstrip())
    return 0


def cmd_verify(client: ArtForgeClient, args: argparse.Namespace) -> int:
    answer = client.verify(args.file)
    _emit(args, answer, describe_verification(answer))
    return 0


def describe_verification(answer: dict[str, Any]) -> str:
    """The verdict, what identified the image, and the job when it is the caller's own."""
    lines = [f"{answer.get('verdict')}: " + (f"made by this service (found by {answer.get('method')})"
                                             if answer.get("made_by_this_service") else "not made by this service")]
    match = answer.get("match") or {}
    if match:
        lines.append(f"  job {match.get('job_id')} result {match.get('result_index')}  record {match.get('record_id')}"
                     f"  ({match.get('record_status')}, signature {match.get('signature')})")
    evidence = answer.get("evidence") or {}
    c2pa, mark = evidence.get("c2pa") or {}, evidence.get("watermark") or {}
    lines.append(f"  C2PA {c2pa.get('state')}; watermark {'found' if mark.get('detected') else 'none'}; "
                 f"exact bytes {'yes' if (evidence.get('sha256') or {}).get('matched') else 'no'}")
    return "\n".join(lines)


def cmd_chain(client: ArtForgeClient, args: argparse.Namespace) -> int:
    answer = client.provenance_chain(start=args.start, limit=args.limit)
    checked = answer.get("checked") or {}
    text = (f"record chain of {answer.get('tenant')}: {answer.get('length')} records; checked "
            f"{checked.get('start')}..{checked.get('end')}: " + ("ok" if answer.get("ok") else "BROKEN"))
    broken = answer.get("first_break")
    if broken:
        text += f"\n  first break at {broken.get('sequence')} (job {broken.get('job_id')}): {broken.get('reason')}"
    _emit(args, answer, text)
    return 0 if answer.get("ok") else 1


def cmd_protected_add(client: ArtForgeClient, args: argparse.Namespace) -> int:
    work = client.add_protected_work(args.file, args.title, rights_holder=args.rights_holder, note=args.note)
    _emit(args, work, f"{work['id']}  {work['title']}  phash {work['perceptual']['phash']}")
    return 0


def cmd_protected_list(client: ArtForgeClient, args: argparse.Namespace) -> int:
    works = client.protected_works()
    _emit(args, works, "\n".join(f"{w['id']}  {w['title']}" for w in works.get("items") or []) or "no protected works")
    return 0


def cmd_protected_delete(client: ArtForgeClient, args: argparse.Namespace) -> int:
    client.delete_protected_work(args.work)
    _emit(args, {"deleted": args.work}, f"deleted {args.work}")
    return 0


def cmd_protected_refusals(client: ArtForgeClient, args: argparse.Namespace) -> int:
    refusals = client.protected_work_refusals(limit=args.limit)
    lines = [f"{_when(r.get('at'))}  {r.get('tenant')}  {r.get('kind')} inputs.{r.get('role')}  -> {r.get('title')}"
             for r in refusals.get("items") or []]
    _emit(args, refusals, "\n".join(lines) or "no refusals")
    return 0


def cmd_events(client: ArtForgeClient, args: argparse.Namespace) -> int:
    """Print the job's events as they come (JSON lines under --json) until it ends."""
    status = None
    for event in client.job_events(args.job, last_event_id=args.last_event_id, reconnect=not args.no_reconnect):
        if args.json:
            print(json.dumps(event, sort_keys=True), flush=True)
        else:
            print(describe_event(event), flush=True)
        if event["event"] == "end":
            status = event["data"].get("status")
    return 1 if status in FAILED_STATUSES else 0


def cmd_artifact(client: ArtForgeClient, args: argparse.Namespace) -> int:
    path = client.download_artifact(args.job, args.name, args.output or Path(args.name))
    _emit(args, {"path": str(path)}, str(path))
    return 0


def cmd_thumbnail(client: ArtForgeClient, args: argparse.Namespace) -> int:
    path = client.style_thumbnail(args.style, args.output or Path(f"{args.style}.png"))
    _emit(args, {"path": str(path)}, str(path))
    return 0


def cmd_health(client: ArtForgeClient, args: argparse.Namespace) -> int:
    answer = {"health": client.health(), "ready": client.ready()}
    _emit(args, answer, f"health: {answer['health'].get('status', 'ok')}  ready: {answer['ready'].get('status', 'ok')}")
    return 0


def cmd_protected_show(client: ArtForgeClient, args: argparse.Namespace) -> int:
    work = client.protected_work(args.work)
    _emit(args, work, f"{work['id']}  {work['title']}  {work.get('rights_holder') or ''}".rstrip())
    return 0


def describe_model(model: dict[str, Any]) -> str:
    promoted = model.get("promoted_version")
    return (f"{model.get('name')}  promoted {'v' + str(promoted) if promoted is not None else '-'}  "
            f"versions {model.get('versions') or []}  labels {', '.join(model.get('labels') or []) or '-'}")


def cmd_models_list(client: ArtForgeClient, args: argparse.Namespace) -> int:
    models = client.models()
    _emit(args, models, "\n".join(describe_model(m) for m in models.get("items") or []) or "no models")
    return 0


def cmd_models_show(client: ArtForgeClient, args: argparse.Namespace) -> int:
    model = client.model(args.name)
    lines = [describe_model(model)]
    for card in model.get("cards") or []:
        if card:
            lines.append(f"  v{card.get('version')}  {_when(card.get('created_at'))}  "
                         f"metrics {json.dumps(card.get('metrics') or {}, sort_keys=True)}")
    for entry in model.get("promotion_history") or []:
        lines.append(f"  promoted v{entry.get('version')} at {_when(entry.get('at'))}: {entry.get('reason') or ''}")
    _emit(args, model, "\n".join(lines))
    return 0


def cmd_models_promote(client: ArtForgeClient, args: argparse.Namespace) -> int:
    model = client.promote(args.name, args.version)
    _emit(args, model, describe_model(model))
    return 0


def describe_dataset(dataset: dict[str, Any]) -> str:
    labels = ", ".join(f"{label} {count}" for label, count in (dataset.get("labels") or {}).items())
    return (f"{dataset.get('id')}  {dataset.get('name') or '-'}  {dataset.get('images')} images  "
            f"v{dataset.get('version')}  {dataset.get('licence')}" + (f"  labels: {labels}" if labels else ""))


def cmd_datasets_create(client: ArtForgeClient, args: argparse.Namespace) -> int:
    dataset = client.create_dataset(args.file, args.licence, name=args.name)
    _emit(args, dataset, describe_dataset(dataset))
    return 0


def cmd_datasets_show(client: ArtForgeClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset)
    _emit(args, dataset, describe_dataset(dataset))
    return 0


def cmd_datasets_add(client: ArtForgeClient, args: argparse.Namespace) -> int:
    answer = client.add_dataset_images(args.dataset, args.file, label=args.label)
    _emit(args, answer, f"{describe_dataset(answer)}\n  added {answer.get('added')}, "
                        f"skipped {answer.get('duplicates')} duplicates")
    return 0


def cmd_datasets_versions(client: ArtForgeClient, args: argparse.Namespace) -> int:
    versions = client.dataset_versions(args.dataset)
    lines = [f"v{v.get('version')}  {v.get('images')} images  {_when(v.get('created_at'))}  "
             f"manifest {str(v.get('manifest_sha256'))[:16]}" for v in versions.get("items") or []]
    _emit(args, versions, "\n".join(lines) or "no versions")
    return 0


def describe_schedule(schedule: dict[str, Any]) -> str:
    timing = f"every {schedule['every_s']}s" if schedule.get("every_s") else f"cron '{schedule.get('cron')}'"
    last = schedule.get("last_run") or {}
    return (f"{schedule.get('name')}  {schedule.get('model')} <- {schedule.get('dataset')}  {timing}  "
            f"{'enabled' if schedule.get('enabled') else 'disabled'}  next {_when(schedule.get('next_run_at'))}"
            + (f"  last run: {last.get('outcome')}" if last else ""))


def cmd_schedules_list(client: ArtForgeClient, args: argparse.Namespace) -> int:
    schedules = client.schedules()
    _emit(args, schedules, "\n".join(describe_schedule(s) for s in schedules.get("items") or []) or "no schedules")
    return 0


def cmd_schedules_show(client: ArtForgeClient, args: argparse.Namespace) -> int:
    schedule = client.schedule(args.name)
    lines = [describe_schedule(schedule)]
    for run in schedule.get("runs") or []:
        result = run.get("training_result") or {}
        lines.append(f"  {_when(run.get('at'))}  {run.get('outcome')}  {run.get('reason') or ''}  "
                     f"{('job ' + run['job_id'] + ' ' + str(result.get('job_status'))) if run.get('job_id') else ''}"
                     .rstrip())
    _emit(args, schedule, "\n".join(lines))
    return 0


def cmd_schedules_put(client: ArtForgeClient, args: argparse.Namespace) -> int:
    schedule = client.put_schedule(args.name, args.model, args.dataset, every_s=args.every, cron=args.cron,
                                   training=params_from_assignments(args.training), init_from=args.init_from,
                                   promotion_margin=args.promotion_margin, enabled=not args.disabled)
    _emit(args, schedule, describe_schedule(schedule))
    return 0


def cmd_schedules_delete(client: ArtForgeClient, args: argparse.Namespace) -> int:
    client.delete_schedule(args.name)
    _emit(args, {"deleted": args.name}, f"deleted {args.name}")
    return 0


def describe_policy(policy: dict[str, Any]) -> str:
    own = policy.get("results_retention_days")
    effective = policy.get("effective_results_retention_days")
    return (f"{policy.get('tenant')}: results kept {'forever' if not effective else f'{effective:g} days'}"
            f" ({'service default' if own is None else 'own setting'})")


def cmd_policy_show(client: ArtForgeClient, args: argparse.Namespace) -> int:
    policy = client.tenant_policy(args.tenant)
    _emit(args, policy, describe_policy(policy))
    return 0


def cmd_policy_set(client: ArtForgeClient, args: argparse.Namespace) -> int:
    policy = client.put_tenant_policy(args.tenant, args.days)
    _emit(args, policy, describe_policy(policy))
    return 0


def cmd_admin_create_key(client: ArtForgeClient, args: argparse.Namespace) -> int:
    created = client.create_key(args.tenant, admin=args.admin, operator=args.operator)
    _emit(args, created, created["key"])
    if not args.json:
        _note(f"key {created['id']} of {created['tenant']} ({describe_role(created)}): shown this once, "
              "only its hash is stored")
    return 0


def describe_role(key: dict[str, Any]) -> str:
    return "operator" if key.get("operator") else "admin" if key.get("admin") else "user"


def cmd_admin_keys(client: ArtForgeClient, args: argparse.Namespace) -> int:
    listed = client.keys(args.tenant)
    lines = [f"{k.get('id')}  {k.get('tenant')}  {describe_role(k):<8}  created {_when(k.get('created_at'))}"
             for k in listed.get("items") or []]
    _emit(args, listed, "\n".join(lines) or "no keys")
    return 0


def cmd_admin_revoke_key(client: ArtForgeClient, args: argparse.Namespace) -> int:
    client.revoke_key(args.key_id)
    _emit(args, {"revoked": args.key_id}, f"revoked {args.key_id}")
    return 0


def retention_days(text: str) -> float | None:
    """A number of days (0 = forever), or ``default`` for the service's default."""
    if text == "default":
        return None
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days or 'default', got {text!r}") from None
    if days < 0 or days != days:
        raise argparse.ArgumentTypeError("days must be 0 or more")
    return days


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="artforge",
        description="ArtForge client. Reads ARTFORGE_URL and ARTFORGE_API_KEY from the environment "
        "or from the nearest .artforge/env file.",
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer (for scripts)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # --json is accepted after the subcommand too; SUPPRESS keeps it from resetting the global one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def add(name: str, handler: Callable[[ArtForgeClient, argparse.Namespace], int], help_text: str):
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def add_rights(sub: argparse.ArgumentParser) -> None:
        group = sub.add_argument_group("rights declaration (needed for style references and images to restore)")
        group.add_argument("--licence", help="the image's licence, e.g. CC-BY-4.0, public-domain, proprietary")
        group.add_argument("--rights-holder", help="who holds the image's copyright")
        group.add_argument("--own-rights", action="store_true", help="you hold the rights to the image yourself")

    upload = add("upload", cmd_upload, "upload an image")
    upload.add_argument("file", type=Path)
    add_rights(upload)

    submit = add("submit", cmd_submit, "submit a job")
    submit.add_argument("kind", help="job kind, e.g. style_transfer")
    submit.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        type=parse_assignment,
        metavar="KEY=VALUE",
        help="a job parameter; VALUE is JSON if it parses, else a string",
    )
    submit.add_argument(
        "-i",
        "--input",
        dest="inputs",
        action="append",
        default=[],
        type=parse_assignment,
        metavar="ROLE=VALUE",
        help="an input: a file to upload first, or an upload id",
    )
    submit.add_argument("--priority", type=int, default=0, choices=range(10), metavar="0..9")
    submit.add_argument("--idempotency-key", help="makes a retried submit return the same job")
    submit.add_argument("--webhook-url", help="called (signed) when the job ends")
    submit.add_argument("--wait", action="store_true", help="wait for the job to finish")
    add_rights(submit)

    analyze = add("analyze", cmd_analyze, "appreciate a work: palette, colour, composition, texture, nearest "
                                          "styles, similar works of yours, and a description (EN and ZH)")
    analyze.add_argument("file", type=Path)
    analyze.add_argument("--similar", type=int, default=8, help="how many similar works of yours to list (0-50)")
    analyze.add_argument("--language", choices=["en", "zh", "both"], default="both")
    analyze.add_argument("-o", "--output", type=Path, help="also save the report, annotated picture and "
                                                           "provenance records in this directory")
    analyze.add_argument("--timeout", type=float, help="give up waiting after this many seconds")

    similar = add("similar", cmd_similar, "your uploads and results most like one of your uploads")
    similar.add_argument("upload")
    similar.add_argument("-k", type=int, default=8, help="how many (1-50)")

    add("status", cmd_status, "show a job").add_argument("job")

    wait = add("wait", cmd_wait, "wait for a job to finish, with a progress bar from its event stream "
                                 "(exit 1 if it failed or was canceled)")
    wait.add_argument("job")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")
    wait.add_argument("--poll", action="store_true", help="poll the job instead of following its event stream")

    events = add("events", cmd_events, "print a job's events from the start as they happen, until it ends "
                                       "(--json: one JSON object per line)")
    events.add_argument("job")
    events.add_argument("--last-event-id", help="resume after this event id")
    events.add_argument("--no-reconnect", action="store_true",
                        help="stop when the server closes the stream instead of resuming it")

    download = add("download", cmd_download, "download a job's results and provenance")
    download.add_argument("job")
    download.add_argument("-o", "--output", type=Path, default=Path("."), help="directory (default: .)")

    listing = add("list", cmd_list, "list jobs, newest first")
    listing.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "canceled"])
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--cursor", help="the next_cursor of a previous page")

    add("cancel", cmd_cancel, "cancel a job").add_argument("job")
    artifact = add("artifact", cmd_artifact, "download an artifact of a job (a training run's sample grid, say)")
    artifact.add_argument("job")
    artifact.add_argument("name")
    artifact.add_argument("-o", "--output", type=Path, help="file (default: the artifact's name)")
    add("styles", cmd_styles, "list the named styles")
    thumbnail = add("thumbnail", cmd_thumbnail, "download a style's thumbnail (PNG)")
    thumbnail.add_argument("style")
    thumbnail.add_argument("-o", "--output", type=Path, help="file (default: STYLE.png)")
    add("health", cmd_health, "is the API up and are its dependencies reachable")
    add("verify", cmd_verify, "did an image come from this service, and from which job").add_argument(
        "file", type=Path)
    chain = add("chain", cmd_chain, "check your provenance record chain (exit 1 if it is broken)")
    chain.add_argument("--start", type=int, default=0, help="first sequence number to check")
    chain.add_argument("--limit", type=int, help="records to check (the server caps it)")

    protected = commands.add_parser("protected", parents=[common], help="protected works (admin key)")
    works = protected.add_subparsers(dest="protected_command", required=True, metavar="ACTION")
    protect = works.add_parser("add", parents=[common], help="list a work: near copies are refused as inputs")
    protect.add_argument("file", type=Path)
    protect.add_argument("--title", required=True)
    protect.add_argument("--rights-holder")
    protect.add_argument("--note")
    protect.set_defaults(handler=cmd_protected_add)
    works.add_parser("list", parents=[common], help="list protected works").set_defaults(
        handler=cmd_protected_list)
    delete = works.add_parser("delete", parents=[common], help="remove a work from the list")
    delete.add_argument("work")
    delete.set_defaults(handler=cmd_protected_delete)
    refusals = works.add_parser("refusals", parents=[common], help="inputs refused as near copies")
    refusals.add_argument("--limit", type=int)
    refusals.set_defaults(handler=cmd_protected_refusals)
    show_work = works.add_parser("show", parents=[common], help="show a protected work")
    show_work.add_argument("work")
    show_work.set_defaults(handler=cmd_protected_show)

    def group(name: str, help_text: str) -> Any:
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")

    def action(actions: Any, name: str, handler: Callable[[ArtForgeClient, argparse.Namespace], int],
               help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    models = group("models", "trained models: versions, model cards, promotion")
    action(models, "list", cmd_models_list, "list models")
    action(models, "show", cmd_models_show, "a model's versions, metrics and promotion history").add_argument("name")
    promote = action(models, "promote", cmd_models_promote,
                     "serve another version: a manual promotion or a rollback (admin key)")
    promote.add_argument("name")
    promote.add_argument("version", type=int)

    datasets = group("datasets", "training data: zips of images, grown by versions")
    create = action(datasets, "create", cmd_datasets_create, "a new dataset from a zip (one folder per label, "
                                                             "optional)")
    create.add_argument("file", type=Path)
    create.add_argument("--licence", required=True, help="e.g. CC-BY-4.0, CC0-1.0, proprietary")
    create.add_argument("--name")
    action(datasets, "show", cmd_datasets_show, "show a dataset").add_argument("dataset")
    grow = action(datasets, "add", cmd_datasets_add, "add a zip's images, or one image, as a new version")
    grow.add_argument("dataset")
    grow.add_argument("file", type=Path)
    grow.add_argument("--label", help="the label of one image added to a labeled dataset")
    action(datasets, "versions", cmd_datasets_versions, "a dataset's versions, oldest first").add_argument("dataset")

    schedules = group("schedules", "scheduled retraining with a promotion gate (admin key)")
    action(schedules, "list", cmd_schedules_list, "list schedules")
    action(schedules, "show", cmd_schedules_show, "a schedule, its next run and recent runs").add_argument("name")
    put = action(schedules, "put", cmd_schedules_put, "create or replace a schedule")
    put.add_argument("name")
    put.add_argument("--model", required=True, help="a model with a promoted version")
    put.add_argument("--dataset", required=True, help="a dataset id, 'procedural' or 'debian-images'")
    timing = put.add_mutually_exclusive_group(required=True)
    timing.add_argument("--every", type=int, metavar="SECONDS", help="run every this many seconds")
    timing.add_argument("--cron", metavar="EXPR", help="five-field cron expression, UTC")
    put.add_argument("--init-from", choices=["promoted", "scratch"])
    put.add_argument("--promotion-margin", type=float)
    put.add_argument("-t", "--training", action="append", default=[], type=parse_assignment, metavar="KEY=VALUE",
                     help="a training parameter (steps, batch_size, ...); VALUE is JSON if it parses")
    put.add_argument("--disabled", action="store_true", help="store it without running it")
    action(schedules, "delete", cmd_schedules_delete, "delete a schedule").add_argument("name")

    policy = group("policy", "tenant policies: how long results are kept (admin key)")
    action(policy, "show", cmd_policy_show, "a tenant's policy").add_argument("tenant")
    retention = action(policy, "set", cmd_policy_set, "keep a tenant's results DAYS days after their job finished")
    retention.add_argument("tenant")
    retention.add_argument("days", type=retention_days, metavar="DAYS",
                           help="days (fractions allowed; 0 = forever), or 'default' for the service default")

    admin = group("admin", "API keys over HTTP (admin key; another tenant's keys: operator key)")
    create_key = action(admin, "create-key", cmd_admin_create_key, "print a new key for a tenant (shown once)")
    create_key.add_argument("--tenant", required=True)
    create_key.add_argument("--admin", action="store_true", help="the key may train and manage models, "
                                                                 "schedules and its tenant's keys")
    create_key.add_argument("--operator", action="store_true", help="the key may manage every tenant's keys")
    action(admin, "keys", cmd_admin_keys, "a tenant's key ids and roles").add_argument("--tenant", required=True)
    action(admin, "revoke-key", cmd_admin_revoke_key, "revoke a key by its id (the part after 'af_')"
           ).add_argument("key_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``artforge`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config()
    except ConfigError as exc:
        _note(f"artforge: {exc}")
        return 2
    try:
        with ArtForgeClient.from_config(config) as client:
            return args.handler(client, args)
    except ArtForgeError as exc:
        _note(f"artforge: {exc}")
        return 1
    except OSError as exc:
        _note(f"artforge: {exc}")
        return 1
    except KeyboardInterrupt:
        _note("artforge: interrupted (a submitted job keeps running; `artforge cancel JOB` stops it)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
