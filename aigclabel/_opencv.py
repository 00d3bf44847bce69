"""OpenCV as aigclabel uses it: imported through the ``media`` extra, its thread pool sized once.

Why one thread by default: the detectors' OpenCV calls (blurs, warps, remaps on 1-2 MP pictures) are
short, and OpenCV's own pool spreads each over every core and spins while it waits. On 2 cores that
made the watermark detector of a 1.9 MP picture cost 39 ms of CPU for 26 ms of wall time; with one
thread it costs 28 ms of both. A platform verifies uploads with one worker per core (``batch``,
``serve --workers``), so CPU is what bounds its throughput, as with the OCR engine's one thread
(``AIGCLABEL_OCR_THREADS``). ``AIGCLABEL_CV_THREADS`` (read once, at the first import) sets another
count; ``auto`` leaves OpenCV's default, for a program that makes one call at a time and wants the
lowest latency. The setting is process-wide, as OpenCV has no other kind. Importing this module also keeps
glibc from giving the detectors' working memory back between pictures (:mod:`aigclabel._malloc`).
"""

from __future__ import annotations

import os
import warnings

from ._extras import needs_extra
from ._malloc import keep_working_memory

with needs_extra("media"):
    import cv2

__all__ = ["cv2"]


def _threads(value: str) -> int | None:
    """The thread count ``AIGCLABEL_CV_THREADS`` asks for; None for ``auto`` (OpenCV's default). A value
    that is neither a positive whole number nor ``auto`` is warned about and taken as 1."""
    if value.strip().lower() == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        warnings.warn(
            f"AIGCLABEL_CV_THREADS must be a positive whole number or 'auto', not {value!r}: using 1",
            RuntimeWarning,
            stacklevel=2,
        )
        return 1
    return count


keep_working_memory()  # the detectors' 2-9 MB planes reused between pictures, not faulted in again (see _malloc)
_count = _threads(os.environ.get("AIGCLABEL_CV_THREADS", "1"))
if _count is not None:
    cv2.setNumThreads(_count)
