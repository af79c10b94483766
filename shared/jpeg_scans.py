"""Keep only the DC scans of a progressive JPEG, for decoding at 1/8 scale.

At 1/8 scale libjpeg reconstructs each 8x8 block from its DC coefficient alone, yet for a
progressive file it still entropy-decodes every AC scan, which is most of the work (about 200 ms
for a 16-megapixel photo here). Dropping the AC scans gives a valid progressive JPEG whose 1/8-scale
decode is identical, in a fraction of the time. Baseline JPEGs interleave DC and AC in one scan
and are left alone.
"""

from __future__ import annotations

import re

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_SOF2 = 0xC2  # progressive, Huffman
# The next marker after entropy-coded data: 0xFF followed by anything but a stuffed 0x00 or RSTn.
_NEXT_MARKER = re.compile(rb"\xff(?!\x00|[\xd0-\xd7]|\xff)")


def dc_only(data: bytes) -> bytes | None:
    """The file without its AC scans, or None when it is not a progressive JPEG we can parse."""
    if not data.startswith(_SOI):
        return None
    out = [_SOI]
    pos, progressive = 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment_end = pos + 2 + length
        if segment_end > len(data):
            return None
        progressive |= marker == _SOF2
        if marker != 0xDA:  # not SOS: tables, frame header, APPn, COM
            out.append(data[pos:segment_end])
            pos = segment_end
            continue
        found = _NEXT_MARKER.search(data, segment_end)
        scan_end = found.start() if found else len(data)
        if _is_dc_scan(data[pos + 4 : segment_end]):
            out.append(data[pos:scan_end])
        pos = scan_end
    if not progressive:
        return None
    out.append(_EOI)
    return b"".join(out)


def _is_dc_scan(header: bytes) -> bool:
    components = header[0]
    spectral_start = header[1 + 2 * components]
    spectral_end = header[2 + 2 * components]
    return spectral_start == 0 and spectral_end == 0
