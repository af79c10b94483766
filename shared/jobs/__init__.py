"""The job store: one Redis hash per job, the image beside it until a worker has used it.

Jobs live under their own keys rather than in Celery's result backend so that an unknown id is a
clean 404, every job has a status of its own, and records expire after `JOB_TTL_SECONDS`. Status
changes run as Lua scripts, so a claim, a finish and a cancel never interleave, and a job that is
already terminal is never overwritten (a task redelivered after a crash cannot corrupt it).

Read it in this order: `keys` (names), `record` (the job's hash, declared by the schema),
`scripts` (the Lua scripts in `lua/`, and their loader), `groups` (jobs into queue messages),
`operations`, `intake` and `recovery` (what each call does, without I/O), `runners` (blocking and
asyncio stores that send the operations' round trips).
"""

from shared.jobs.groups import Grouping
from shared.jobs.intake import Idempotency, QueueLimits, Request
from shared.jobs.keys import (
    EVENTS_CHANNEL,
    KEY_PREFIX,
    idempotency_key,
    image_key,
    job_key,
    new_job_id,
)
from shared.jobs.operations import Claim, Claimed, Delivery, Keeping, Replication
from shared.jobs.record import announced_job
from shared.jobs.runners import AsyncJobStore, JobStore
from shared.schemas import NewJob

__all__ = [
    "EVENTS_CHANNEL",
    "KEY_PREFIX",
    "AsyncJobStore",
    "Claim",
    "Claimed",
    "Delivery",
    "Grouping",
    "Idempotency",
    "JobStore",
    "Keeping",
    "NewJob",
    "QueueLimits",
    "Replication",
    "Request",
    "announced_job",
    "idempotency_key",
    "image_key",
    "job_key",
    "new_job_id",
]
