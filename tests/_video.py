"""Helpers shared by the video container tests: lavfi fixtures and independent-tool checks."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import require_tool

VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]

#: The ``fresh`` fixture: a private copy of a named module fixture file.
Fresh = Callable[[str], Path]


def copier(fixtures: dict[str, Path], folder: Path) -> Fresh:
    """A `Fresh`: copies the named (module-scoped, shared) fixture file into ``folder`` before use."""

    def copy(name: str) -> Path:
        return Path(shutil.copy(fixtures[name], folder / fixtures[name].name))

    return copy


def ffmpeg(out: Path, *args: str) -> Path:
    """Run ffmpeg quietly, writing ``out``; fail the test with ffmpeg's message on error."""
    require_tool("ffmpeg")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return out


def stream_hash(path: Path) -> str:
    """Per-stream hash of every demuxed packet (``-c copy``): identical means identical media."""
    require_tool("ffmpeg")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-c", "copy", "-f", "streamhash", "-"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "ffmpeg found no streams"
    return done.stdout


def decode_errors(path: Path) -> str:
    """ffmpeg's complaints while decoding every frame (empty when the file is clean)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return done.stderr if done.returncode == 0 else f"exit {done.returncode}: {done.stderr}"


def ffprobe_tags(path: Path) -> dict[str, str]:
    """Container-level tags as ffprobe reports them."""
    require_tool("ffprobe")
    cmd = ["ffprobe", "-v", "error", "-show_entries", "format_tags", "-of", "json", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    tags: dict[str, str] = json.loads(done.stdout).get("format", {}).get("tags", {})
    return tags


def packet_count(path: Path) -> int:
    """Number of packets ffprobe demuxes (checks indexes and offsets still work)."""
    cmd = ["ffprobe", "-v", "error", "-show_entries", "packet=pos", "-of", "csv=p=0", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return len(done.stdout.split())


def late_face_video(out: Path, face: Path, *, gop: int | None = None) -> Path:
    """A 60 s, 30 fps H.264 video (480x360, libx264's default GOP or ``gop`` frames) of a blank wall with the
    picture ``face`` (scaled to 300x300) shown only from second 40 to 50: a face a sampler must reach late."""
    keyint = ["-g", str(gop)] if gop else []
    return ffmpeg(
        out,
        *("-f", "lavfi", "-i", "color=c=0x284050:s=480x360:r=30:d=60"),
        *("-framerate", "30", "-loop", "1", "-t", "10", "-i", str(face)),
        *("-filter_complex", "[1]scale=300:300,setpts=PTS+40/TB[a];[0][a]overlay=90:30:eof_action=pass"),
        *("-c:v", "libx264", "-preset", "veryfast", *keyint, "-pix_fmt", "yuv420p"),
    )
