"""The ``artforge`` command line: every API endpoint as a subcommand.

Exit codes: 0 success; 1 an API error, an unreachable server, a wait timeout, or a job that
ended failed/canceled; 2 a configuration or usage error; 130 interrupted.
With ``--json`` stdout carries only the JSON answer, so scripts can parse it; notes go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from client.config import ConfigError, load_config
from client.sdk import ArtForgeClient, ArtForgeError, Job

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


class JobProgressBar:
    """A tqdm bar fed with polled job records: 0..100 from ``progress.fraction``, described by
    the stage (or the status before a stage exists). Use as ``wait``'s ``on_progress``."""

    def __init__(self) -> None:
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"
        self._bar = tqdm(total=100, desc="queued", bar_format=bar_format)

    def __call__(self, job: Job) -> None:
        progress = job.get("progress") or {}
        fraction = progress.get("fraction")
        if job.get("status") == "succeeded":
            fraction = 1.0
        if isinstance(fraction, int | float):
            self._bar.n = round(100 * min(max(float(fraction), 0.0), 1.0))
        self._bar.set_description_str(progress.get("stage") or job.get("status") or "waiting", refresh=False)
        self._bar.set_postfix_str((progress.get("message") or "")[:60], refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def wait_with_progress(client: ArtForgeClient, job_id: str, timeout: float | None = None, show_bar: bool = True) -> Job:
    """``client.wait`` with a progress bar on stderr (none when ``show_bar`` is false)."""
    if not show_bar:
        return client.wait(job_id, timeout=timeout)
    bar = JobProgressBar()
    try:
        return client.wait(job_id, timeout=timeout, on_progress=bar)
    finally:
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
    )
    if not args.wait:
        _emit(args, job, describe_job(job))
        return 0
    if not args.json:
        print(describe_job(job))
    return _finish_wait(client, job["id"], args, timeout=None)


def cmd_status(client: ArtForgeClient, args: argparse.Namespace) -> int:
    job = client.job(args.job)
    _emit(args, job, describe_job_details(job))
    return 0


def cmd_wait(client: ArtForgeClient, args: argparse.Namespace) -> int:
    return _finish_wait(client, args.job, args, timeout=args.timeout)


def _finish_wait(client: ArtForgeClient, job_id: str, args: argparse.Namespace, timeout: float | None) -> int:
    job = wait_with_progress(client, job_id, timeout=timeout, show_bar=not args.json)
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


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_admin(admin_argv: Sequence[str]) -> int:
    """Run a server-side admin command such as ``create-key --tenant NAME [--admin]``.

    This is the single, optional exception to "the client imports no server code": admin
    commands act on the server's own stores, so they only work on the server host, where the
    ``api`` package is installed. The import is lazy, so the client never needs that package.
    """
    try:
        admin = importlib.import_module("api.admin")
    except ImportError as exc:
        _note(
            f"admin commands run on the server host and need the ArtForge server package installed "
            f"(cannot import api.admin: {exc})"
        )
        return 2
    return int(admin.main(list(admin_argv)) or 0)


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
    submit.add_argument("--wait", action="store_true", help="wait for the job to finish")
    add_rights(submit)

    add("status", cmd_status, "show a job").add_argument("job")

    wait = add("wait", cmd_wait, "wait for a job to finish (exit 1 if it failed or was canceled)")
    wait.add_argument("job")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")

    download = add("download", cmd_download, "download a job's results and provenance")
    download.add_argument("job")
    download.add_argument("-o", "--output", type=Path, default=Path("."), help="directory (default: .)")

    listing = add("list", cmd_list, "list jobs, newest first")
    listing.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "canceled"])
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--cursor", help="the next_cursor of a previous page")

    add("cancel", cmd_cancel, "cancel a job").add_argument("job")
    add("styles", cmd_styles, "list the named styles")
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

    admin = commands.add_parser("admin", help="server-host administration, e.g. create-key --tenant NAME [--admin]")
    admin.add_argument("admin_argv", nargs=argparse.REMAINDER, metavar="create-key --tenant NAME [--admin]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``artforge`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "admin":
        return run_admin(args.admin_argv)
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
