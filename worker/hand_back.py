"""Jobs a worker process claimed and could not finish because Redis failed it (down, stalled,
full for longer than STORE_RETRY_SECONDS): it gives them back to the queue itself, each alone and
with its start given back, as soon as Redis answers again, rather than leave them to the sweep,
which would wait until they overran every time limit of the jobs held with them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from shared.errors import StoreUnavailableError
from shared.jobs import JobStore
from shared.kombu_messages import Lanes

log = logging.getLogger(__name__)


class HandBack:
    """The jobs to give back; filled by the process's tasks, emptied by its heartbeat thread."""

    def __init__(self) -> None:
        self._jobs: set[str] = set()
        self._lock = threading.Lock()

    def add(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._jobs.update(job_ids)

    def give_back(self, store: JobStore, *, worker_id: str, queues: Lanes) -> list[str]:
        """Queue again every job this process still holds of those kept (others have finished
        or been taken over since); the ones queued. Those Redis does not take wait for the next
        call."""
        with self._lock:
            waiting = sorted(self._jobs)
        given = []
        for job_id in waiting:
            try:
                outcome = store.requeue_orphan(
                    job_id, worker_id=worker_id, queues=queues, hand_back=True
                )
            except StoreUnavailableError:
                break
            with self._lock:
                self._jobs.discard(job_id)
            if outcome:
                given.append(job_id)
        if given:
            log.warning("gave %d job(s) back to the queue after Redis failed them: %s",
                        len(given), given)  # fmt: skip
        return given
