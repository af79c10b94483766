"""What the API checks of an upload before queuing it: a supported, complete image within the
pixel limit, read from its header and container, with no pixels decoded.

Kept apart from `worker.images` (decoding and preprocessing, which need numpy): the API imports
only this, and leaving numpy out of it keeps its memory off every API process.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from shared.errors import ImageTooLargeError, InvalidImageError, UnsupportedFormatError
from shared.image_structure import check_structure

SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heic",
}

# HEIC/HEIF (iPhones' and many Android phones' default) through libheif, for the API's check
# and the worker's decode alike: both import this module.
pillow_heif.register_heif_opener()

# The file names clients pick images by (the CLI's folder walk, the UI's uploader).
FILE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
)
FORMAT_NAMES = "JPEG (MPO included), PNG, WebP, GIF, BMP, TIFF or HEIC/HEIF"

# Formats that are another one to us. MPO (multi-picture: what many phones and cameras write,
# with a depth map or a preview as a second frame) is a JPEG whose first frame is the photo.
_SAME_AS = {"MPO": "JPEG"}

_JPEG_TAIL_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says about an upload."""

    format: str
    content_type: str
    width: int
    height: int


def inspect_image(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Check an upload cheaply: a supported, complete image within the pixel limit."""
    if not data:
        raise InvalidImageError("Invalid image file: the upload is empty")
    check_structure(data)
    image = open_image(data, max_pixels=max_pixels)
    fmt = _SAME_AS.get(image.format or "", image.format or "")
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"Unsupported image format {fmt or 'unknown'}; supported: "
            + ", ".join(sorted(SUPPORTED_FORMATS))
        )
    width, height = image.size
    check_pixels(width, height, max_pixels=max_pixels)
    _check_complete(data, fmt)
    return ImageInfo(fmt, SUPPORTED_FORMATS[fmt], width, height)


def open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Pillow's lazy image over `data` (header read, nothing decoded), or the error to answer."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"Image too large: more than {max_pixels} pixels (MAX_IMAGE_PIXELS)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError("Invalid image file: not a recognized image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"Invalid image file: {exc}") from exc


def check_pixels(width: int, height: int, *, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError("Invalid image file: zero width or height")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"Image too large: {width}x{height} is {width * height} pixels, "
            f"over the limit of {max_pixels} (MAX_IMAGE_PIXELS)"
        )


def _check_complete(data: bytes, fmt: str) -> None:
    """Catch truncated uploads without decoding pixels."""
    if fmt == "JPEG" and b"\xff\xd9" not in data[-_JPEG_TAIL_BYTES:]:
        raise InvalidImageError("Invalid image file: truncated JPEG (no end-of-image marker)")
    if fmt == "PNG":
        try:
            # verify() walks every chunk and checks its CRC, without inflating pixel data.
            Image.open(io.BytesIO(data)).verify()
        except Exception as exc:
            raise InvalidImageError(f"Invalid image file: broken PNG ({exc})") from exc
    if fmt == "WEBP" and len(data) < int.from_bytes(data[4:8], "little") + 8:
        raise InvalidImageError("Invalid image file: truncated WebP")
    if fmt == "HEIF" and not _boxes_complete(data):
        raise InvalidImageError("Invalid image file: truncated HEIF (a box runs past the end)")


# A HEIF file is a handful of top-level ISO-BMFF boxes (ftyp, meta, mdat, ...).
_MAX_TOP_LEVEL_BOXES = 1000


def _boxes_complete(data: bytes) -> bool:
    """Whether the file's top-level boxes end exactly where the file does (libheif reads the
    image data lazily, so a cut file opens without complaint)."""
    at = 0
    for _ in range(_MAX_TOP_LEVEL_BOXES):
        if at == len(data):
            return True
        if at + 8 > len(data):
            return False
        size = int.from_bytes(data[at : at + 4], "big")
        if size == 1:  # a 64-bit size follows the type
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        elif size == 0:  # the last box, to the end of the file
            return True
        if size < 8:
            return False
        at += size
    return at == len(data)
