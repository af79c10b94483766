"""Caps on an upload's container structure, counted from its bytes before Pillow walks it.

Pillow's parsers cost time per segment, chunk or strip, not per pixel: a 10 MiB JPEG of an 8x8
image behind millions of empty comment segments, or a PNG with hundreds of thousands of private
chunks, took seconds to open. Real photos have a few dozen segments and chunks, so far fewer than
these caps; anything past them is refused before any parser runs. Each walk stops at its cap.
"""

from __future__ import annotations

from typing import Literal

from shared.errors import ImageTooLargeError, InvalidImageError

# Segments before a JPEG's frame header (APPn, DQT, DHT, COM, ...): cameras write 10-30.
MAX_JPEG_SEGMENTS = 1_000
# Scans of a progressive JPEG: encoders write about 10; each one is a decoding pass.
MAX_JPEG_SCANS = 64
# PNG chunks of any kind (a large image in small IDAT chunks has a few thousand).
MAX_PNG_CHUNKS = 20_000
# TIFF strips or tiles (a 50 MP image one row per strip has 7071).
MAX_TIFF_STRIPS = 65_536

_SOS = b"\xff\xda"


def check_structure(data: bytes) -> None:
    """`ImageTooLargeError` when the container holds more pieces than any real image needs,
    `InvalidImageError` when its structure is broken; nothing for other formats."""
    if data.startswith(b"\xff\xd8"):
        _jpeg(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        _png(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        _tiff(data)


def _too_many(what: str, cap: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"Image too complex: more than {cap} {what}")


def _jpeg(data: bytes) -> None:
    pos, segments = 2, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InvalidImageError("Invalid image file: a JPEG segment without its marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise _too_many("JPEG segments before the frame header", MAX_JPEG_SEGMENTS)
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    # Counting markers in C is cheap; a scan marker can also be a byte pair inside entropy data
    # only when stuffed (0xFF00), so this count is exact for a well-formed file.
    if data.count(_SOS, pos) > MAX_JPEG_SCANS:
        raise _too_many("JPEG scans", MAX_JPEG_SCANS)


def _png(data: bytes) -> None:
    pos, chunks = 8, 0
    while pos + 8 <= len(data):
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _too_many("PNG chunks", MAX_PNG_CHUNKS)
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IEND":
            return
        pos += 12 + length


def _tiff(data: bytes) -> None:
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    first_ifd = int.from_bytes(data[4:8], order)
    if first_ifd + 2 > len(data):
        raise InvalidImageError("Invalid image file: a TIFF without its first directory")
    entries = int.from_bytes(data[first_ifd : first_ifd + 2], order)
    for index in range(min(entries, 4096)):
        entry = first_ifd + 2 + 12 * index
        tag = int.from_bytes(data[entry : entry + 2], order)
        if tag in (273, 324):  # StripOffsets, TileOffsets
            count = int.from_bytes(data[entry + 4 : entry + 8], order)
            if count > MAX_TIFF_STRIPS:
                raise _too_many("TIFF strips or tiles", MAX_TIFF_STRIPS)
