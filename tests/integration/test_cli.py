"""The `imgclf` command against the running stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.processes import SHARED_IMAGES, free_port

pytestmark = pytest.mark.integration


def _imgclf(api_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", "--api-url", api_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_submit_prints_a_table_of_top_predictions(stack: Stack) -> None:
    result = _imgclf(stack.api_url, "submit", str(SHARED_IMAGES / "labrador.jpg"))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split()[:4] == ["FILE", "STATUS", "TOP", "CLASS"]
    assert "succeeded" in row
    assert "Labrador retriever" in row


def test_submit_folder_as_json(stack: Stack, tmp_path: Path, labrador_bytes: bytes) -> None:
    (tmp_path / "a.jpg").write_bytes(labrador_bytes)
    (tmp_path / "b.jpg").write_bytes(labrador_bytes)
    result = _imgclf(stack.api_url, "submit", "--json", "--top-k", "3", str(tmp_path))
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)
    assert [Path(j["file"]).name for j in jobs] == ["a.jpg", "b.jpg"]
    assert all(len(j["result"]["predictions"]) == 3 for j in jobs)


def test_rejected_file_gives_exit_code_1(stack: Stack, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = _imgclf(stack.api_url, "submit", str(bad))
    assert result.returncode == 1
    assert "rejected" in result.stdout
    assert "Invalid image file" in result.stdout


def test_status_of_a_finished_job(stack: Stack) -> None:
    submitted = json.loads(
        _imgclf(stack.api_url, "submit", "--json", str(SHARED_IMAGES / "labrador.jpg")).stdout
    )
    result = _imgclf(stack.api_url, "status", "--json", submitted[0]["job_id"])
    assert result.returncode == 0
    assert json.loads(result.stdout)["status"] == "succeeded"


def test_status_of_unknown_job_is_exit_code_5(stack: Stack) -> None:
    result = _imgclf(stack.api_url, "status", "00000000-0000-4000-8000-000000000000")
    assert result.returncode == 5
    assert "not found" in result.stderr


def test_unreachable_api_is_exit_code_3(tmp_path: Path) -> None:
    result = _imgclf(
        f"http://127.0.0.1:{free_port()}", "submit", str(SHARED_IMAGES / "labrador.jpg")
    )
    assert result.returncode == 3
    assert "not reachable" in result.stderr


def test_no_images_is_usage_error(stack: Stack, tmp_path: Path) -> None:
    result = _imgclf(stack.api_url, "submit", str(tmp_path))
    assert result.returncode == 2
    assert "no images found" in result.stderr
