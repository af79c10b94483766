"""Cut a progressive JPEG down to what a 1/8-scale decode reads, without changing one pixel of it.

At 1/8 scale libjpeg reconstructs each 8x8 block of a full-resolution component (luma, and any
component that is not subsampled) from its DC coefficient alone, yet for a progressive file it
still entropy-decodes every AC scan of that component: most of the work. Dropping those scans is
not enough: libjpeg then sees AC coefficients it was never sent and "smooths" every block to
estimate them, which took a third of the decode time and gives pixels that differ from a
whole-file decode.
So their AC scans are replaced by one scan per component, a few bytes long, that states every AC
coefficient is zero: nothing to smooth, and the decode equals the whole file's at 1/8 exactly.
Subsampled (chroma) components keep their AC scans: libjpeg decodes them at 2x2 or 2x1 to spare
upsampling, and there the AC coefficients count. Baseline JPEGs interleave DC and AC in one scan
and are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_SOF2, _DHT, _SOS = 0xC2, 0xC4, 0xDA  # progressive Huffman frame, Huffman table, start of scan
# The next marker after entropy-coded data: 0xFF followed by anything but a stuffed 0x00 or RSTn.
_NEXT_MARKER = re.compile(rb"\xff(?!\x00|[\xd0-\xd7]|\xff)")
# An AC Huffman table (class 1, id 0) of just the end-of-band-run symbols EOB0..EOB14 (0xR0), each
# with the 4-bit code R. EOBr followed by r extra bits says that the next 2**r + extra blocks
# have no (more) nonzero AC coefficients in the scan's band.
_EOB_RUN_TABLE = bytes([0x10, 0, 0, 0, 15, *[0] * 12, *(r << 4 for r in range(15))])
_LONGEST_EOB_RUN = 2**15 - 1  # EOB14 with all 14 extra bits set
_NO_RESTART_INTERVAL = b"\xff\xdd\x00\x04\x00\x00"  # DRI 0: the runs span restart boundaries


@dataclass(frozen=True, slots=True)
class _Component:
    id: int
    blocks: int  # 8x8 blocks in a scan of this component alone
    full_resolution: bool  # decoded at 1x1 at 1/8 scale: only its DC coefficients count


def for_eighth_scale(data: bytes) -> bytes | None:
    """The file as a 1/8-scale decode needs it, or None when it is not a progressive Huffman JPEG
    this parser understands (the caller then decodes the whole file)."""
    try:
        return _cut(data)
    except (ValueError, IndexError, KeyError):  # a segment not as the standard lays it out
        return None


def _cut(data: bytes) -> bytes | None:
    if not data.startswith(_SOI):
        return None
    out = [_SOI]
    components: dict[int, _Component] | None = None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("not a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI[1]:
            break
        segment_end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if segment_end > len(data):
            raise ValueError("truncated segment")
        if marker == _SOF2:
            components = _frame_components(data[pos + 4 : segment_end])
        if marker != _SOS:  # tables, frame header, APPn, COM
            out.append(data[pos:segment_end])
            pos = segment_end
            continue
        if components is None:  # a scan before any progressive frame header: not ours to cut
            return None
        found = _NEXT_MARKER.search(data, segment_end)
        scan_end = found.start() if found else len(data)
        if _scan_needed(data[pos + 4 : segment_end], components):
            out.append(data[pos:scan_end])
        pos = scan_end
    if components is None:
        return None
    out.append(_zero_ac_scans(c for c in components.values() if c.full_resolution))
    out.append(_EOI)
    return b"".join(out)


def _frame_components(header: bytes) -> dict[int, _Component]:
    height = int.from_bytes(header[1:3], "big")
    width = int.from_bytes(header[3:5], "big")
    sampling = {header[6 + 3 * i]: header[7 + 3 * i] for i in range(header[5])}
    if not width or not height or not sampling:
        raise ValueError("height given later (DNL) or no components")
    h_max = max(s >> 4 for s in sampling.values())
    v_max = max(s & 15 for s in sampling.values())
    if not h_max or not v_max:
        raise ValueError("zero sampling factor")
    return {
        id_: _Component(
            id_,
            blocks=-(-width * (s >> 4) // (8 * h_max)) * -(-height * (s & 15) // (8 * v_max)),
            full_resolution=(s >> 4, s & 15) == (h_max, v_max),
        )
        for id_, s in sampling.items()
    }


def _scan_needed(header: bytes, components: dict[int, _Component]) -> bool:
    count = header[0]
    spectral_start = header[1 + 2 * count]
    ids = [header[1 + 2 * i] for i in range(count)]
    return spectral_start == 0 or not all(components[id_].full_resolution for id_ in ids)


def _zero_ac_scans(components: Iterable[_Component]) -> bytes:
    """One scan per component stating that no block has a nonzero AC coefficient."""
    out = bytearray(_NO_RESTART_INTERVAL)
    out += _segment(_DHT, _EOB_RUN_TABLE)
    for component in components:
        # One component, DC/AC tables 0, spectral band 1..63, no successive approximation.
        out += _segment(_SOS, bytes([1, component.id, 0x00, 1, 63, 0]))
        out += _end_of_band_runs(component.blocks)
    return bytes(out)


def _end_of_band_runs(blocks: int) -> bytes:
    bits = count = 0
    while blocks:
        run = min(blocks, _LONGEST_EOB_RUN)
        r = run.bit_length() - 1
        bits = (bits << (4 + r)) | (r << r) | (run - (1 << r))
        count += 4 + r
        blocks -= run
    padding = -count % 8
    bits = (bits << padding) | ((1 << padding) - 1)  # pad with 1-bits, as the standard says
    return bits.to_bytes((count + padding) // 8, "big").replace(b"\xff", b"\xff\x00")


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
