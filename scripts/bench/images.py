"""The benchmark's photo set: sizes from 640x480 to 12 MP made from the team's photos, plus the
original 4928x3280 progressive JPEG."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from shared.settings import PROJECT_ROOT

PHOTOS = PROJECT_ROOT.parent / "shared" / "images"
FOX = PHOTOS / "red-fox-4928x3280.jpg"
LABRADOR = PHOTOS / "labrador.jpg"
SIZES = [(640, 480), (1280, 960), (1920, 1280), (3000, 2000), (4000, 3000)]


def photo_set(cache: Path) -> list[Path]:
    """Baseline JPEGs (quality 90) at each size, the original fox and the labrador."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for width, height in SIZES:
        path = cache / f"fox-{width}x{height}.jpg"
        if not path.exists():
            with Image.open(FOX) as fox:
                fox.convert("RGB").resize((width, height), Image.Resampling.LANCZOS).save(
                    path, "JPEG", quality=90
                )
        paths.append(path)
    return [*paths, FOX, LABRADOR]


def large_upload(cache: Path) -> Path:
    """The fox at full size, quality 100 without chroma subsampling: ~5 MB, a phone's photo."""
    path = cache / "fox-4928x3280-q100.jpg"
    if not path.exists():
        with Image.open(FOX) as fox:
            fox.convert("RGB").save(path, "JPEG", quality=100, subsampling=0)
    return path


def twelve_megapixel(cache: Path) -> Path:
    return photo_set(cache)[len(SIZES) - 1]
