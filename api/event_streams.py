"""How many server-sent event streams one API process keeps open at once.

Under gunicorn's threaded workers an open stream holds one of its process's threads for as long
as it lasts, and after its client goes away until the next keep-alive write fails. Without a cap,
a few browser tabs watching running jobs take every thread, and every other request of that
process waits behind them. Beyond the cap the events endpoint answers 503 with Retry-After, and
clients poll ``GET /v1/jobs/{id}`` instead (the gallery and the SDK both do).

``deploy/gunicorn_conf.py`` sets the cap to half of each worker's threads unless
``ARTFORGE_SSE_STREAMS_PER_PROCESS`` says otherwise; outside gunicorn there is none.
"""

from __future__ import annotations

import threading


class StreamSlots:
    def __init__(self, limit: int | None):
        """``limit`` streams at once (0: none); None: no cap."""
        self._free = None if limit is None else threading.BoundedSemaphore(limit)

    def take(self) -> bool:
        """A slot for one more stream, or False when all are taken."""
        return self._free is None or self._free.acquire(blocking=False)

    def give_back(self) -> None:
        """Called once for each slot ``take`` gave."""
        if self._free is not None:
            self._free.release()
