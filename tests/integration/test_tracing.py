"""One trace per job: a real API, a real worker node and a real webhook node export their spans
(OTLP over HTTP) to a receiver in the test, which checks that the upload, the enqueue, the
worker's claim, decode, preprocess, inference and finish, and the webhook's delivery share one
trace id with the right parents across the processes; and that JSON log lines carry it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import (
    RedisServer,
    api_server,
    running,
    service_env,
    wait_until,
    webhook_node_command,
    worker_command,
)
from tests.receivers import OtlpReceiver, ReceivedSpan, Receiver

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WORKER_SPANS = {"claim", "decode", "preprocess", "inference", "finish"}


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    made = OtlpReceiver()
    yield made
    made.close()


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    named = [span for span in spans if span.name == name]
    assert len(named) == 1, (name, [span.name for span in spans])
    return named[0]


def _traced_env(redis: RedisServer, otlp: OtlpReceiver) -> dict[str, str]:
    return service_env(
        redis.url,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        WEBHOOK_SECRET=SECRET,
        CALLBACK_ALLOWED_HOSTS="127.0.0.1",
    )


@contextlib.contextmanager
def _traced_stack(tmp_path: Path, otlp: OtlpReceiver, **settings: str) -> Iterator[str]:
    """Redis, a worker node, a webhook node and the API, all tracing to `otlp`; the API's URL
    once a worker is ready. `settings` go to every process beside the tracing ones."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = {**_traced_env(redis, otlp), **settings}
    try:
        with (
            running(worker_command(concurrency=1), env=env, log=tmp_path / "worker.log"),
            running(webhook_node_command(), env=env, log=tmp_path / "webhooks.log"),
            api_server(env, tmp_path / "api.log") as api,
        ):
            wait_until(lambda: httpx.get(f"{api}/ready").status_code == 200, timeout=60,
                       what="a worker")  # fmt: skip
            yield api
    finally:
        redis.stop()


def test_one_job_is_one_trace_across_api_worker_and_webhook(
    tmp_path: Path, otlp: OtlpReceiver, hooks: Receiver, labrador_bytes: bytes
) -> None:
    with _traced_stack(tmp_path, otlp) as api:
        job = httpx.post(
            f"{api}/api/v1/jobs",
            params={"wait": 20, "callback_url": hooks.url},
            files={"file": ("dog.jpg", labrador_bytes, "image/jpeg")},
            timeout=30,
        ).json()
        assert job["status"] == "succeeded", job
        wait_until(lambda: len(hooks.received) == 1, timeout=20, what="the webhook")
        expected = {"POST /api/v1/jobs", "enqueue", "webhook attempt"} | WORKER_SPANS
        wait_until(lambda: expected <= {s.name for s in otlp.spans}, timeout=20,
                   what=f"spans {expected}")  # fmt: skip
        worker_log = (tmp_path / "worker.log").read_text()

    enqueue = _one(otlp.spans, "enqueue")
    trace = [span for span in otlp.spans if span.trace_id == enqueue.trace_id]
    by_id = {span.span_id: span for span in trace}
    upload = next(s for s in trace if s.name == "POST /api/v1/jobs" and not s.parent_span_id)
    assert upload.service == "imgclf-api"
    assert enqueue.parent_span_id == upload.span_id
    assert job["job_id"] in enqueue.attributes["imgclf.job_ids"]  # type: ignore[operator]

    # The worker's task span continues the trace from the message the API wrote.
    run = next(s for s in trace if s.service == "imgclf-worker" and s.name.startswith("run/"))
    assert run.parent_span_id == enqueue.span_id
    for name in WORKER_SPANS:
        span = _one(trace, name)
        assert span.service == "imgclf-worker"
        assert span.parent_span_id == run.span_id, name
    assert _one(trace, "claim").attributes["imgclf.job_id"] == job["job_id"]

    # The webhook node's delivery continues it from the message the worker's finish wrote.
    attempt = _one(trace, "webhook attempt")
    assert attempt.service == "imgclf-webhooks"
    deliver = by_id[attempt.parent_span_id]
    assert deliver.name.startswith("run/")
    assert deliver.parent_span_id == _one(trace, "finish").span_id
    headers, _ = hooks.received[0]
    assert enqueue.trace_id in headers["traceparent"]

    # Every line the worker process that ran the job wrote about it names the trace. (The node's
    # main process logs "received" before any span exists: that line has the job id only.)
    about = [json.loads(line) for line in worker_log.splitlines()
             if line.startswith("{") and job["job_id"] in line]  # fmt: skip
    ran = [r for r in about if r["logger"] != "celery.worker.strategy"]
    assert ran
    assert all(record.get("trace_id") == enqueue.trace_id for record in ran), ran


@pytest.mark.parametrize("batch_inference", ["off", "on"])
def test_each_job_of_a_group_continues_its_submit_s_trace(
    tmp_path: Path, otlp: OtlpReceiver, hooks: Receiver, labrador_bytes: bytes,
    batch_inference: str,
) -> None:  # fmt: skip
    """A batch's two jobs travel in one message: the worker's task is a trace of its own, and
    each job's spans (decode, preprocess, inference, finish, under a `job` span naming it)
    continue the batch request's trace, whether the model runs the images one by one or
    together; each job's webhook delivery continues its `finish`."""
    with _traced_stack(tmp_path, otlp, WORKER_BATCH_INFERENCE=batch_inference) as api:
        files = [("files", (f"{n}.jpg", labrador_bytes, "image/jpeg")) for n in range(2)]
        jobs = httpx.post(f"{api}/api/v1/jobs/batch", files=files, timeout=30,
                          params={"wait": 20, "callback_url": hooks.url}).json()["jobs"]  # fmt: skip
        assert {job["status"] for job in jobs} == {"succeeded"}
        wait_until(lambda: len(hooks.received) == 2, timeout=20, what="both webhooks")
        wait_until(lambda: len([s for s in otlp.spans if s.name == "webhook attempt"]) == 2,
                   timeout=20, what="both jobs' spans")  # fmt: skip

    enqueue = _one(otlp.spans, "enqueue")
    trace = [span for span in otlp.spans if span.trace_id == enqueue.trace_id]
    by_id = {span.span_id: span for span in trace}
    job_spans = [s for s in trace if s.name == "job"]
    assert sorted(s.attributes["imgclf.job_id"] for s in job_spans) == sorted(  # type: ignore[type-var]
        job["job_id"] for job in jobs
    )
    assert {s.parent_span_id for s in job_spans} == {enqueue.span_id}
    for name in ("decode", "preprocess", "inference", "finish"):
        spans = [s for s in trace if s.name == name]
        assert len(spans) == 2, name
        assert {by_id[s.parent_span_id].name for s in spans} == {"job"}, name
        owners = {by_id[s.parent_span_id].attributes["imgclf.job_id"] for s in spans}
        assert owners == {job["job_id"] for job in jobs}, name
    attempts = [s for s in trace if s.name == "webhook attempt"]
    assert len(attempts) == 2
    for attempt in attempts:
        finish = by_id[by_id[attempt.parent_span_id].parent_span_id]
        assert finish.name == "finish"
        assert finish.attributes["imgclf.job_id"] == attempt.attributes["imgclf.job_id"]
    task = next(s for s in otlp.spans if s.service == "imgclf-worker" and s.name.startswith("run/"))
    assert task.trace_id != enqueue.trace_id
    assert _one(otlp.spans, "claim").parent_span_id == task.span_id
