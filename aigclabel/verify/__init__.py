"""Platform verification per Measures Art. 6 (see :mod:`aigclabel.verify.classification` for the rules).

One module per job, every public name re-exported here: :mod:`.classification` (the Art. 6 rule,
:func:`classify`), :mod:`.evidence` (:class:`Classification`, :class:`Evidence`, :class:`Verdict`),
:mod:`.detectors` (the detector and visible-labeler registry, planning and running detectors),
:mod:`.propagation` (:func:`apply`: the platform's label and visible prompt) and :mod:`.xmp_source`
(the IPTC digital-source-type detector). Detectors for the other techniques live beside them
(``aigclabel.explicit.detector``, ``aigclabel.watermark.detector``, ``aigclabel.c2pa_manifest``) and
register themselves when :func:`registered_detectors` first runs.
"""

from __future__ import annotations

from ..errors import VerifyError
from .classification import LABEL_CLASSES, classify
from .detectors import (
    _DETECTORS,
    _LABELERS,
    DEFAULT_DETECTOR_COST,
    PLUGIN_MODULES,
    TraceDetector,
    VisibleLabeler,
    detector_cost,
    detector_formats,
    detector_shares_media,
    plan_detectors,
    register_detector,
    register_visible_labeler,
    registered_detectors,
    registered_labelers,
    run_detector,
    unregister_detector,
)
from .evidence import Classification, Evidence, EvidenceRole, Verdict
from .propagation import PROMPT_SUFFIX, PROMPTS, Applied, PromptMode, apply, prompt_file_for, propagation_label
from .xmp_source import XmpSourceTypeDetector

__all__ = [
    "DEFAULT_DETECTOR_COST",
    "LABEL_CLASSES",
    "PLUGIN_MODULES",
    "PROMPTS",
    "PROMPT_SUFFIX",
    "_DETECTORS",
    "_LABELERS",
    "Applied",
    "Classification",
    "Evidence",
    "EvidenceRole",
    "PromptMode",
    "TraceDetector",
    "Verdict",
    "VerifyError",
    "VisibleLabeler",
    "XmpSourceTypeDetector",
    "apply",
    "classify",
    "detector_cost",
    "detector_formats",
    "detector_shares_media",
    "plan_detectors",
    "prompt_file_for",
    "propagation_label",
    "register_detector",
    "register_visible_labeler",
    "registered_detectors",
    "registered_labelers",
    "run_detector",
    "unregister_detector",
]
