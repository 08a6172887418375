"""Resident memory of a stack's API worker processes (gunicorn's workers are children of the
process the stack started), read from /proc."""

from __future__ import annotations

import os

from deploy.devstack import Stack


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"no {field} for process {pid}")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == pid:
            found.append(int(entry))
    return sorted(found)


def api_workers_rss_mb(stack: Stack, field: str = "VmRSS") -> dict[int, float]:
    """{worker pid: resident MB} of the API's gunicorn workers (``VmHWM``: their peak so far)."""
    workers = children(stack.processes["api"].pid)
    assert workers, "the API has no worker processes"
    return {pid: _status_kb(pid, field) / 1024 for pid in workers}
