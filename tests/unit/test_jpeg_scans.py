"""Progressive JPEGs cut for a 1/8-scale decode give exactly the whole file's 1/8-scale pixels."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from tests.images import encode, gradient
from tests.models import SQUEEZENET_INPUT as SPEC
from tests.processes import SHARED_IMAGES
from worker import images
from worker.images import decode, decode_image
from worker.jpeg_scans import for_eighth_scale

pytestmark = pytest.mark.unit


def _textured(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Sharp detail everywhere, so that every block has large AC coefficients."""
    noise = np.random.default_rng(7).integers(0, 256, (height // 16, width // 16, 3), np.uint8)
    image = Image.fromarray(noise, "RGB").resize((width, height), Image.Resampling.NEAREST)
    return image.convert(mode)


def _eighth(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.draft(image.mode, (image.width // 8, image.height // 8))
    return np.asarray(image)


@pytest.mark.parametrize(
    ("mode", "params"),
    [
        ("RGB", {"subsampling": 2}),  # 4:2:0, chroma decoded at 2x2
        ("RGB", {"subsampling": 1}),  # 4:2:2, chroma decoded at 2x1
        ("RGB", {"subsampling": 0}),  # 4:4:4, every component at 1x1
        ("L", {}),
        ("CMYK", {}),  # Adobe four-component files
        ("RGB", {"subsampling": 2, "restart_marker_blocks": 7}),
    ],
    ids=["4:2:0", "4:2:2", "4:4:4", "grey", "cmyk", "restart-markers"],
)
def test_cut_file_decodes_to_the_same_pixels_at_one_eighth(
    mode: str, params: dict[str, object]
) -> None:
    data = encode(_textured(2104, 1960, mode), "JPEG", progressive=True, quality=92, **params)
    cut = for_eighth_scale(data)
    assert cut is not None
    assert len(cut) < len(data)
    np.testing.assert_array_equal(_eighth(cut), _eighth(data))


def test_the_sixteen_megapixel_progressive_photo_is_unchanged_and_smaller() -> None:
    data = (SHARED_IMAGES / "red-fox-4928x3280.jpg").read_bytes()
    cut = for_eighth_scale(data)
    assert cut is not None
    assert len(cut) < len(data) / 3
    np.testing.assert_array_equal(_eighth(cut), _eighth(data))


def test_decode_image_takes_the_cut_path_for_large_progressive_photos() -> None:
    data = encode(_textured(2400, 2100), "JPEG", progressive=True, quality=92)
    decoded = decode_image(data, target=SPEC, max_pixels=50_000_000)
    assert decoded.size == (300, 263)
    np.testing.assert_array_equal(np.asarray(decoded), _eighth(data))


def test_the_cut_path_keeps_the_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    data = encode(_textured(2400, 2100), "JPEG", progressive=True, exif=exif.tobytes())
    assert for_eighth_scale(data) is not None
    decoded = decode_image(data, target=SPEC, max_pixels=50_000_000)
    assert decoded.size == (263, 300)
    np.testing.assert_array_equal(np.asarray(decoded), np.rot90(_eighth(data), k=-1))


def test_baseline_truncated_and_non_jpeg_files_are_left_alone() -> None:
    assert for_eighth_scale(encode(gradient(), "JPEG")) is None
    assert for_eighth_scale(encode(gradient(), "PNG")) is None
    assert for_eighth_scale(b"\xff\xd8\xff") is None
    progressive = encode(gradient(), "JPEG", progressive=True)
    assert for_eighth_scale(progressive[:200]) is None  # cut inside a header segment


def test_a_progressive_file_the_cutter_cannot_parse_decodes_whole_said_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = encode(_textured(2400, 2100), "JPEG", progressive=True, quality=92)
    first_scan = data.index(b"\xff\xda")
    odd = data[:first_scan] + b"\x00\x00" + data[first_scan:]  # libjpeg skips stray bytes
    assert for_eighth_scale(odd) is None
    monkeypatch.setattr(images, "_fallbacks_logged", set())
    with caplog.at_level(logging.WARNING, logger="worker.images"):
        decoded = [decode(odd, target=SPEC, max_pixels=50_000_000) for _ in range(2)]
    assert [d.image.size for d in decoded] == [(300, 263)] * 2
    assert [d.fallback for d in decoded] == ["unparsed"] * 2  # the caller counts them
    np.testing.assert_array_equal(np.asarray(decoded[0].image), _eighth(data))
    assert len([r for r in caplog.records if "decoded whole" in r.getMessage()]) == 1


def test_the_fast_path_can_be_turned_off_and_the_pixels_stay_the_same() -> None:
    data = encode(_textured(2400, 2100), "JPEG", progressive=True, quality=92)
    whole = decode(data, target=SPEC, max_pixels=50_000_000, fast_progressive=False)
    np.testing.assert_array_equal(np.asarray(whole.image), _eighth(data))
    assert whole.fallback is None  # turned off, not fallen back
