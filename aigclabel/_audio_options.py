"""The option values of the audible label (GB 45438 §5.3), defined once for the library, the CLI and the service.

Why a module of its own: :mod:`aigclabel.explicit.audio`, which acts on them, loads FFmpeg and SciPy; the service
declares its query parameters with these types at startup without importing either.
"""

from __future__ import annotations

from typing import Literal

#: The audible label: the Morse "AI" cue, the spoken prompt, or both.
LabelKind = Literal["cue", "speech", "both"]
#: Where a label goes in an audio file.
AudioPosition = Literal["start", "end", "middle"]
#: Inserted (the file gets longer) or mixed over the sound.
Mode = Literal["insert", "mix"]
#: Where a streamed voice turn gets its label.
TurnPosition = Literal["start", "end", "both"]
#: Raw PCM sample formats of a streamed voice turn (what TTS engines stream).
PcmFormat = Literal["s16le", "f32le"]
