"""The leases of running jobs, renewed while their attempt runs (``shared.jobs``: a job whose
lease expires is requeued by the reaper, ``workers.maintenance``)."""

from __future__ import annotations

import logging
import threading

from workers.runtime import Runtime

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of running jobs every ``heartbeat_s`` while their attempts run.

    One thread and one Redis round trip per beat however many jobs it keeps: a creation batch
    holds hundreds, and a thread each would compete with the batch for the interpreter until a
    beat came late and a lease ran out under a job still running."""

    def __init__(self, rt: Runtime, *job_ids: str):
        self.rt = rt
        self._ids = set(job_ids)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_ids[0][:8]}", daemon=True)

    def _run(self) -> None:
        s = self.rt.settings
        while not self._stop.wait(s.heartbeat_s):
            with self._lock:
                ids = sorted(self._ids)
            try:
                self.rt.jobs.heartbeat(ids, s.lease_s)
            except Exception:  # Redis blip: the next beat tries again
                log.warning("heartbeat for %s failed", ", ".join(ids), exc_info=True)

    def release(self, job_id: str) -> None:
        """No more renewals for ``job_id`` (it finished); the others' go on."""
        with self._lock:
            self._ids.discard(job_id)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        """No more renewals at all; stopping twice is harmless."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
