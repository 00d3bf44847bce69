"""aigclabel: label AI-generated content per GB 45438-2025 and verify those labels.

The public API is small::

    from aigclabel import AIGCLabel, write_label, inspect

    label = AIGCLabel.for_producer("001191440300708461136T1XGW3")
    write_label("out.jpg", label)
    print(inspect("out.jpg").label)
"""

from .api import Inspection, Written, inspect, read_label, read_labels, strip_label, write_label, write_many
from .containers import FoundLabel, open_container, registered
from .errors import (
    AIGCLabelError,
    FileAccessError,
    InvalidLabelError,
    LimitExceededError,
    MalformedFileError,
    NotRegularFileError,
    TruncatedFileError,
    UnsupportedFormatError,
    WriteNotSupportedError,
)
from .label import (
    DEMO_PROVIDER_CODE,
    FIELD_NAMES,
    AIGCLabel,
    LabelValue,
    ParsedLabel,
    Problem,
    make_provider_code,
    new_produce_id,
    provider_code_problems,
)


def __getattr__(name: str) -> str:
    """``__version__``: the installed package's version (written once, in ``pyproject.toml``). Read on
    first use, since importing :mod:`importlib.metadata` would cost every command's start."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aigclabel")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__all__ = [
    "DEMO_PROVIDER_CODE",
    "FIELD_NAMES",
    "AIGCLabel",
    "AIGCLabelError",
    "FileAccessError",
    "FoundLabel",
    "Inspection",
    "InvalidLabelError",
    "LabelValue",
    "LimitExceededError",
    "MalformedFileError",
    "NotRegularFileError",
    "ParsedLabel",
    "Problem",
    "TruncatedFileError",
    "UnsupportedFormatError",
    "WriteNotSupportedError",
    "Written",
    "inspect",
    "make_provider_code",
    "new_produce_id",
    "open_container",
    "provider_code_problems",
    "read_label",
    "read_labels",
    "registered",
    "strip_label",
    "write_label",
    "write_many",
]
