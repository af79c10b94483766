from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared.errors import ImageTooLargeError, InvalidImageError, UnsupportedFormatError
from shared.image_checks import inspect_image
from shared.model_cards import InputSpec
from tests.images import (
    camera_jpeg,
    encode,
    gradient,
    jpeg_with_orientation,
    png_header_only,
    structure_bombs,
)
from tests.models import SQUEEZENET_INPUT as SPEC
from tests.processes import SHARED_IMAGES
from worker.images import decode_image, preprocess, to_rgb

pytestmark = pytest.mark.unit
LIMIT = 50_000_000


def test_preprocess_returns_nchw_float32_of_model_input_shape() -> None:
    tensor = preprocess(gradient(640, 480), SPEC)
    assert tensor.shape == (1, 3, 224, 224)
    assert tensor.dtype == np.float32
    assert tensor.flags.c_contiguous


def test_preprocess_normalizes_with_imagenet_mean_and_std() -> None:
    tensor = preprocess(Image.new("RGB", (300, 260), (255, 0, 128)), SPEC)
    expected = [(1.0 - MEAN[0]) / STD[0], (0.0 - MEAN[1]) / STD[1], (128 / 255 - MEAN[2]) / STD[2]]
    np.testing.assert_allclose(tensor[0, :, 100, 100], expected, rtol=1e-5)


def test_preprocess_crops_the_centre_of_the_shorter_side_resize() -> None:
    # A wide image whose left and right thirds are red and blue: the centre crop sees only green.
    array = np.zeros((256, 768, 3), np.uint8)
    array[:, :256] = (255, 0, 0)
    array[:, 256:512] = (0, 255, 0)
    array[:, 512:] = (0, 0, 255)
    tensor = preprocess(Image.fromarray(array), SPEC)
    green = (1.0 - MEAN[1]) / STD[1]
    np.testing.assert_allclose(tensor[0, 1], green, rtol=1e-4)


MEAN, STD = SPEC.mean, SPEC.std


def test_preprocess_follows_a_cards_layout_channels_and_scale() -> None:
    """NHWC, BGR, values 0-255 (scale 1, no normalization), a straight resize to 64x48."""
    spec = InputSpec(height=48, width=64, resize="resize", scale=1, channels="BGR", layout="NHWC")
    tensor = preprocess(Image.new("RGB", (300, 260), (255, 0, 128)), spec)
    assert tensor.shape == (1, 48, 64, 3)
    assert tensor.dtype == np.float32
    assert np.allclose(tensor[0, 10, 10], [128, 0, 255])


def test_a_straight_resize_keeps_the_whole_image() -> None:
    """Where a crop of the shorter side would cut the wide image's red and blue ends off,
    a straight resize keeps them."""
    array = np.zeros((100, 400, 3), dtype=np.uint8)
    array[:, :50] = (255, 0, 0)
    array[:, -50:] = (0, 0, 255)
    whole = InputSpec(height=32, width=32, resize="resize", scale=1)
    tensor = preprocess(Image.fromarray(array), whole)
    assert tensor[0, 0, 16, 0] == 255  # red at the left edge
    assert tensor[0, 2, 16, -1] == 255  # blue at the right
    cropped = preprocess(Image.fromarray(array), SPEC)
    assert cropped[0, 0, 112, 0] < 0  # both cut off
    assert cropped[0, 2, 112, -1] < 0


def test_a_jpeg_for_a_straight_resize_is_drafted_no_smaller_than_the_input() -> None:
    data = encode(gradient(4000, 1000), "JPEG")
    spec = InputSpec(height=300, width=300, resize="resize")
    image = decode_image(data, target=spec, max_pixels=LIMIT)
    assert image.size[0] < 4000
    assert min(image.size) >= 300


