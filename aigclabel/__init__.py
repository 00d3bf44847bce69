"""aigclabel: label AI-generated content per GB 45438-2025 and verify those labels.

The public API is small::

    from aigclabel import AIGCLabel, write_label, inspect

    label = AIGCLabel.for_producer("001191440300708461136T1XGW3")
    write_label("out.jpg", label)
    print(inspect("out.jpg").label)
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

    __version__: str

#: The module of each public name. They are imported on first use (PEP 562), so that ``python -m
#: aigclabel`` starts by running the command line's own start-up code, not by importing the library.
_HOMES = {
    **dict.fromkeys(
        ("Inspection", "Written", "inspect", "read_label", "read_labels", "strip_label", "write_label", "write_many"),
        "api",
    ),
    **dict.fromkeys(("FoundLabel", "open_container", "registered"), "containers"),
    **dict.fromkeys(
        (
            "AIGCLabelError",
            "FileAccessError",
            "InvalidLabelError",
            "LimitExceededError",
            "MalformedFileError",
            "NotRegularFileError",
            "TruncatedFileError",
            "UnsupportedFormatError",
            "WriteNotSupportedError",
        ),
        "errors",
    ),
    **dict.fromkeys(
        (
            "DEMO_PROVIDER_CODE",
            "FIELD_NAMES",
            "AIGCLabel",
            "LabelValue",
            "ParsedLabel",
            "Problem",
            "make_provider_code",
            "new_produce_id",
            "provider_code_problems",
        ),
        "label",
    ),
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use; ``__version__``: the installed package's
    version (written once, in ``pyproject.toml``), read on first use since importing
    :mod:`importlib.metadata` would cost every command's start."""
    home = _HOMES.get(name)
    if home is not None:
        from importlib import import_module

        value = getattr(import_module(f"{__name__}.{home}"), name)
        globals()[name] = value
        return value
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aigclabel")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


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
