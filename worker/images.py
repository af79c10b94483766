"""Decoding and the model's published preprocessing, as pure functions: the worker's side.

Preprocessing follows SqueezeNet 1.1's published recipe (`shared.model_files`): RGB, shorter
side resized to 256 (bilinear), centre crop 224x224, scaled to [0, 1], ImageNet mean/std, NCHW
float32. The API's checks of an upload are in `shared.image_checks`.
"""

from __future__ import annotations

import io
import logging
import math

import numpy as np
from PIL import Image, ImageOps

from shared.errors import InvalidImageError
from shared.image_checks import check_pixels, open_image
from shared.model_files import CROP_SIZE, MEAN, RESIZE_SHORTER_SIDE, STD
from worker import metrics
from worker.jpeg_scans import for_eighth_scale

# Folded so that preprocessing is one multiply and one subtract per value.
_SCALE = (1.0 / (255.0 * np.asarray(STD, dtype=np.float32))).astype(np.float32)
_OFFSET = (np.asarray(MEAN, dtype=np.float32) / np.asarray(STD, dtype=np.float32)).astype(
    np.float32
)
# At or above this shorter side a JPEG decodes at 1/8 scale (`jpeg_scans`).
EIGHTH_SCALE_MIN_SIDE = 8 * RESIZE_SHORTER_SIDE

log = logging.getLogger(__name__)
_fallbacks_logged: set[str] = set()


def decode_image(data: bytes, *, max_pixels: int, fast_progressive: bool = True) -> Image.Image:
    """Decode the first frame to an upright 8-bit RGB image, shrunk early where JPEG allows;
    `fast_progressive` (PROGRESSIVE_JPEG_FAST_PATH) cuts large progressive JPEGs first."""
    image = open_image(data, max_pixels=max_pixels)
    check_pixels(*image.size, max_pixels=max_pixels)
    try:
        if image.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with more frames
            image = _scaled_jpeg(data, image, fast_progressive=fast_progressive)
        image.load()
        upright = ImageOps.exif_transpose(image)
        return to_rgb(upright if upright is not None else image)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"Invalid image file: {exc}") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: alpha onto white, 16-bit and float rescaled."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        pixels = _to_uint8(np.asarray(image), sixteen_bit=mode.startswith("I;16"))
        return Image.fromarray(pixels, mode="L").convert("RGB")
    return image.convert("RGB")


def preprocess(image: Image.Image) -> np.ndarray:
    """RGB image -> normalized float32 tensor of shape (1, 3, 224, 224)."""
    width, height = image.size
    # Resizing the shorter side to 256 and cropping the centre 224 equals resizing just the
    # source box that maps onto that crop: one resample over the pixels that matter.
    side = CROP_SIZE * min(width, height) / RESIZE_SHORTER_SIDE
    left, top = (width - side) / 2, (height - side) / 2
    crop = image.resize(
        (CROP_SIZE, CROP_SIZE),
        Image.Resampling.BILINEAR,
        box=(left, top, left + side, top + side),
    )
    pixels = np.asarray(crop, dtype=np.float32)
    normalized = pixels * _SCALE - _OFFSET
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[np.newaxis])


def _scaled_jpeg(data: bytes, image: Image.Image, *, fast_progressive: bool) -> Image.Image:
    """The JPEG set up to decode at the smallest DCT scale preprocessing allows.

    A progressive JPEG that will decode at 1/8 is first cut to the scans that decode reads
    (`jpeg_scans`): the same pixels, in a fraction of the time of a full-resolution decode.
    Anything unexpected in that path falls back to the whole file, counted and logged.
    """
    eighth = image.info.get("progressive") and min(image.size) >= EIGHTH_SCALE_MIN_SIDE
    if fast_progressive and eighth:
        reduced = for_eighth_scale(data)
        if reduced is None:
            _fell_back("unparsed", "a progressive JPEG the scan cutter does not parse")
        else:
            try:
                candidate = Image.open(io.BytesIO(reduced))
                _draft_for_preprocessing(candidate)
                candidate.load()
                return candidate
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                _fell_back("undecodable", f"its cut file did not decode ({exc})")
    _draft_for_preprocessing(image)
    return image


def _fell_back(reason: str, why: str) -> None:
    metrics.JPEG_FAST_PATH_FALLBACKS.labels(reason=reason).inc()
    if reason not in _fallbacks_logged:  # once per cause and process: a pattern, not a flood
        _fallbacks_logged.add(reason)
        log.warning(
            "progressive JPEG decoded whole (slower): %s; further cases are counted in "
            "imgclf_worker_jpeg_fast_path_fallbacks_total",
            why,
        )


def _draft_for_preprocessing(image: Image.Image) -> None:
    # JPEG DCT scaling decodes at 1/2, 1/4 or 1/8 size; keep the shorter side >= 256 so the
    # final resample still downsamples, as the published preprocessing does.
    width, height = image.size
    scale = RESIZE_SHORTER_SIDE / min(width, height)
    if scale < 1:
        image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))


def _to_uint8(array: np.ndarray, *, sixteen_bit: bool) -> np.ndarray:
    if array.dtype.kind == "f":
        finite = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        scaled = finite * 255.0 if finite.size and float(finite.max()) <= 1.0 else finite
        return np.clip(scaled, 0, 255).astype(np.uint8)
    wide = array.astype(np.int64)
    if sixteen_bit or (wide.size and int(wide.max()) > 255):
        return (np.clip(wide, 0, 65535) // 257).astype(np.uint8)
    return np.clip(wide, 0, 255).astype(np.uint8)