def test_decode_applies_exif_orientation() -> None:
    data = jpeg_with_orientation(gradient(400, 200), orientation=6)  # rotate 90 degrees
    assert decode_image(data, target=SPEC, max_pixels=LIMIT).size == (200, 400)


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("L", lambda: gradient().convert("L")),
        ("RGBA", lambda: gradient().convert("RGBA")),
        ("P", lambda: gradient().convert("P")),
        ("CMYK", lambda: gradient().convert("CMYK")),
        ("1", lambda: gradient().convert("1")),
        (
            "I;16",
            lambda: Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 15).astype(np.uint16)),
        ),
        (
            "F",
            lambda: Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)),
        ),
    ],
)
def test_to_rgb_handles_every_mode(mode: str, make: object) -> None:
    image = make()  # type: ignore[operator]
    assert image.mode == mode
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.size == image.size


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    image = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)
    mid = Image.fromarray(np.full((8, 8), 32896, np.uint16))
    assert to_rgb(mid).getpixel((0, 0)) == (128, 128, 128)


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert to_rgb(image).getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_supported_formats_inspect_and_decode(fmt: str) -> None:
    data = encode(gradient(100, 80), fmt)
    info = inspect_image(data, max_pixels=LIMIT)
    assert (info.format, info.width, info.height) == (fmt, 100, 80)
    assert decode_image(data, target=SPEC, max_pixels=LIMIT).size == (100, 80)


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    data = encode(gradient().convert("CMYK"), "JPEG")
    assert decode_image(data, target=SPEC, max_pixels=LIMIT).mode == "RGB"


def test_large_jpeg_is_drafted_but_keeps_shorter_side_at_least_256() -> None:
    data = encode(gradient(4000, 3000), "JPEG", quality=90)
    image = decode_image(data, target=SPEC, max_pixels=LIMIT)
    assert min(image.size) >= 256
    assert image.size[0] < 4000


def test_inspect_rejects_empty_upload() -> None:
    with pytest.raises(InvalidImageError, match="Invalid image file"):
        inspect_image(b"", max_pixels=LIMIT)


