"""A process whose wall clock runs ahead or behind, for the tests of hosts whose clocks disagree.

`wallclock.c` is preloaded (LD_PRELOAD) into the process: it shifts only the wall clock
(`CLOCK_REALTIME`, `gettimeofday`, `time`) by WALLCLOCK_OFFSET_SECONDS, as a host whose clock has
drifted sees it, and leaves the monotonic clock alone, so that the process's own sleeps, lock
and poll timeouts wait as long as they should. libfaketime cannot do that: with
FAKETIME_DONT_FAKE_MONOTONIC every `time.sleep` of Python 3.11 fails with EINVAL (it sleeps to an
absolute CLOCK_MONOTONIC deadline, which libfaketime 0.9.10 shifts), and with the monotonic
clock shifted too, a lock's timed wait lasts the offset longer.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("wallclock.c")


def build(directory: Path) -> Path:
    """Compile the shim into `directory`; the shared library's path."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("a C compiler is needed for the clock-skew tests: apt-get install gcc")
    library = directory / "wallclock.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return library


def skewed(library: Path, *, seconds: int) -> dict[str, str]:
    """The environment of a process whose wall clock is `seconds` ahead (behind if negative)."""
    return {"LD_PRELOAD": str(library), "WALLCLOCK_OFFSET_SECONDS": str(seconds)}
