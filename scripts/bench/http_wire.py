"""A minimal keep-alive HTTP/1.1 client for the load generator.

The load generator shares the measured cores with the system under test, so every millisecond it
spends per image is taken from the workers. A general client library costs several milliseconds
per multi-megabyte upload here; this one writes each request from bytes encoded once and reads
responses by Content-Length, which is all the API's answers need.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

BOUNDARY = secrets.token_hex(16)


def multipart_post(path: str, *images: bytes, field: str = "file") -> bytes:
    """A complete POST request uploading `images` as the form's `field` (one part each)."""
    parts = [
        b"".join(
            [
                f"--{BOUNDARY}\r\n".encode(),
                f'Content-Disposition: form-data; name="{field}"; '
                f'filename="img{n}.jpg"\r\n'.encode(),
                b"Content-Type: image/jpeg\r\n\r\n",
                data,
                b"\r\n",
            ]
        )
        for n, data in enumerate(images)
    ]
    body = b"".join([*parts, f"--{BOUNDARY}--\r\n".encode()])
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


class HttpError(RuntimeError):
    pass


class Connection:
    """One persistent connection; requests on it are sequential, as HTTP/1.1 needs."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send a prepared request; the status code and body of the answer."""
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length, close = 0, False
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                raise HttpError(f"unexpected Transfer-Encoding: {value.strip()}")
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body = await self._reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def json(self, raw: bytes, *, expect: int | tuple[int, ...]) -> Any:
        status, body = await self.request(raw)
        if status not in (expect if isinstance(expect, tuple) else (expect,)):
            raise HttpError(f"HTTP {status}: {body[:200]!r}")
        return json.loads(body)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
            self._writer = None
