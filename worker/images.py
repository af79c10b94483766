"""Decoding and a model's preprocessing, as pure functions: the worker's side.

Preprocessing follows the recipe of the model's card (`shared.model_cards.InputSpec`): for
SqueezeNet 1.1, its published one (RGB, shorter side resized to 256 (bilinear), centre crop
224x224, scaled to [0, 1], ImageNet mean/std, NCHW float32). A JPEG decodes at the smallest DCT
scale that recipe allows. The API's checks of an upload are in `shared.image_checks`.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from shared.errors import ImageTooLargeError, InvalidImageError
from shared.image_checks import check_pixels, open_image
from shared.model_cards import InputSpec
from worker.jpeg_scans import for_eighth_scale

log = logging.getLogger(__name__)
_fallbacks_logged: set[str] = set()


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded image, and why a large progressive JPEG was decoded whole, if it was
    (`unparsed`, `undecodable`: the caller counts it)."""

    image: Image.Image
    fallback: str | None = None


def decode(
    data: bytes,
    *,
    target: InputSpec,
    max_pixels: int,
    fast_progressive: bool = True,
    max_memory_mb: float = 0,
) -> Decoded:
    """Decode the first frame to an upright 8-bit RGB image, shrunk early where JPEG allows
    without going below what `target` (the model's input) needs; `fast_progressive`
    (PROGRESSIVE_JPEG_FAST_PATH) cuts large progressive JPEGs first, and an image whose
    decoding would need more than `max_memory_mb` (0: no limit) is refused first."""
    image = open_image(data, max_pixels=max_pixels)
    check_pixels(*image.size, max_pixels=max_pixels)
    fallback = None
    try:
        if image.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with more frames
            image, fallback = _scaled_jpeg(
                data, image, target=target, fast_progressive=fast_progressive
            )
        _check_memory(image, max_memory_mb)
        image.load()
        upright = ImageOps.exif_transpose(image)
        return Decoded(to_rgb(upright if upright is not None else image), fallback)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"Invalid image file: {exc}") from exc


def decode_image(
    data: bytes,
    *,
    target: InputSpec,
    max_pixels: int,
    fast_progressive: bool = True,
    max_memory_mb: float = 0,
) -> Image.Image:
    """`decode`'s image alone."""
    return decode(
        data,
        target=target,
        max_pixels=max_pixels,
        fast_progressive=fast_progressive,
        max_memory_mb=max_memory_mb,
    ).image


# Bytes per pixel of a decoded image by mode (others: 4), and how many such images the
# conversion to RGB holds at its peak (the RGBA composite: the image, a white background and the
# composite), plus the RGB result itself.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "I;16": 2, "I;16B": 2,
                    "I;16L": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}  # fmt: skip
_CONVERSION_COPIES = 3


def decode_memory_mb(image: Image.Image) -> float:
    """About how much memory decoding `image` (at its drafted size) and converting it to RGB
    takes at the peak."""
    width, height = image.size
    per_pixel = _BYTES_PER_PIXEL.get(image.mode, 4) * _CONVERSION_COPIES + 3
    return width * height * per_pixel / 2**20


