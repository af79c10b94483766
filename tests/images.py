"""Images generated for tests, in every format and mode the pipeline must handle."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def gradient(width: int = 320, height: int = 240) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    rgb = np.stack(
        [
            np.tile(x, (height, 1)),
            np.tile(y[:, None], (1, width)),
            np.full((height, width), 128, np.uint8),
        ],
        axis=-1,
    )
    return Image.fromarray(rgb, "RGB")


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares huge dimensions: the shape of a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\0" * 16)
    idat_chunk = b"IDAT" + idat
    body += struct.pack(">I", len(idat)) + idat_chunk + struct.pack(">I", zlib.crc32(idat_chunk))
    iend = b"IEND"
    body += struct.pack(">I", 0) + iend + struct.pack(">I", zlib.crc32(iend))
    return b"\x89PNG\r\n\x1a\n" + body


def jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def camera_jpeg() -> bytes:
    """A JPEG as cameras and print workflows write them: a 60 KB maker note in its EXIF and a
    700 KB ICC profile split over many APP2 segments."""
    exif = Image.Exif()
    exif[0x927C] = b"M" * 60_000  # MakerNote: a vendor's opaque block
    exif[0x010F] = "imgclf test camera"
    return encode(gradient(800, 600), "JPEG", exif=exif.tobytes(), icc_profile=b"\0" * 700_000)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def structure_bombs() -> dict[str, tuple[bytes, str]]:
    """Uploads whose container holds far more pieces than any image needs, each with what its
    refusal names."""
    jpeg = encode(gradient(8, 8), "JPEG")
    png = encode(gradient(8, 8), "PNG")
    idat = png.index(b"IDAT") - 4
    progressive = encode(gradient(64, 64), "JPEG", progressive=True)
    scans = progressive.index(b"\xff\xda")
    tiff = bytearray(encode(gradient(8, 8), "TIFF"))
    return {
        "com-segments": (jpeg[:2] + b"\xff\xfe\x00\x02" * 2_600_000 + jpeg[2:], "JPEG segments"),
        "png-chunks": (png[:idat] + _chunk(b"prIv", b"") * 600_000 + png[idat:], "PNG chunks"),
        "jpeg-scans": (progressive[:scans] + progressive[scans:-2] * 20 + b"\xff\xd9", "scans"),
        "tiff-strips": (_with_strip_count(tiff, 10_000_000), "TIFF strips"),
    }


def _with_strip_count(tiff: bytearray, count: int) -> bytes:
    order = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    for index in range(int.from_bytes(tiff[ifd : ifd + 2], order)):
        entry = ifd + 2 + 12 * index
        if int.from_bytes(tiff[entry : entry + 2], order) == 273:
            tiff[entry + 4 : entry + 8] = count.to_bytes(4, order)
    return bytes(tiff)
