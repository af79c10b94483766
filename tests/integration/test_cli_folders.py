"""`imgclf submit` on folders: results written as they come, and a run started again (the same
command, after it ended or was killed) continuing the same collection, no image classified
twice."""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.jobs.keys import collection_key
from tests.conftest import Stack
from tests.processes import RedisServer, api_server, metric_samples, service_env, wait_until

pytestmark = pytest.mark.integration


def _command(api_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "ui.cli", "--api-url", api_url, "submit", *args]


def _collection_id(stderr: str) -> str:
    found = re.search(r"imgclf: collection ([0-9a-f-]{36}), (\d+) images", stderr)
    assert found, stderr
    return found[1]


def _upload_requests(api_url: str) -> float:
    """The API's count of requests that added images to a collection, so far."""
    wanted = {"method": "POST", "route": "/api/v1/collections/{collection_id}/images"}
    return sum(s.value for s in metric_samples(api_url)
               if s.name == "imgclf_http_request_duration_seconds_count"
               and wanted.items() <= s.labels.items())  # fmt: skip


def _folder(root: Path, photo: bytes, count: int) -> Path:
    for n in range(count):
        shelf = root / f"shelf-{n % 3}"
        shelf.mkdir(parents=True, exist_ok=True)
        (shelf / f"{n:03d}.jpg").write_bytes(photo)
    return root


def test_results_as_csv_and_the_same_command_again_continues_the_collection(
    stack: Stack, tmp_path: Path, labrador_bytes: bytes
) -> None:
    folder = _folder(tmp_path / "photos", labrador_bytes, 5)
    (folder / "shelf-0" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    output = tmp_path / "results.csv"
    command = _command(stack.api_url, str(folder), "--output", str(output), "--top-k", "2")
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 1, first.stderr  # one file is not an image
    rows = list(csv.DictReader(output.open(newline="")))
    assert sorted(row["custom_id"] for row in rows) == [
        "shelf-0/000.jpg",
        "shelf-0/003.jpg",
        "shelf-0/broken.jpg",
        "shelf-1/001.jpg",
        "shelf-1/004.jpg",
        "shelf-2/002.jpg",
    ]
    by_id = {row["custom_id"]: row for row in rows}
    assert by_id["shelf-0/broken.jpg"]["error"] == "invalid_image"
    assert by_id["shelf-1/001.jpg"]["label"] == "Labrador retriever"
    assert "5 succeeded" in first.stderr
    assert "1 failed" in first.stderr

    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 1, again.stderr
    assert _collection_id(again.stderr) == _collection_id(first.stderr)
    rerun = {row["custom_id"]: row["job_id"] for row in csv.DictReader(output.open(newline=""))}
    assert rerun == {custom_id: row["job_id"] for custom_id, row in by_id.items()}

    fresh = subprocess.run([*command, "--new"], capture_output=True, text=True, timeout=120,
                           check=False)  # fmt: skip
    assert _collection_id(fresh.stderr) != _collection_id(first.stderr)


def test_a_run_killed_midway_and_started_again_classifies_each_image_once(
    stack: Stack, tmp_path: Path, labrador_bytes: bytes
) -> None:
    folder = _folder(tmp_path / "photos", labrador_bytes, 60)
    output = tmp_path / "results.jsonl"
    command = _command(stack.api_url, str(folder), "-o", str(output), "--batch", "2",
                       "--in-flight", "1")  # fmt: skip
    redis = stack.redis.client()
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert first.stderr is not None
    cid = _collection_id(first.stderr.readline())
    # Killed once some images are in, and long before all of them are.
    wait_until(
        lambda: int(redis.hget(collection_key(cid), "total") or 0) >= 6, timeout=60, what="uploads"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert int(redis.hget(collection_key(cid), "total") or 0) < 60

    before = int(redis.hget(collection_key(cid), "total") or 0)
    uploads = _upload_requests(stack.api_url)
    again = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert again.returncode == 0, again.stderr
    assert _collection_id(again.stderr) == cid
    # It sent only what the collection lacked: a request per 2 of those, none for the rest.
    assert _upload_requests(stack.api_url) - uploads <= (60 - before + 1) // 2 + 1
    lines = output.read_text().splitlines()
    assert len(lines) == 60
    assert int(redis.hget(collection_key(cid), "total") or 0) == 60
    made = [k for k in redis.scan_iter("imgclf:job:*", count=1000)
            if redis.hget(k, "collection_id") == cid.encode()]  # fmt: skip
    assert len(made) == 60


def test_a_run_whose_collection_was_canceled_says_how_to_start_over(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    """No worker: the run uploads, closes and gives up waiting (exit 4); its collection is then
    canceled (by a person in the UI, say), and the same command says so."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        with api_server(service_env(redis.url), tmp_path / "api.log") as api:
            command = _command(api, str(_folder(tmp_path / "photos", labrador_bytes, 3)),
                               "--timeout", "1")  # fmt: skip
            waited = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                    check=False)  # fmt: skip
            assert waited.returncode == 4, waited.stderr
            cid = _collection_id(waited.stderr)
            canceled = httpx.delete(f"{api}/api/v1/collections/{cid}").json()
            assert (canceled["state"], canceled["counts"]["canceled"]) == ("canceled", 3)
            again = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                   check=False)  # fmt: skip
    finally:
        redis.stop()
    assert again.returncode == 2
    assert f"({cid}) is canceled; run it with --new" in again.stderr
