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


def test_submit_prints_a_table_of_top_predictions(stack: Stack) -> None:
    result = _imgclf(stack.api_url, "submit", str(SHARED_IMAGES / "labrador.jpg"))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split()[:4] == ["FILE", "STATUS", "TOP", "CLASS"]
    assert "succeeded" in row
    assert "Labrador retriever" in row


def test_submit_with_another_model_and_the_models_listed(stack: Stack) -> None:
    """The session's stack serves SqueezeNet and the superclass model (`tests.models`)."""
    listed = _imgclf(stack.api_url, "models")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:2] for line in listed.stdout.strip().splitlines()[1:]]
    assert rows == [["squeezenet", "(default)"], ["superclass", "1"]]
    result = _imgclf(stack.api_url, "submit", "--json", "--model", "superclass",
                     str(SHARED_IMAGES / "labrador.jpg"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (job,) = json.loads(result.stdout)
    assert job["model"] == "superclass"
    assert job["result"]["predictions"][0]["label"] == "dog"
    unknown = _imgclf(stack.api_url, "submit", "--model", "resnet", str(SHARED_IMAGES))
    assert unknown.returncode == 2
    assert "unknown model 'resnet'; the API serves ['squeezenet', 'superclass']" in unknown.stderr


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


class DroppingProxy:
    """A TCP proxy in front of the API whose first connection's request reaches the API, and
    whose answer is swallowed: the client sees the connection close, not the 202."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            drop = self.connections == 1
            threading.Thread(target=self._serve, args=(client, drop), daemon=True).start()

    def _serve(self, client: socket.socket, drop: bool) -> None:
        upstream = socket.create_connection((self.target.hostname, self.target.port))
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        if drop:
            upstream.recv(65536)  # the API has answered: the job exists
            client.close()
            upstream.close()
            return
        _pump(upstream, client)

    def close(self) -> None:
        self._server.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def test_a_submit_whose_answer_was_lost_is_sent_again_and_makes_one_job(
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
    assert proxy.connections >= 2  # the answer was lost once, and the submit sent again
    (job,) = json.loads(result.stdout)
    client = stack.redis.client()
    made = [
        k
        for k in client.scan_iter("imgclf:job:*")
        if client.hget(k, "filename") == photo.name.encode()
    ]
    assert made == [f"imgclf:job:{job['job_id']}".encode()]


def test_submit_with_a_priority(stack: Stack) -> None:
    photo = str(SHARED_IMAGES / "labrador.jpg")
    result = _imgclf(stack.api_url, "submit", "--json", "--priority", "high", photo)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["priority"] == "high"


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
