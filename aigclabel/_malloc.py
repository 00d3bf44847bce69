"""glibc's allocator kept from handing the detectors' working memory back to the system between pictures.

Why: a detector's planes (a 1.9 MP picture's float luminance, whitened plane, tile-space warps: 2-9 MB each) are
large blocks; glibc serves them from the top of its heap or from fresh mappings, and on free gives the top back
to the system (trim) or unmaps them. The next picture then faults every page in again and the kernel zeroes it:
on the verify bench's unlabelled 1.9 MP JPEGs the watermark detector took ~2,400 page faults and ~4 ms of system
CPU a picture for it (a seventh of the detector). With blocks up to :data:`MMAP_THRESHOLD` served from the heap
and the heap trimmed only once :data:`TRIM_THRESHOLD` of it lies free at the top, they are reused (~30 faults a
picture). What a worker keeps is bounded by that threshold: the peak of one picture's planes, which the next
picture needs again. Larger blocks (pictures of ~30 MP and more) are mapped and unmapped as before.

The setting is process-wide (glibc has no other kind), made once when a pixel detector is first imported
(through :mod:`aigclabel._opencv`); ``AIGCLABEL_MALLOC_TUNE=0`` leaves glibc's defaults (its thresholds then
adapt to the blocks freed). Elsewhere than on glibc (musl, macOS, Windows) nothing is changed.
"""

from __future__ import annotations

import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_working_memory"]

#: Blocks of up to this many bytes come from the heap (glibc's largest allowed value on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: The free top of the heap is given back to the system only beyond this many bytes.
TRIM_THRESHOLD = 128 << 20
# mallopt's parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_working_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring); True when both were set."""
    if os.environ.get("AIGCLABEL_MALLOC_TUNE", "1").strip() == "0":
        return False
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return False
    except (AttributeError, ValueError, OSError):  # no confstr, or a C library that does not know the name
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
