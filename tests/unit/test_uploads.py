from __future__ import annotations

import pytest

from api.uploads import safe_filename

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("cat.jpg", "cat.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\dog.png", "dog.png"),
        ("evil\x00\r\nname.jpg", "evilname.jpg"),
        ("", "upload"),
        (None, "upload"),
        ("..", "upload"),
    ],
)
def test_filenames_are_reduced_to_a_safe_label(raw: str | None, safe: str) -> None:
    assert safe_filename(raw) == safe


def test_long_filenames_are_truncated() -> None:
    assert len(safe_filename("a" * 1000 + ".jpg")) == 255
