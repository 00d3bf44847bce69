"""IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/) that mean "made by AI".

One list for every technique that reads or writes them: the XMP ``Iptc4xmpExt:DigitalSourceType``
detector and the C2PA ``c2pa.created`` action.
"""

from __future__ import annotations

#: The controlled-vocabulary prefix of every IPTC digital source type URI.
IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: Made with generative AI (the type aigclabel writes, and the composite that includes such media).
GENERATIVE_AI = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
#: Also machine-made without a trained model (procedural) or wholly synthetic composites; C2PA readers
#: count these as AI claims too.
ALGORITHMIC = frozenset({"algorithmicMedia", "compositeSynthetic"})
#: Every source type that counts as an AI trace.
AI_SOURCE_TYPES = GENERATIVE_AI | ALGORITHMIC
#: The type aigclabel writes for generated content.
TRAINED_ALGORITHMIC_MEDIA = "trainedAlgorithmicMedia"


def source_type_code(value: str) -> str:
    """The bare code of a source type given as a URI or a code (``.../trainedAlgorithmicMedia`` -> the code)."""
    return value.strip().rstrip("/").rsplit("/", 1)[-1]


def is_ai_source_type(value: str, *, generative_only: bool = False) -> bool:
    """True when ``value`` (URI or code) names an AI source type."""
    return source_type_code(value) in (GENERATIVE_AI if generative_only else AI_SOURCE_TYPES)
