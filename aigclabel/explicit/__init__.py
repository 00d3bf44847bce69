"""Explicit (visible or audible) labels per GB 45438 §5: text, images, audio, video and chat UIs.

Each function takes a source and writes a labelled copy; the label text is validated so it always
contains the AI element ("人工智能"/"AI") and the generation element ("生成"/"合成"). Images, audio
and video are re-encoded (the one case where aigclabel changes the payload); metadata and the
implicit label are carried over, but a ``ReservedCode1`` signature bound to the old payload no longer
matches and has to be issued again for the labelled copy.

>>> from aigclabel import explicit
>>> explicit.label_text("你好", position="end")
'你好\\n\\n【人工智能生成】\\n'
"""

from __future__ import annotations

from ..errors import FontNotFoundError
from .audio import (
    AudioLabelResult,
    CueMatch,
    CueTiming,
    add_audio_label,
    detect_cue,
    detect_cue_in_file,
    label_pcm_stream,
    make_cue,
    scan_audio,
)
from .document import DocumentLabelResult, add_document_label
from .fonts import find_cjk_font
from .image import ImageLabelResult, LabelLayout, LocatedLabel, add_image_label, locate_label, plan_label
from .scene import SceneLabelResult, add_scene_label, find_scene_labels
from .text import (
    DEFAULT_LABEL,
    ENGLISH_LABEL,
    TextLabelFinding,
    add_text_label,
    alabel_stream,
    find_text_labels,
    label_stream,
    label_text,
    validate_label_text,
)
from .ui import badge_css, badge_html
from .video import VideoLabelResult, add_video_label

__all__ = [
    "DEFAULT_LABEL",
    "ENGLISH_LABEL",
    "AudioLabelResult",
    "CueMatch",
    "CueTiming",
    "DocumentLabelResult",
    "FontNotFoundError",
    "ImageLabelResult",
    "LabelLayout",
    "LocatedLabel",
    "SceneLabelResult",
    "TextLabelFinding",
    "VideoLabelResult",
    "add_audio_label",
    "add_document_label",
    "add_image_label",
    "add_scene_label",
    "add_text_label",
    "add_video_label",
    "alabel_stream",
    "badge_css",
    "badge_html",
    "detect_cue",
    "detect_cue_in_file",
    "find_cjk_font",
    "find_scene_labels",
    "find_text_labels",
    "label_pcm_stream",
    "label_stream",
    "label_text",
    "locate_label",
    "make_cue",
    "plan_label",
    "scan_audio",
    "validate_label_text",
]
