"""Log lines that join up: with LOG_FORMAT=json every process writes one JSON object per line
(python-json-logger), and every line written while a job is being handled carries its `job_id`,
in the API and the worker alike, so one job's story is a filter away; with tracing on, the trace
and span ids too, so a line leads to its trace.

The job comes from `job_context` (a context variable, so concurrent requests on one event loop
keep theirs apart) or, for Celery's own lines about a task, from the task id, which is the job
id (`shared.kombu_messages`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal

from celery.signals import setup_logging
from pythonjsonlogger.json import JsonFormatter

from shared import tracing

LogFormat = Literal["text", "json"]

_JOB_ID: ContextVar[str | None] = ContextVar("imgclf_job_id", default=None)
_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Lines logged inside carry `job_id`."""
    token = _JOB_ID.set(job_id)
    try:
        yield
    finally:
        _JOB_ID.reset(token)


# A job's own path in an access log line: /api/v1/jobs/<uuid>[/retry].
_JOB_PATH = re.compile(r"/jobs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


class JobIdFilter(logging.Filter):
    """Adds `job_id` to a record: the current job's; else the id of the Celery task a line of
    Celery's is about (its arguments carry it as `id`), or the job in an access log line's path
    (uvicorn logs it after the request, outside its context). With tracing on, `trace_id` and
    `span_id` of the current span too."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = _JOB_ID.get() or _job_in_args(record.args)
        if job_id is not None:
            record.job_id = job_id
        if ids := tracing.current_ids():
            record.trace_id, record.span_id = ids
        return True


def _job_in_args(args: object) -> str | None:
    if isinstance(args, dict) and isinstance(args.get("id"), str):
        return str(args["id"]).partition(".")[0]  # a webhook task's id: <job id>.webhook
    if isinstance(args, tuple):
        for arg in args:
            if isinstance(arg, str) and (found := _JOB_PATH.search(arg)):
                return found.group(1)
    return None


def json_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            _FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    )
    handler.addFilter(JobIdFilter())
    return handler


def configure(level: str, log_format: LogFormat) -> None:
    """The root logger at `level`, writing text or JSON lines to stderr."""
    root = logging.getLogger()
    root.setLevel(level)
    if log_format == "json":
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(json_handler())
    elif not root.handlers:
        logging.basicConfig(level=level)


def for_celery(level: str, log_format: LogFormat) -> None:
    """In a Celery node: JSON lines with LOG_FORMAT=json (a `setup_logging` receiver makes
    Celery leave logging to it), else Celery's own text."""
    if log_format != "json":
        return

    def configure_json(**_: object) -> None:
        configure(level, "json")

    setup_logging.connect(configure_json, weak=False, dispatch_uid="imgclf-json-logging")
