"""The `imgclf` command against the running stack."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def _rows(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_submit_prints_a_row_per_image(stack: Stack) -> None:
    result = _imgclf(stack.api_url, "submit", str(SHARED_IMAGES / "labrador.jpg"))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["STATUS", "PROB", "TOP", "CLASS", "IMAGE"]
    assert row.split()[0] == "succeeded"
    assert "Labrador retriever" in row
    assert row.endswith(str(SHARED_IMAGES / "labrador.jpg"))
    assert "1 succeeded" in result.stderr


def test_submit_with_another_model_and_the_models_listed(stack: Stack) -> None:
    """The session's stack serves SqueezeNet and the superclass model (`tests.models`)."""
    listed = _imgclf(stack.api_url, "models")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:2] for line in listed.stdout.strip().splitlines()[1:]]
    assert rows == [["squeezenet", "(default)"], ["superclass", "1"]]
    result = _imgclf(stack.api_url, "submit", "--json", "--model", "superclass",
                     str(SHARED_IMAGES / "labrador.jpg"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = _rows(result.stdout)
    assert row["label"] == "dog"
    job = json.loads(_imgclf(stack.api_url, "status", "--json", row["job_id"]).stdout)
    assert job["model"] == "superclass"
    unknown = _imgclf(stack.api_url, "submit", "--model", "resnet", str(SHARED_IMAGES))
    assert unknown.returncode == 2
    assert "unknown model 'resnet'; the API serves ['squeezenet', 'superclass']" in unknown.stderr


def test_submit_folder_as_json(stack: Stack, tmp_path: Path, labrador_bytes: bytes) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jpg").write_bytes(labrador_bytes)
    (tmp_path / "sub" / "b.jpg").write_bytes(labrador_bytes)
    result = _imgclf(stack.api_url, "submit", "--json", "--top-k", "3", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    assert sorted(row["custom_id"] for row in rows) == ["a.jpg", "sub/b.jpg"]
    assert all(len(row["predictions"]) == 3 for row in rows)


def test_a_file_that_is_not_an_image_is_reported_and_exit_code_1(
    stack: Stack, tmp_path: Path, labrador_bytes: bytes
) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    (tmp_path / "good.jpg").write_bytes(labrador_bytes)
    result = _imgclf(stack.api_url, "submit", "--json", str(tmp_path))
    assert result.returncode == 1
    rows = {row["custom_id"]: row for row in _rows(result.stdout)}
    assert (rows["bad.jpg"]["status"], rows["bad.jpg"]["error"]) == ("failed", "invalid_image")
    assert rows["good.jpg"]["status"] == "succeeded"


def test_status_of_a_finished_job(stack: Stack) -> None:
    submitted = _rows(
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


class DroppingProxy:
    """A TCP proxy in front of the API that swallows the answer to the first upload of images to
    a collection: the request reaches the API, and the client sees its connection close instead
    of the answer."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.connections = 0
        self.dropped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection((self.target.hostname, self.target.port))
        drop = threading.Event()

        def requests() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if b"/images HTTP/1.1" in data and not self.dropped.is_set():
                        self.dropped.set()
                        drop.set()
                    upstream.sendall(data)

        threading.Thread(target=requests, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if drop.is_set():  # the API has answered the upload: its jobs exist
                    break
                client.sendall(data)
        client.close()
        upstream.close()

    def close(self) -> None:
        self._server.close()


def test_an_upload_whose_answer_was_lost_is_sent_again_and_adds_each_image_once(
    stack: Stack, tmp_path: Path, labrador_bytes: bytes
) -> None:
    photo = tmp_path / f"{uuid.uuid4().hex}.jpg"
    photo.write_bytes(labrador_bytes)
    proxy = DroppingProxy(stack.api_url)
    try:
        result = _imgclf(proxy.url, "submit", "--json", str(photo))
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert proxy.dropped.is_set()
    assert proxy.connections >= 2  # the answer was lost once, and the upload sent again
    (row,) = _rows(result.stdout)
    client = stack.redis.client()
    made = [
        k
        for k in client.scan_iter("imgclf:job:*")
        if client.hget(k, "filename") == photo.name.encode()
    ]
    assert made == [f"imgclf:job:{row['job_id']}".encode()]


def test_submit_with_a_priority(stack: Stack) -> None:
    photo = str(SHARED_IMAGES / "labrador.jpg")
    result = _imgclf(stack.api_url, "submit", "--json", "--priority", "high", photo)
    assert result.returncode == 0, result.stderr
    (row,) = _rows(result.stdout)
    job = json.loads(_imgclf(stack.api_url, "status", "--json", row["job_id"]).stdout)
    assert job["priority"] == "high"


def test_connection_options_work_after_the_subcommand_too(stack: Stack) -> None:
    photo = str(SHARED_IMAGES / "labrador.jpg")
    command = [sys.executable, "-m", "ui.cli", "submit", photo, "--api-url", stack.api_url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Labrador retriever" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "ui.cli", "submit", "nope.jpg"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (missing.returncode, "Traceback" in missing.stderr) == (2, False)
    assert "no such file or folder: nope.jpg" in missing.stderr
