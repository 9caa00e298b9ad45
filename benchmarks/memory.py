"""Peak memory of this process, read the way that survives `exec` correctly."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_gib() -> float:
    """This process's peak resident memory in GiB.

    ``VmHWM`` from /proc/self/status belongs to the process's own address space, which exec replaces.
    ``ru_maxrss`` does not: on Linux it keeps the parent's peak across fork and exec, so a benchmark
    child would report the memory its parent held when starting it.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes, close enough for a fallback


def reset_peak() -> bool:
    """Start a new peak: Linux resets ``VmHWM`` to the current resident memory when "5" is written to
    /proc/self/clear_refs. False where that is not available (the peak then stays the process's)."""
    refs = Path("/proc/self/clear_refs")
    try:
        refs.write_text("5")
    except OSError:
        return False
    return True
