"""A corpus of hostile and broken uploads: each gets its documented answer, the system stays up."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import Stack
from tests.images import (
    camera_jpeg,
    encode,
    gradient,
    jpeg_with_orientation,
    png_header_only,
    structure_bombs,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    status: int  # the API's answer
    code: str | None = None  # its error code, or the failed job's when status is 202
    job: str | None = None  # final job status when accepted


def _many_frame_gif(frames: int) -> bytes:
    images = [Image.new("P", (16, 16), i % 256) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=10)
    return out.getvalue()


def _bad_crc_png() -> bytes:
    data = bytearray(encode(gradient(), "PNG"))
    data[40] ^= 0xFF
    return bytes(data)


def _corpus() -> list[Case]:
    jpeg, png = encode(gradient(), "JPEG"), encode(gradient(), "PNG")
    sixteen = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 15).astype(np.uint16))
    floats = Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64))
    heic = encode(gradient(), "HEIF")
    return [
        Case("zero-bytes", b"", 400, "invalid_image"),
        Case("random-bytes", os.urandom(4096), 400, "invalid_image"),
        Case("text", b"hello, I am a cat", 400, "invalid_image"),
        Case("html", b"<!doctype html><html><body><img src=x></body></html>", 400, "invalid_image"),
        Case(
            "svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
            400,
            "invalid_image",
        ),
        Case("pdf", b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF", 400, "invalid_image"),
        Case("truncated-jpeg", jpeg[: len(jpeg) // 2], 400, "invalid_image"),
        Case("truncated-png", png[: len(png) // 2], 400, "invalid_image"),
        Case("png-bad-crc", _bad_crc_png(), 400, "invalid_image"),
        Case(
            "jpeg-corrupt-scan",
            jpeg[:300] + b"\0" * 300 + jpeg[-2:],
            202,
            "invalid_image",
            "failed",
        ),
        Case("decompression-bomb", png_header_only(100_000, 100_000), 413, "image_too_large"),
        Case("ico-unsupported", encode(gradient(32, 32), "ICO"), 415, "unsupported_format"),
        Case("ppm-unsupported", encode(gradient(32, 32), "PPM"), 415, "unsupported_format"),
        Case("gif-3000-frames", _many_frame_gif(3000), 202, None, "succeeded"),
        Case(
            "one-by-one",
            encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
            202,
            None,
            "succeeded",
        ),
        Case(
            "100000-by-1",
            encode(Image.new("RGB", (100_000, 1), (9, 9, 9)), "PNG"),
            202,
            None,
            "succeeded",
        ),
        Case("tiff-16-bit", encode(sixteen, "TIFF"), 202, None, "succeeded"),
        Case("tiff-float", encode(floats, "TIFF"), 202, None, "succeeded"),
        Case("cmyk-jpeg", encode(gradient().convert("CMYK"), "JPEG"), 202, None, "succeeded"),
        Case("palette-png", encode(gradient().convert("P"), "PNG"), 202, None, "succeeded"),
        Case("rgba-png", encode(gradient().convert("RGBA"), "PNG"), 202, None, "succeeded"),
        Case("exif-rotated-jpeg", jpeg_with_orientation(gradient(), 6), 202, None, "succeeded"),
        Case("webp", encode(gradient(), "WEBP"), 202, None, "succeeded"),
        Case("bmp", encode(gradient(), "BMP"), 202, None, "succeeded"),
        Case("heic-from-a-phone", heic, 202, None, "succeeded"),
        Case("truncated-heic", heic[: len(heic) // 2], 400, "invalid_image"),
        Case("sixteen-bit-png", encode(sixteen, "PNG"), 202, None, "succeeded"),
        Case("camera-jpeg-huge-exif-and-icc", camera_jpeg(), 202, None, "succeeded"),
    ]


CORPUS = _corpus()


def _clean(response: httpx.Response) -> None:
    text = response.text
    assert "Traceback" not in text
    assert "/work/" not in text
    assert "site-packages" not in text


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_file_gets_its_documented_answer(api: httpx.Client, case: Case) -> None:
    response = api.post("/api/v1/jobs", files={"file": ("upload.jpg", case.data, "image/jpeg")})
    _clean(response)
    assert response.status_code == case.status, response.text
    if case.status != 202:
        assert response.json()["code"] == case.code
        return
    job = api.get(f"/api/v1/jobs/{response.json()['job_id']}", params={"wait": 30}).json()
    assert job["status"] == case.job
    if case.code is not None:
        assert job["error"]["code"] == case.code


def _post_raw(
    api: httpx.Client,
    *,
    files: object = None,
    data: object = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    return api.post("/api/v1/jobs", files=files, data=data, headers=headers, content=content)  # type: ignore[arg-type]


REQUEST_CASES: list[tuple[str, Callable[[httpx.Client, bytes], httpx.Response], int]] = [
    ("no-file", lambda a, d: _post_raw(a, data={"x": "1"}), 422),
    ("wrong-field-name", lambda a, d: _post_raw(a, files={"image": ("a.jpg", d)}), 422),
    (
        "two-files-in-one-field",
        lambda a, d: _post_raw(a, files=[("file", ("a.jpg", d)), ("file", ("b.jpg", d))]),
        202,
    ),
    (
        "json-body",
        lambda a, d: _post_raw(
            a, content=b'{"file": "x"}', headers={"content-type": "application/json"}
        ),
        422,
    ),
    (
        "wrong-content-type",
        lambda a, d: _post_raw(a, content=d, headers={"content-type": "image/jpeg"}),
        422,
    ),
    (
        "broken-multipart",
        lambda a, d: _post_raw(
            a,
            content=b"--x\r\nnonsense",
            headers={"content-type": "multipart/form-data; boundary=x"},
        ),
        422,
    ),
    (
        "path-traversal-name",
        lambda a, d: _post_raw(a, files={"file": ("../../../etc/passwd", d)}),
        202,
    ),
    (
        "control-chars-name",
        lambda a, d: _post_raw(a, files={"file": ("a\x00b\x1b[31m\r\n.jpg", d)}),
        202,
    ),
    (
        "lying-content-type",
        lambda a, d: _post_raw(a, files={"file": ("a.png", d, "text/html")}),
        202,
    ),
]


@pytest.mark.parametrize(
    ("name", "send", "status"), REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES]
)
def test_malformed_request_gets_a_clean_answer(
    api: httpx.Client,
    labrador_bytes: bytes,
    name: str,
    send: Callable[[httpx.Client, bytes], httpx.Response],
    status: int,
) -> None:
    response = send(api, labrador_bytes)
    _clean(response)
    assert response.status_code == status, response.text
    if response.status_code == 202:
        job = response.json()
        assert "/" not in job["filename"]
        assert "\x00" not in job["filename"]
        assert "\x1b" not in job["filename"]
        assert job["content_type"] == "image/jpeg"  # detected, not what the client claimed
    else:
        assert response.json()["code"] in ("validation_error", "invalid_request", "http_error")


@pytest.mark.parametrize(
    "job_id", ["nope", "1", "../../etc", "%00", "a" * 300, str(uuid.uuid4()).upper() + "x"]
)
def test_malformed_job_ids_are_rejected_cleanly(api: httpx.Client, job_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = api.request(method, f"/api/v1/jobs/{job_id}")
        _clean(response)
        assert response.status_code in (404, 422)


def test_oversized_body_sent_slowly_is_cut_off(stack: Stack) -> None:
    """A client trickling 11 MiB with no Content-Length gets 413 once it passes the limit."""
    url = urlsplit(stack.api_url)
    boundary = "slow-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
        )
        chunk = b"\0" * (256 * 1024)
        reply = b""
        for payload in [head] + [chunk] * 48:
            try:
                sock.sendall(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            except OSError:
                break  # the server closed the connection after answering
            time.sleep(0.01)
            sock.settimeout(0.001)
            with contextlib.suppress(OSError):
                reply += sock.recv(65536)
            sock.settimeout(30)
            if reply:
                break
        if not reply:
            reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"upload_too_large" in reply


def test_system_is_healthy_after_the_corpus(api: httpx.Client, labrador_bytes: bytes) -> None:
    assert api.get("/ready").status_code == 200
    job_id = api.post("/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)}).json()["job_id"]
    job = api.get(f"/api/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert job["result"]["predictions"][0]["label"] == "Labrador retriever"


@pytest.mark.parametrize("name", ["com-segments", "png-chunks", "jpeg-scans", "tiff-strips"])
def test_structure_bombs_are_refused_while_health_keeps_answering(stack: Stack, name: str) -> None:
    """Checked from the bytes before any parser walks them (they took 4-7 s on the event loop,
    during which /health did not answer)."""
    data, what = structure_bombs()[name]
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(
            httpx.post, f"{stack.api_url}/api/v1/jobs", files={"file": ("x", data)}, timeout=60
        )
        health = [httpx.get(f"{stack.api_url}/health", timeout=10) for _ in range(5)]
        refused = upload.result()
    assert [h.status_code for h in health] == [200] * 5
    assert refused.status_code == 413
    assert refused.json()["code"] == "image_too_large"
    assert what in refused.json()["message"]
