"""Platform verification per Measures Art. 6 (see :mod:`aigclabel.verify.classification` for the rules).

The public names live in :mod:`.classification` (classification, evidence, the detector registry, apply);
:mod:`.xmp_source` holds the IPTC digital-source-type detector. Detectors for the other techniques
live beside them (``aigclabel.explicit.detector``, ``aigclabel.watermark.detector``,
``aigclabel.c2pa_manifest``) and register themselves when :func:`registered_detectors` first runs.
"""

from __future__ import annotations

from ..errors import VerifyError
from .classification import (
    _DETECTORS,
    _LABELERS,
    DEFAULT_DETECTOR_COST,
    LABEL_CLASSES,
    PLUGIN_MODULES,
    PROMPT_SUFFIX,
    PROMPTS,
    Applied,
    Classification,
    Evidence,
    EvidenceRole,
    PromptMode,
    TraceDetector,
    Verdict,
    VisibleLabeler,
    apply,
    classify,
    detector_cost,
    detector_formats,
    detector_shares_media,
    plan_detectors,
    prompt_file_for,
    propagation_label,
    register_detector,
    register_visible_labeler,
    registered_detectors,
    registered_labelers,
    run_detector,
    unregister_detector,
)
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
