"""Process memory from /proc (Linux) or resource (elsewhere), without extra dependencies."""
from __future__ import annotations

import resource
import sys


def rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def settled_rss_mib() -> float:
    """RSS after Python's garbage and glibc's free lists are returned to the system: what a
    load's before/after difference must be measured on (else a load that merely triggers the
    freeing of earlier garbage reads as negative growth)."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass
    return rss_mib()
