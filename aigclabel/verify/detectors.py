"""The detector registry and runner: which trace detectors exist, which apply to a format, in what order,
and how each is called.

Detectors live beside their technique and register themselves when imported
(``aigclabel.explicit.detector``, ``aigclabel.watermark.detector``, ``aigclabel.c2pa_manifest``,
:mod:`aigclabel.verify.xmp_source`); :func:`registered_detectors` imports the modules named in
:data:`PLUGIN_MODULES` on first use and skips those that are not installed, so no module grows an
``if`` per technique. Visible labelers (used by :func:`aigclabel.verify.apply`) register the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from .._media import MediaSample
from .evidence import Classification, Evidence

#: Modules that register detectors or visible labelers when imported (missing ones are skipped).
PLUGIN_MODULES: tuple[str, ...] = (
    "aigclabel.verify.xmp_source",
    "aigclabel.explicit.detector",
    "aigclabel.watermark.detector",
    "aigclabel.c2pa_manifest",
)


@runtime_checkable
class TraceDetector(Protocol):
    """Finds traces of AI generation in a file. Must not raise on files it does not understand.

    Two optional class attributes, read with defaults so detectors written before them still work:

    * ``formats``: a collection of container names (``aigclabel.containers``, e.g. ``{"jpeg", "png"}``)
      the detector applies to; :func:`classify` does not call it for other formats. Absent or
      ``None``: every format.
    * ``cost``: rough relative cost (:data:`DEFAULT_DETECTOR_COST` when absent); cheaper detectors
      run first.
    * ``shares_media``: when true, :func:`classify` calls ``detect(path, media=sample)`` with the
      :class:`aigclabel._media.MediaSample` of the call, so the detectors of one upload decode it
      once; a detector without it is called as ``detect(path)``.
    """

    name: str

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence found in ``path`` (empty when none)."""
        ...


#: Cost assumed for a detector that does not declare one (between metadata scans and pixel analysis).
DEFAULT_DETECTOR_COST = 50.0


def detector_formats(detector: TraceDetector) -> frozenset[str] | None:
    """Container names ``detector`` applies to, or ``None`` for all (its optional ``formats``)."""
    formats = getattr(detector, "formats", None)
    return None if formats is None else frozenset(formats)


def detector_cost(detector: TraceDetector) -> float:
    """The detector's declared relative ``cost`` (:data:`DEFAULT_DETECTOR_COST` when it has none)."""
    cost = getattr(detector, "cost", DEFAULT_DETECTOR_COST)
    return float(cost) if isinstance(cost, int | float) else DEFAULT_DETECTOR_COST


def detector_shares_media(detector: TraceDetector) -> bool:
    """True when ``detector`` takes the shared decoded sample (its optional ``shares_media``)."""
    return bool(getattr(detector, "shares_media", False))


def run_detector(detector: TraceDetector, path: Path, media: MediaSample | None = None) -> list[Evidence]:
    """``detector``'s evidence on ``path``, handing it ``media`` when it takes the shared sample."""
    if detector_shares_media(detector):
        sample = media if media is not None else MediaSample(path)
        return detector.detect(path, media=sample)  # type: ignore[call-arg]
    return detector.detect(path)


def plan_detectors(detectors: Mapping[str, TraceDetector], container: str) -> list[tuple[str, TraceDetector]]:
    """The detectors that apply to a ``container`` file, cheapest first (ties keep registration order)."""
    usable = [
        (name, detector)
        for name, detector in detectors.items()
        if (formats := detector_formats(detector)) is None or container in formats
    ]
    return sorted(usable, key=lambda item: detector_cost(item[1]))


@runtime_checkable
class VisibleLabeler(Protocol):
    """Adds a visible/audible explicit label (re-encodes the media) for one classification."""

    name: str

    def supports(self, path: Path) -> bool:
        """True if this labeler can handle the file."""
        ...

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with an explicit label to the new file ``dst``."""
        ...


_DETECTORS: dict[str, TraceDetector] = {}
_LABELERS: dict[str, VisibleLabeler] = {}
_plugins_loaded = False


def register_detector(detector: TraceDetector) -> TraceDetector:
    """Add (or replace, by name) a trace detector; returns it, so it works as a decorator on instances."""
    _DETECTORS[detector.name] = detector
    return detector


def unregister_detector(name: str) -> None:
    """Remove a detector (tests, or an operator switching one off)."""
    _DETECTORS.pop(name, None)


def register_visible_labeler(labeler: VisibleLabeler) -> VisibleLabeler:
    """Add (or replace, by name) a visible labeler used by :func:`apply`."""
    _LABELERS[labeler.name] = labeler
    return labeler


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            continue


def registered_detectors() -> dict[str, TraceDetector]:
    """Every registered detector by name (imports the plugin modules on first use)."""
    _load_plugins()
    return dict(_DETECTORS)


def registered_labelers() -> dict[str, VisibleLabeler]:
    """Every registered visible labeler by name."""
    _load_plugins()
    return dict(_LABELERS)
