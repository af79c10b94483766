"""A collection's state from its record, its result rows (JSONL and CSV alike), and the checks
of custom_ids: pure functions, no Redis."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from starlette.datastructures import UploadFile

from api.collection_items import MAX_CUSTOM_ID_CHARS, custom_ids
from shared.collection_schemas import RESULT_FIELDS, csv_lines, gone_row, jsonl_line, result_row
from shared.errors import InvalidCustomIdError
from shared.jobs.collections import stored
from shared.schemas import ErrorBody, Job, JobResult, JobStatus, ModelRef, Prediction, Timings

CREATED = 1_700_000_000.0
FIELDS = {
    "owner": "",
    "model": "squeezenet",
    "top_k": "3",
    "priority": "normal",
    "created_at": repr(CREATED),
    "expires_at": repr(CREATED + 100),
    "total": "4",
    "queued": "1",
    "running": "1",
    "succeeded": "1",
    "failed": "1",
}


@pytest.mark.parametrize(
    ("extra", "now", "state"),
    [
        ({}, CREATED + 1, "open"),
        ({"closed_at": repr(CREATED + 2)}, CREATED + 3, "running"),
        ({}, CREATED + 101, "expired"),
        ({"closed_at": "1", "canceled_at": "1"}, CREATED + 3, "canceled"),
        ({"closed_at": "1", "queued": "0", "running": "0", "canceled": "2"}, CREATED + 500,
         "completed"),
    ],
)  # fmt: skip
def test_state_follows_closing_counts_and_time(
    extra: dict[str, str], now: float, state: str
) -> None:
    collection = stored("c1", {**FIELDS, **extra}, now=now).collection
    assert collection.state.value == state
    assert collection.expires_at == datetime.fromtimestamp(CREATED + 100, UTC)


def _job(**fields: object) -> Job:
    base = {
        "job_id": "j1",
        "status": JobStatus.SUCCEEDED,
        "created_at": datetime.now(UTC),
        "filename": "a.jpg",
        "content_type": "image/jpeg",
        "size_bytes": 10,
        "width": 1,
        "height": 1,
        "top_k": 2,
        "custom_id": 'shelf/a, "quoted".jpg',
    }
    return Job.model_validate({**base, **fields})


def test_a_result_row_in_jsonl_and_csv() -> None:
    predictions = [
        Prediction(class_id=208, label="Labrador retriever", probability=0.75),
        Prediction(class_id=207, label="golden retriever", probability=0.2),
    ]
    result = JobResult(
        predictions=predictions,
        model=ModelRef(name="squeezenet", sha256="x"),
        timings=Timings(queue_wait_ms=1, decode_ms=1, preprocess_ms=1, inference_ms=1),
    )
    ok = result_row(_job(result=result))
    failed = result_row(
        _job(job_id="j2", status="failed", error=ErrorBody(code="invalid_image", message="no"))
    )
    assert (ok["label"], ok["probability"], len(ok["predictions"])) == (
        "Labrador retriever",
        0.75,
        2,
    )
    assert (failed["label"], failed["error"], failed["predictions"]) == (None, "invalid_image", [])
    assert json.loads(jsonl_line(ok)) == ok
    table = list(csv.DictReader(io.StringIO(csv_lines([ok, failed, gone_row("j3")], header=True))))
    assert list(table[0]) == list(RESULT_FIELDS)
    assert table[0]["custom_id"] == 'shelf/a, "quoted".jpg'
    assert json.loads(table[0]["predictions"]) == ok["predictions"]
    assert (table[1]["label"], table[1]["error"]) == ("", "invalid_image")
    assert (table[2]["job_id"], table[2]["status"]) == ("j3", "expired")


def test_custom_ids_come_from_fields_or_filenames_and_are_checked() -> None:
    files = [UploadFile(io.BytesIO(b""), filename=name) for name in ("x/a.jpg", "b.jpg")]
    assert custom_ids(files, None) == ["x/a.jpg", "b.jpg"]
    assert custom_ids(files, ["one", "two"]) == ["one", "two"]
    for bad in (["one"], ["ok", "tab\there"], ["ok", "x" * (MAX_CUSTOM_ID_CHARS + 1)], ["", "b"]):
        with pytest.raises(InvalidCustomIdError):
            custom_ids(files, bad)
    with pytest.raises(InvalidCustomIdError, match="empty"):
        custom_ids([UploadFile(io.BytesIO(b""), filename=None)], None)