def test_inspect_rejects_non_image_bytes() -> None:
    with pytest.raises(InvalidImageError, match="Invalid image file"):
        inspect_image(b"<html><body>hello</body></html>", max_pixels=LIMIT)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_inspect_rejects_truncated_images(fmt: str) -> None:
    data = encode(gradient(), fmt)
    with pytest.raises(InvalidImageError, match="Invalid image file"):
        inspect_image(data[: len(data) // 2], max_pixels=LIMIT)


def test_inspect_rejects_png_with_bad_crc() -> None:
    data = bytearray(encode(gradient(), "PNG"))
    data[40] ^= 0xFF  # inside the first IDAT chunk
    with pytest.raises(InvalidImageError):
        inspect_image(bytes(data), max_pixels=LIMIT)


def test_inspect_rejects_unsupported_format_with_415_error() -> None:
    with pytest.raises(UnsupportedFormatError, match="Unsupported image format"):
        inspect_image(encode(gradient(64, 64), "ICO"), max_pixels=LIMIT)


def test_inspect_rejects_too_many_pixels() -> None:
    with pytest.raises(ImageTooLargeError, match="MAX_IMAGE_PIXELS"):
        inspect_image(encode(gradient(200, 100), "PNG"), max_pixels=10_000)


def test_inspect_rejects_decompression_bomb_from_header() -> None:
    with pytest.raises(ImageTooLargeError):
        inspect_image(png_header_only(100_000, 100_000), max_pixels=LIMIT)


def test_decode_rejects_corrupt_pixel_data() -> None:
    data = encode(gradient(), "JPEG")
    corrupt = data[:400] + b"\x00" * 200 + data[-2:]
    with pytest.raises(InvalidImageError):
        decode_image(corrupt, target=SPEC, max_pixels=LIMIT)


def test_a_multi_picture_jpeg_from_a_camera_is_accepted_as_its_first_frame() -> None:
    """MPO: a phone's photo with a depth map or preview as a second frame (it was 415)."""
    photo, depth = gradient(640, 480), Image.new("RGB", (160, 120), (9, 9, 9))
    buffer = io.BytesIO()
    photo.save(buffer, "MPO", save_all=True, append_images=[depth], quality=95)
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    info = inspect_image(data, max_pixels=10**8)
    assert (info.format, info.content_type, info.width, info.height) == (
        "JPEG",
        "image/jpeg",
        640,
        480,
    )
    decoded = decode_image(data, target=SPEC, max_pixels=10**8)
    assert decoded.mode == "RGB"
    assert decoded.size == (640, 480)
    whole = np.asarray(Image.open(io.BytesIO(encode(photo, "JPEG", quality=95))).convert("RGB"))
    assert np.abs(np.asarray(decoded).astype(int) - whole.astype(int)).mean() < 2


def test_a_heic_photo_from_a_phone_is_accepted_and_decodes_to_its_pixels() -> None:
    """HEIC, the default format of iPhones and many Android phones (it was 415)."""
    photo = gradient(640, 480)
    data = encode(photo, "HEIF", quality=95)
    info = inspect_image(data, max_pixels=10**8)
    assert (info.format, info.content_type, info.width, info.height) == (
        "HEIF",
        "image/heic",
        640,
        480,
    )
    decoded = decode_image(data, target=SPEC, max_pixels=10**8)
    assert (decoded.mode, decoded.size) == ("RGB", (640, 480))
    assert np.abs(np.asarray(decoded).astype(int) - np.asarray(photo).astype(int)).mean() < 4
    with pytest.raises(InvalidImageError):
        inspect_image(data[: len(data) // 2], max_pixels=10**8)
    with pytest.raises(ImageTooLargeError):
        inspect_image(data, max_pixels=1000)


def test_a_camera_jpeg_with_a_huge_exif_block_and_icc_profile_is_accepted() -> None:
    """Cameras write tens of KB of EXIF (maker notes) and print workflows embed ICC profiles of
    hundreds of KB, split over many APP2 segments."""
    data = camera_jpeg()
    assert len(data) > 750_000
    assert inspect_image(data, max_pixels=10**8).format == "JPEG"
    decoded = decode_image(data, target=SPEC, max_pixels=10**8)
    assert decoded.mode == "RGB"
    assert min(decoded.size) >= 256  # drafted down to the model's resize, no smaller


@pytest.mark.parametrize("name", ["com-segments", "png-chunks", "jpeg-scans", "tiff-strips"])
def test_structure_bombs_are_refused_before_a_parser_walks_them(name: str) -> None:
    """Pillow's parsers cost per piece, not per pixel: these took seconds to open."""
    data, what = structure_bombs()[name]
    with pytest.raises(ImageTooLargeError, match=what):
        inspect_image(data, max_pixels=LIMIT)


def test_real_photos_stay_far_below_the_structure_caps() -> None:
    for path in sorted(SHARED_IMAGES.glob("*.jpg")):
        assert inspect_image(path.read_bytes(), max_pixels=LIMIT).format == "JPEG"
    big_png = encode(gradient(2000, 1500), "PNG")
    assert inspect_image(big_png, max_pixels=LIMIT).format == "PNG"


def test_an_image_over_the_worker_memory_ceiling_fails_as_too_large_before_decoding() -> None:
    """A 100 KB constant 16-bit PNG of 7071 x 7071 peaked at 1.4 GB in a worker, which the OOM
    killer ended (and the job was retried on the next process): now it is refused up front."""
    data = encode(Image.fromarray(np.full((2000, 2000), 40000, np.uint16)), "PNG")
    with pytest.raises(ImageTooLargeError, match=r"needs about 34 MB.*WORKER_MAX_IMAGE_MB"):
        decode_image(data, target=SPEC, max_pixels=LIMIT, max_memory_mb=20)
    decoded = decode_image(data, target=SPEC, max_pixels=LIMIT, max_memory_mb=100)
    assert np.asarray(decoded).max() == np.asarray(decoded).min() == 40000 // 257
