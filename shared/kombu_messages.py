"""The classify queue's messages, written the way kombu's Redis transport stores them.

The one module coupled to kombu's wire layout (as Flower keeps its reading of it in
`utils/broker.py`): `tests/integration/test_queue_messages.py` compares what it writes with what
kombu itself publishes, and `pyproject.toml` bounds celery and kombu to the versions that test
has passed on. Raise the bounds only together with a green run of it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery

from shared import tracing
from shared.model_cards import ORIGINAL_MODEL
from shared.priorities import PRIORITIES, queue_name
from shared.queue import (
    CLASSIFY_TASK,
    COLLECTION_WEBHOOK_TAG_SUFFIX,
    COLLECTION_WEBHOOK_TASK,
    WEBHOOK_TAG_SUFFIX,
    WEBHOOK_TASK,
)

PERSISTENT_DELIVERY_MODE = 2
# kombu's Redis transport keeps messages delivered and not yet acknowledged in this hash, keyed
# by delivery tag (its `unacked_key` transport option, left at its default).
UNACKED_KEY = "unacked"
_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"


class ClassifyQueue:
    """The Redis list a Celery worker consumes, and the message that asks it to run jobs: one,
    or a group of them, run by one process with one dispatch and one acknowledgement.

    Messages are written by the job store's own scripts, in the same atomic step that stores the
    jobs, so a job never exists without its message (nor a message without its job), and a
    submission costs one Redis round trip instead of kombu's publish path.
    Celery builds the message (`as_task_v2`); only the envelope below is kombu's Redis transport
    format, which tests compare with kombu's own on every run.
    """

    def __init__(
        self,
        name: str,
        app: Celery,
        *,
        task_name: str = CLASSIFY_TASK,
        tag_suffix: str = "",
        model: str | None = None,
    ) -> None:
        """`task_name` and `tag_suffix`: another task about the same jobs (the webhook), whose
        messages need delivery tags of their own, since kombu keys unacked messages by them.
        `model`: the model whose jobs the queue carries, named in each task's keyword
        arguments (the worker runs them on it; Flower shows it)."""
        self.name = name
        self.model = model
        self._suffix = tag_suffix
        self._kwargs = {} if model is None else {"model": model}
        # Celery's message for a placeholder id; each job's message swaps in its own id, since
        # building it afresh per job costs configuration lookups and safe reprs every time.
        task = app.amqp.as_task_v2(
            _TEMPLATE_ID, task_name, args=[_TEMPLATE_ID], kwargs=self._kwargs, ignore_result=True
        )
        self._headers: dict[str, Any] = task.headers
        self._properties: dict[str, Any] = task.properties
        self._options: dict[str, Any] = task.body[2]
        self._limits = (app.conf.task_time_limit, app.conf.task_soft_time_limit)

    def message(self, *job_ids: str, tag: str = "", trace: str = "") -> str:
        """The classify task for `job_ids`, as kombu's Redis transport stores it in the list.

        One job's task id is the job id, so Flower and the logs name tasks by the job they run,
        and so is the delivery tag, so kombu's unacked hash says whether it holds a job's
        message. A group's is `tag` (`group_tag`), which its jobs record (their `msg`), and its
        time limits are its jobs' added up (each job keeps its own: `worker.processing`). With
        tracing on, the headers carry `trace` (a `traceparent`), else the current trace context
        (`shared.tracing`): a group's task is a trace of its own, each of its jobs continuing
        its submit's (the job's `trace`).
        """
        body = json.dumps([list(job_ids), self._kwargs, self._options]).encode()
        tag = (tag or job_ids[0]) + self._suffix
        headers = {**self._headers, "id": tag, "root_id": tag, "argsrepr": repr(list(job_ids))}
        if len(job_ids) > 1 and all(self._limits):
            headers["timelimit"] = [limit * len(job_ids) for limit in self._limits]
        return json.dumps(
            {
                "body": base64.b64encode(body).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {
                    **headers,
                    **({"traceparent": trace} if trace else tracing.message_headers()),
                },
                "properties": {
                    **self._properties,
                    "correlation_id": tag,
                    "delivery_mode": PERSISTENT_DELIVERY_MODE,
                    "delivery_info": {"exchange": "", "routing_key": self.name},
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": tag,
                },
            }
        )


def group_tag() -> str:
    """A new group message's task id and delivery tag."""
    return str(uuid.uuid4())


def webhook_queue(name: str, app: Celery) -> ClassifyQueue:
    """The queue of webhook deliveries (`worker.webhook_app`), its messages tagged apart from
    the same jobs' classify messages."""
    return ClassifyQueue(name, app, task_name=WEBHOOK_TASK, tag_suffix=WEBHOOK_TAG_SUFFIX)


def collection_webhook_queue(name: str, app: Celery) -> ClassifyQueue:
    """The webhook queue's messages about collections (one per collection, once it is done)."""
    return ClassifyQueue(
        name, app, task_name=COLLECTION_WEBHOOK_TASK, tag_suffix=COLLECTION_WEBHOOK_TAG_SUFFIX
    )


class Lanes:
    """The classify queues of the models a process knows, one per model and priority (a lane;
    `shared.priorities.queue_name` names them)."""

    def __init__(self, base: str, app: Celery, models: Sequence[str]) -> None:
        """`base` is QUEUE_NAME; `models` those the deployment serves."""
        self.models = tuple(models)
        self._queues: dict[tuple[str, str], ClassifyQueue] = {
            (model, priority): ClassifyQueue(queue_name(base, model, priority), app, model=model)
            for model in self.models
            for priority in PRIORITIES
        }

    def queue(self, model: str, priority: str) -> ClassifyQueue:
        """The queue of `model`'s jobs at `priority`; `KeyError` for a model not known here."""
        return self._queues[model, priority]

    def of(self, model: str) -> dict[str, ClassifyQueue]:
        """`model`'s queues by priority, in the order workers take them."""
        return {priority: self._queues[model, priority] for priority in PRIORITIES}

    def consumed(self, models: Sequence[str]) -> list[ClassifyQueue]:
        """The queues a node serving `models` consumes, in the order it takes them: every
        model's high before any normal, normal before low."""
        return [self._queues[model, p] for p in PRIORITIES for model in models]


def classify_queues(base: str, app: Celery, models: Sequence[str] = (ORIGINAL_MODEL,)) -> Lanes:
    """The classify queues of `models` (`base` is QUEUE_NAME)."""
    return Lanes(base, app, models)
