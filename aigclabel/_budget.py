"""A per-request work budget the decoders and detectors consult: a deadline and decode caps.

Why: one hostile upload (a 143 KB PNG declaring 49 MP, a 34 KB FLAC declaring 384 kHz x 130 s, a
four-minute 1080p video) must not hold a service worker for a minute and gigabytes. The service opens a
:func:`budget` around each request and a :func:`stage` around each detector; the detectors call
:func:`charge_pixels`, :func:`charge_samples`, :func:`charge_frames` and :func:`check` at the points
where they are about to decode or iterate (a video frame counts as a frame and as its pixels). Outside a
budget (the CLI, library callers) every call is a no-op, so nothing changes for them.

The budget lives in a :class:`contextvars.ContextVar`: ``run_in_threadpool`` copies the context into the
worker thread, so the request's budget is the one the detector sees.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

from .errors import BudgetExceeded

__all__ = [
    "Budget",
    "BudgetExceeded",
    "budget",
    "charge_frames",
    "charge_pixels",
    "charge_samples",
    "check",
    "current",
    "require_pixels",
    "stage",
]


@dataclass
class Budget:
    """Caps for one request; each :func:`stage` gets its own counters and a deadline no later than this one's."""

    #: Wall-clock seconds for the whole request.
    seconds: float = 20.0
    #: Pixels decoded for analysis (after any downscaling the decoder does), per stage.
    pixels: int = 24_000_000
    #: Audio samples decoded (rate x duration x channels), per stage.
    samples: int = 24_000_000
    #: Video frames decoded, per stage.
    frames: int = 240
    #: Pixels of the video frames decoded, per stage (240 frames of 4K); each frame must also fit :attr:`pixels`,
    #: like an image, so a huge-frame video is refused before its first frame is decoded.
    video_pixels: int = 240 * 3840 * 2160
    deadline: float = field(default=0.0)
    used_pixels: int = 0
    used_samples: int = 0
    used_frames: int = 0
    used_video_pixels: int = 0
    name: str = "request"

    def __post_init__(self) -> None:
        if not self.deadline:
            self.deadline = time.monotonic() + self.seconds

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past)."""
        return self.deadline - time.monotonic()


_CURRENT: ContextVar[Budget | None] = ContextVar("aigclabel_budget", default=None)


def current() -> Budget | None:
    """The budget in force in this context, if any."""
    return _CURRENT.get()


@contextmanager
def budget(limits: Budget) -> Iterator[Budget]:
    """Run the block under ``limits`` (the service opens one per request)."""
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


@contextmanager
def stage(name: str, seconds: float | None = None) -> Iterator[Budget | None]:
    """A detector's share: fresh decode counters and a deadline of ``seconds`` (capped by the request's)."""
    parent = _CURRENT.get()
    if parent is None:
        yield None
        return
    deadline = parent.deadline if seconds is None else min(parent.deadline, time.monotonic() + seconds)
    child = replace(
        parent, deadline=deadline, used_pixels=0, used_samples=0, used_frames=0, used_video_pixels=0, name=name
    )
    token = _CURRENT.set(child)
    try:
        yield child
    finally:
        _CURRENT.reset(token)


def check(what: str = "work") -> None:
    """Raise :class:`BudgetExceeded` when the deadline has passed."""
    limits = _CURRENT.get()
    if limits is not None and limits.remaining() <= 0:
        raise BudgetExceeded(f"over budget: {what} passed the {limits.name} time limit")


def _charge(counter: str, cap: str, count: int, what: str, unit: str, scale: float) -> None:
    """Add ``count`` to the stage's ``counter``; raise when it passes the ``cap`` (both attribute names)."""
    limits = _CURRENT.get()
    if limits is None:
        return
    check(what)
    used = getattr(limits, counter) + count
    setattr(limits, counter, used)
    if used > getattr(limits, cap):
        raise BudgetExceeded(
            f"over budget: {what} needs {used / scale:.1f} {unit} decoded, the {limits.name} budget is "
            f"{getattr(limits, cap) / scale:.0f} {unit}"
        )


def charge_pixels(count: int, what: str = "image") -> None:
    """Account for ``count`` pixels about to be decoded; raise before decoding when over the cap."""
    _charge("used_pixels", "pixels", count, what, "MP", 1e6)


def require_pixels(count: int, what: str = "image") -> None:
    """Raise before decoding when ``count`` pixels alone exceed the cap (nothing is charged)."""
    limits = _CURRENT.get()
    if limits is not None and count > limits.pixels:
        raise BudgetExceeded(
            f"over budget: {what} is {count / 1e6:.1f} MP, the {limits.name} budget is {limits.pixels / 1e6:.0f} MP"
        )
    check(what)


def charge_samples(count: int, what: str = "audio") -> None:
    """Account for ``count`` audio samples (all channels) about to be decoded."""
    _charge("used_samples", "samples", count, what, "M samples", 1e6)


def charge_frames(count: int = 1, what: str = "video", *, width: int = 0, height: int = 0) -> None:
    """Account for ``count`` decoded video frames of ``width`` x ``height``: against the frame cap and, like
    images, the pixel budget (each frame must fit :attr:`Budget.pixels`, all of them :attr:`Budget.video_pixels`)."""
    if width and height:
        require_pixels(width * height, f"{what}'s {width}x{height} frame")
    _charge("used_frames", "frames", count, what, "frames", 1)
    _charge("used_video_pixels", "video_pixels", count * width * height, what, "MP of frames", 1e6)
