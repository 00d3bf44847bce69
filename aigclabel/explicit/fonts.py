"""Finding a CJK font for visible labels, without any download at run time.

Order of preference:

1. the ``pylopdf-fonts-zh-cn`` wheel (a declared dependency; ships Noto Sans SC under the OFL), found
   with :mod:`importlib.resources`, so the project does not depend on the system's font packages;
2. fontconfig (``fc-match :lang=zh-cn``), which finds e.g. Debian's fonts-wqy-microhei or
   fonts-noto-cjk;
3. an explicit path given by the caller or the ``AIGCLABEL_FONT`` environment variable (checked first).

A candidate is only accepted if it really has glyphs for 人工智能生成 (a fallback font that draws tofu
boxes would pass a size check while being illegible).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from PIL import ImageFont

from ..errors import FontNotFoundError

#: Characters every label font must cover.
REQUIRED_GLYPHS = "人工智能生成合成AI"


def _covers(path: Path, index: int = 0) -> bool:
    try:
        font = ImageFont.truetype(str(path), 64, index=index)
    except OSError:
        return False
    # A missing glyph renders as the font's .notdef box: identical masks for different characters.
    masks = {bytes(font.getmask(ch)) for ch in "人工智能生成"}
    return len(masks) == 6 and all(font.getbbox(ch)[2] > 0 for ch in REQUIRED_GLYPHS)


def _bundled() -> Path | None:
    try:
        root = resources.files("pylopdf_fonts_zh_cn")
    except ModuleNotFoundError:
        return None
    candidate = root / "NotoSansSC-Regular.otf"
    return Path(str(candidate)) if candidate.is_file() else None


def _fontconfig() -> Path | None:
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        result = subprocess.run(
            [fc_match, "-f", "%{file}", "sans-serif:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = Path(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else None
    return path if path is not None and path.is_file() else None


@functools.lru_cache(maxsize=8)
def find_cjk_font(explicit: str | None = None) -> Path:
    """Path of a font that renders the label characters; raises :class:`FontNotFoundError`."""
    candidates: list[Path | None] = [
        Path(explicit) if explicit else None,
        Path(os.environ["AIGCLABEL_FONT"]) if os.environ.get("AIGCLABEL_FONT") else None,
        _bundled(),
        _fontconfig(),
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file() and _covers(candidate):
            return candidate
    raise FontNotFoundError(
        "no font with Chinese glyphs found: install aigclabel's dependency pylopdf-fonts-zh-cn, "
        "or a CJK font visible to fontconfig (Debian: fonts-wqy-microhei), or set AIGCLABEL_FONT"
    )


@functools.lru_cache(maxsize=64)
def load_font(size: int, explicit: str | None = None) -> ImageFont.FreeTypeFont:
    """The CJK font at ``size`` pixels (cached: video labels reuse it for every frame)."""
    return ImageFont.truetype(str(find_cjk_font(explicit)), size)