def _check_memory(image: Image.Image, max_memory_mb: float) -> None:
    if max_memory_mb and (needed := decode_memory_mb(image)) > max_memory_mb:
        raise ImageTooLargeError(
            f"Image too large to decode: {image.size[0]}x{image.size[1]} {image.mode} needs about "
            f"{needed:.0f} MB, over the limit of {max_memory_mb:g} MB (WORKER_MAX_IMAGE_MB)"
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: alpha onto white, 16-bit and float rescaled."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image if mode == "RGBA" else image.convert("RGBA")  # no copy of an RGBA image
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        pixels = _to_uint8(np.asarray(image), sixteen_bit=mode.startswith("I;16"))
        return Image.fromarray(pixels, mode="L").convert("RGB")
    return image.convert("RGB")


def preprocess(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """RGB image -> the model's float32 input tensor, a batch of one (`spec.shape()`)."""
    width, height = image.size
    box = None
    if spec.resize == "shorter_side_crop":
        # Resizing the shorter side and cropping the centre equals resizing just the source
        # box that maps onto that crop: one resample over the pixels that matter.
        assert spec.shorter_side is not None  # the card's validation makes sure
        ratio = min(width, height) / spec.shorter_side
        box_w, box_h = spec.width * ratio, spec.height * ratio
        left, top = (width - box_w) / 2, (height - box_h) / 2
        box = (left, top, left + box_w, top + box_h)
    resized = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR, box=box)
    pixels = np.asarray(resized, dtype=np.float32)
    if spec.channels == "BGR":
        pixels = pixels[..., ::-1]
    scale, offset = _folded(spec)
    normalized = pixels * scale - offset
    if spec.layout == "NCHW":
        normalized = normalized.transpose(2, 0, 1)
    return np.ascontiguousarray(normalized[np.newaxis])


@functools.lru_cache(maxsize=16)
def _folded(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Scale and normalization folded into one multiply and one subtract per value, in the
    order of the channels the model takes."""
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    if spec.channels == "BGR":
        mean, std = mean[::-1], std[::-1]
    return (1.0 / (spec.scale * std)).astype(np.float32), (mean / std).astype(np.float32)


def reduction(size: tuple[int, int], spec: InputSpec) -> float:
    """How far an image of `size` may shrink before preprocessing still only downsamples it
    (below 1: it may; 1/8 or less: a JPEG decodes at 1/8)."""
    width, height = size
    if spec.resize == "shorter_side_crop":
        assert spec.shorter_side is not None
        return spec.shorter_side / min(width, height)
    return max(spec.width / width, spec.height / height)


def _scaled_jpeg(
    data: bytes, image: Image.Image, *, target: InputSpec, fast_progressive: bool
) -> tuple[Image.Image, str | None]:
    """The JPEG set up to decode at the smallest DCT scale preprocessing allows, and why the
    fast path below did not apply, if it did not.

    A progressive JPEG that will decode at 1/8 is first cut to the scans that decode reads
    (`jpeg_scans`): the same pixels, in a fraction of the time of a full-resolution decode.
    Anything unexpected in that path falls back to the whole file, logged.
    """
    eighth = image.info.get("progressive") and reduction(image.size, target) <= 1 / 8
    fallback = None
    if fast_progressive and eighth:
        reduced = for_eighth_scale(data)
        if reduced is None:
            fallback = _fell_back("unparsed", "a progressive JPEG the scan cutter does not parse")
        else:
            try:
                candidate = Image.open(io.BytesIO(reduced))
                _draft_for_preprocessing(candidate, target)
                candidate.load()
                return candidate, None
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                fallback = _fell_back("undecodable", f"its cut file did not decode ({exc})")
    _draft_for_preprocessing(image, target)
    return image, fallback


def _fell_back(reason: str, why: str) -> str:
    if reason not in _fallbacks_logged:  # once per cause and process: a pattern, not a flood
        _fallbacks_logged.add(reason)
        log.warning(
            "progressive JPEG decoded whole (slower): %s; further cases are counted in "
            "imgclf_worker_jpeg_fast_path_fallbacks_total",
            why,
        )
    return reason


def _draft_for_preprocessing(image: Image.Image, target: InputSpec) -> None:
    # JPEG DCT scaling decodes at 1/2, 1/4 or 1/8 size; keep what the recipe resizes from
    # at least its target size, so the final resample still downsamples.
    width, height = image.size
    scale = reduction(image.size, target)
    if scale < 1:
        image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))


def _to_uint8(array: np.ndarray, *, sixteen_bit: bool) -> np.ndarray:
    if array.dtype.kind == "f":
        finite = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        scaled = finite * 255.0 if finite.size and float(finite.max()) <= 1.0 else finite
        return np.clip(scaled, 0, 255).astype(np.uint8)
    # Integer pixels stay in their own width (an int64 copy of a 50 MP image is 400 MB).
    if array.dtype == np.uint16:
        return (array // 257).astype(np.uint8)
    if sixteen_bit or (array.size and int(array.max()) > 255):
        wide: np.ndarray = np.clip(array, 0, 65535)
        wide //= 257
        return wide.astype(np.uint8)
    clipped: np.ndarray = np.clip(array, 0, 255)
    return clipped.astype(np.uint8)
