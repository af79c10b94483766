"""The UI's reading of uploaded zips: files in order, and the limits that stop a zip bomb."""

from __future__ import annotations

import io
import zipfile

import pytest

from ui.archives import ArchiveError, ZipLimits, members


def _zip(files: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_files_in_order_hidden_ones_and_folders_left_out_archives_inside_skipped() -> None:
    data = _zip({"a/x.jpg": b"1", ".DS_Store": b"2", "__MACOSX/a/._x.jpg": b"3",
                 "a/.hidden.jpg": b"4", "b.png": b"5", "old.zip": b"6"})  # fmt: skip
    found = list(members(data, ZipLimits()))
    assert [(m.name, m.data) for m in found if m.data] == [("a/x.jpg", b"1"), ("b.png", b"5")]
    (skipped,) = [m for m in found if m.skipped]
    assert skipped.name == "old.zip"


def test_a_file_larger_than_the_api_takes_is_skipped_not_read() -> None:
    found = list(members(_zip({"big.jpg": b"x" * 100, "ok.jpg": b"y"}), ZipLimits(file_bytes=50)))
    assert [(m.name, m.skipped is not None) for m in found] == [
        ("big.jpg", True),
        ("ok.jpg", False),
    ]


@pytest.mark.parametrize(
    ("files", "limits", "why"),
    [
        ({f"{n}.jpg": b"x" for n in range(5)}, ZipLimits(entries=4), "at most 4"),
        ({"a.jpg": b"x" * 60, "b.jpg": b"x" * 60}, ZipLimits(total_bytes=100), "inflates"),
        ({"bomb.jpg": b"\0" * 2_000_000}, ZipLimits(file_bytes=4_000_000), "compressed more"),
    ],
)
def test_a_zip_past_a_limit_is_refused(
    files: dict[str, bytes], limits: ZipLimits, why: str
) -> None:
    with pytest.raises(ArchiveError, match=why):
        list(members(_zip(files), limits))


def test_a_header_that_lies_about_sizes_is_caught_while_reading() -> None:
    data = bytearray(_zip({"a.jpg": b"x" * 1000}, compression=zipfile.ZIP_STORED))
    # Both headers say 10 bytes; the stored bytes are 1000.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature) + offset
        data[at : at + 4] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveError, match="unreadable"):
        list(members(bytes(data), ZipLimits(file_bytes=500)))


def test_not_a_zip() -> None:
    with pytest.raises(ArchiveError, match="not a zip"):
        list(members(b"plain bytes", ZipLimits()))
