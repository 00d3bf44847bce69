"""Invisible watermarks: the implicit label that survives metadata stripping and re-encoding.

Platforms strip metadata on upload; a watermark in the pixels, samples or word choice is what lets
them recognise AI-generated content afterwards. Every modality carries the same 64-bit
:class:`Payload` (16-bit key id + 48-bit SHA-256 digest of the ProduceID), so a detected mark can be
matched against a GB 45438 label or a ProduceID database with :meth:`WatermarkResult.matches`.

File-level API (what the CLI and ``label``/``inspect`` use)::

    embed_file("in.png", "out.png", produce_id="...")      # image, audio or .txt/.md
    result = detect_file("out.png")                         # WatermarkResult (None: a format without marks)
    result.present, result.payload, result.matches(produce_id)

Array-level API: :func:`embed_image`/:func:`detect_image`, :func:`embed_audio`/:func:`detect_audio`,
:func:`mark_text`/:func:`read_text_mark`, and the generation-time :class:`GreenListProcessor` with
:func:`detect_green_list`. Keys are bytes; :data:`DEMO_KEY` is public and only for trying things out.
Embedding re-encodes the media (pixels/samples change by design); label the result afterwards.
"""

from __future__ import annotations

import contextlib
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import numpy.typing as npt

from .. import _budget
from .._decode import decode_for_analysis
from .._extras import needs_extra
from .._guard import hostile_input
from .._io import MAX_DECODE_PIXELS, atomic_output
from .._media import VIDEO_OUTPUTS, claimed_by, media_of, output_for, output_suffixes
from ..containers import MediaKind
from ..errors import AIGCLabelError, LimitExceededError, MalformedFileError, UnsupportedFormatError
from ..label import AIGCLabel
from .audio import AudioDetection, detect_audio, embed_audio
from .image import ImageDetection, detect_image, embed_image, psnr
from .payload import DEMO_KEY, Payload, produce_id_digest
from .text import (
    GreenListDetection,
    GreenListProcessor,
    TextMark,
    detect_green_list,
    mark_text,
    read_text_mark,
    strip_text_mark,
)

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "AUDIO_SYNC_ONLY",
    "CONTENT_MISMATCH",
    "DEMO_KEY",
    "AudioDetection",
    "GreenListDetection",
    "GreenListProcessor",
    "ImageDetection",
    "Payload",
    "TextMark",
    "WatermarkResult",
    "detect_audio",
    "detect_decoded_image",
    "detect_file",
    "detect_green_list",
    "detect_image",
    "embed_audio",
    "embed_file",
    "embed_image",
    "mark_text",
    "produce_id_digest",
    "psnr",
    "read_text_mark",
    "strip_text_mark",
]

Media = Literal["image", "audio", "video", "text"]

#: Text containers the text mark is written into (and read from); not HTML, where it would land in markup.
TEXT_MARKED: dict[str, bool] = {"text": True, "markdown": True, "html": False}
#: Image containers whose picture is marked and written back in its own format; not GIF, whose
#: 256-colour palette would quantise the mark away. (Every image is searched for a mark.)
IMAGE_MARKED: dict[str, bool] = {"jpeg": True, "png": True, "webp": True, "tiff": True, "heif": True, "gif": False}
#: Pillow formats no container claims whose pictures are marked too.
_UNCLAIMED_IMAGE_FORMATS = frozenset({"BMP"})
#: Marked audio is written as (FFmpeg muxer, codec) per output suffix, by container; ``{}``: not written.
AUDIO_OUTPUTS: dict[str, dict[str, tuple[str, str]]] = {
    "wav": {".wav": ("wav", "pcm_s16le")},
    "flac": {".flac": ("flac", "flac")},
    "mp3": {".mp3": ("mp3", "libmp3lame")},
    "ogg": {},
    "mp4": {".m4a": ("ipod", "aac")},
}
#: Embedding holds the whole signal in memory (float64), so it is capped; detection reads only a prefix
#: because the mark repeats every 2 s.
_MAX_EMBED_AUDIO_S = 1800.0
_DETECT_AUDIO_S = 120.0
_DETECT_TEXT_BYTES = 16 << 20


#: ``details["unverified"]`` of an image whose mark was made for other content (a copied mark).
CONTENT_MISMATCH = "content mismatch"
#: ``details["unverified"]`` of audio whose block mark synced strongly but whose payload did not verify.
AUDIO_SYNC_ONLY = (
    "this key's sync pattern was found but the payload did not decode and verify (the audio is too short "
    "or too damaged): who made it is not established"
)


@dataclass(frozen=True)
class WatermarkResult:
    """Outcome of looking for a watermark in one file."""

    media: Media
    present: bool
    #: Detection statistic (z-score; for text marks, 1.0/0.0) and the threshold it was compared with.
    score: float
    threshold: float
    #: The payload, when present and its keyed MAC verified with the key used.
    payload: Payload | None
    verified: bool
    details: dict[str, float | str] = field(default_factory=dict)

    def matches(self, produce_id: str) -> bool:
        """True when a verified payload carries this ProduceID's digest."""
        return self.payload is not None and self.payload.matches(produce_id)

    @property
    def orientation(self) -> str:
        """How a picture lies against the one that was marked: "upright" unless a verified image mark was read
        turned or mirrored (``image.ORIENTATIONS``)."""
        return str(self.details.get("orientation", "upright"))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (what ``aigclabel watermark detect --json`` prints)."""
        return {
            "media": self.media,
            "present": self.present,
            "score": round(self.score, 3),
            "threshold": self.threshold,
            "verified": self.verified,
            "key_id": self.payload.key_id if self.payload else None,
            "produce_id_digest": self.payload.hex() if self.payload else None,
            "details": self.details,
        }


def _media_of(path: Path) -> Media | None:
    """What of ``path`` carries a watermark (:func:`aigclabel._media.media_of`, text only where marked)."""
    media = media_of(path)
    if media is MediaKind.TEXT:
        container = claimed_by(path)
        return "text" if container is not None and TEXT_MARKED.get(container.name, False) else None
    return cast(Media, media.value) if media in (MediaKind.IMAGE, MediaKind.AUDIO, MediaKind.VIDEO) else None


def _check_image_marked(path: Path, fmt: str) -> None:
    """Refuse an image whose format cannot hold the mark once written back (:data:`IMAGE_MARKED`)."""
    container = claimed_by(path)
    if container is None and fmt in _UNCLAIMED_IMAGE_FORMATS:
        return
    if container is None or not IMAGE_MARKED.get(container.name, False):
        raise UnsupportedFormatError(f"{path}: {fmt} images cannot be watermarked")


def _read_rgb(path: Path, for_embed: bool = False) -> tuple[npt.NDArray[np.uint8], str, dict[str, object]]:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            fmt = str(im.format)
            if im.width * im.height > MAX_DECODE_PIXELS:
                raise LimitExceededError(
                    f"{path}: {im.width}x{im.height} image is over the {MAX_DECODE_PIXELS // 1_000_000} MP scan limit"
                )
            _budget.charge_pixels(im.width * im.height, f"the {im.width}x{im.height} image")
            if for_embed and getattr(im, "n_frames", 1) > 1:
                raise UnsupportedFormatError(f"{path}: multi-frame images cannot be watermarked (only the first frame)")
            keep: dict[str, object] = {
                k: im.info[k] for k in ("icc_profile", "exif", "xmp") if isinstance(im.info.get(k), bytes)
            }
            texts = getattr(im, "text", None)
            if fmt == "PNG" and texts:
                from PIL.PngImagePlugin import PngInfo

                info = PngInfo()
                for name, value in texts.items():
                    info.add_itxt(name, str(value))
                keep["pnginfo"] = info
            im.load()
            # Mark (and read) the picture as displayed: platforms bake the EXIF orientation into the pixels,
            # and the detector only searches small rotations. The orientation tag is reset accordingly.
            upright = ImageOps.exif_transpose(im)
            if upright is not im and isinstance(upright.info.get("exif"), bytes):
                keep["exif"] = upright.info["exif"]
            mode = "RGBA" if "A" in upright.getbands() else "RGB"
            return np.asarray(upright.convert(mode)), fmt, keep
    except OSError as exc:  # Pillow's "truncated"/"cannot identify"; its bomb limits become LimitExceededError
        raise MalformedFileError(f"{path}: cannot decode image: {exc}") from exc


def _read_audio(path: Path, limit_s: float, truncate: bool) -> tuple[npt.NDArray[np.float64], int]:
    with needs_extra("media"):
        import av

    chunks: list[npt.NDArray[np.float64]] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            rate = int(stream.rate or 0)
            if rate <= 0:
                raise MalformedFileError(f"{path}: audio stream has no sample rate")
            resampler = av.AudioResampler(format="flt", layout="stereo" if stream.channels > 1 else "mono", rate=rate)
            channels = 2 if stream.channels > 1 else 1
            # Charged from the header before decoding (rate x duration), so a small file declaring
            # 384 kHz x 130 s is refused at once; a header that lies is caught chunk by chunk below.
            declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else limit_s
            charged = int(rate * min(declared, limit_s)) * channels
            _budget.charge_samples(charged, f"{rate} Hz x {min(declared, limit_s):.0f} s of audio")
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1, out.layout.nb_channels)
                    if (total + arr.shape[0]) * channels > charged:
                        _budget.charge_samples(arr.size, "the audio")
                    chunks.append(arr.astype(np.float64))
                    total += arr.shape[0]
                if total > limit_s * rate:
                    if truncate:
                        break
                    raise LimitExceededError(f"{path}: longer than {limit_s:.0f} s; refusing to load it whole")
    except (av.error.FFmpegError, IndexError) as exc:
        raise MalformedFileError(f"{path}: cannot decode audio: {exc}") from exc
    if not chunks or rate <= 0:
        raise MalformedFileError(f"{path}: no audio samples")
    return np.concatenate(chunks, axis=0), rate


def _write_audio(dst: Path, output: tuple[str, str], samples: npt.NDArray[np.float64], rate: int) -> None:
    pcm = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2")
    fmt, codec = output
    if fmt == "wav":
        with wave.open(str(dst), "wb") as w:
            w.setnchannels(pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        return
    with needs_extra("media"):
        import av

    layout = "stereo" if pcm.shape[1] > 1 else "mono"
    with av.open(str(dst), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        if codec != "flac":
            stream.bit_rate = 192_000
        for start in range(0, pcm.shape[0], 4096):
            part = np.ascontiguousarray(pcm[start : start + 4096].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
            frame.rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _existing_label(src: Path) -> AIGCLabel | None:
    from ..api import inspect

    try:
        return inspect(src).label
    except AIGCLabelError:
        return None


def _carry_label(label: AIGCLabel | None, out: Path) -> None:
    """Re-write the source's GB 45438 label with the format's own lossless writer (re-encoding dropped it)."""
    if label is None:
        return
    from ..api import write_label

    with contextlib.suppress(UnsupportedFormatError):  # the output format cannot hold a label
        write_label(out, label)


def embed_file(
    src: str | Path,
    dst: str | Path | None,
    produce_id: str,
    *,
    key_id: int = 0,
    key: bytes = DEMO_KEY,
) -> Path:
    """Watermark an image, audio file or UTF-8 text file with ``produce_id``; writes ``dst`` (default: in place).

    Images keep their format (JPEG re-encoded at quality 95) and their ICC/EXIF/XMP/PNG text where
    Pillow can write them back; audio is re-encoded (WAV 16-bit, FLAC, MP3 or M4A/AAC), video to H.264.
    A GB 45438 label the source carried is written again into the result with aigclabel's own writer.
    """
    src = Path(src)
    out = Path(dst) if dst is not None else src
    payload = Payload.for_produce_id(produce_id, key_id)
    media = _media_of(src)
    label = _existing_label(src) if media is not None else None
    if media == "text":
        try:
            text = src.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedFileError(f"{src}: not UTF-8 text") from exc
        with atomic_output(out, mode_from=src) as tmp:
            tmp.write_text(mark_text(text, payload, key), encoding="utf-8")
        _carry_label(label, out)
        return out
    if media == "image":
        from PIL import Image

        pixels, fmt, keep = _read_rgb(src, for_embed=True)
        _check_image_marked(src, fmt)
        im = Image.fromarray(embed_image(pixels, payload, key))
        params: dict[str, object] = {k: v for k, v in keep.items() if not (k == "xmp" and fmt not in ("JPEG", "WEBP"))}
        if fmt == "JPEG":
            params.update(quality=95, subsampling=0)
        elif fmt in ("WEBP", "HEIF", "AVIF"):
            params.update(quality=95)
        with atomic_output(out, mode_from=src) as tmp:
            im.save(tmp, format=fmt, **params)
        _carry_label(label, out)
        return out
    if media == "audio":
        output = output_for(AUDIO_OUTPUTS, out)
        if output is None:
            raise UnsupportedFormatError(
                f"{out}: can write watermarked audio only as {', '.join(output_suffixes(AUDIO_OUTPUTS))}"
            )
        samples, rate = _read_audio(src, _MAX_EMBED_AUDIO_S, truncate=False)
        marked_audio = embed_audio(samples, rate, payload, key).reshape(samples.shape)
        with atomic_output(out, mode_from=src) as tmp:
            _write_audio(tmp, output, marked_audio, rate)
        _carry_label(label, out)
        return out
    if media == "video":
        from .video import embed_video

        vfmt = output_for(VIDEO_OUTPUTS, out)
        if vfmt is None:
            raise UnsupportedFormatError(
                f"{out}: can write watermarked video only as {', '.join(output_suffixes(VIDEO_OUTPUTS))}"
            )
        with atomic_output(out, mode_from=src) as tmp:
            embed_video(src, tmp, payload, key, container_format=vfmt)
        _carry_label(label, out)
        return out
    raise UnsupportedFormatError(f"{src}: not an image, audio, video or text file aigclabel can watermark")


def detect_file(path: str | Path, *, key: bytes = DEMO_KEY, search_speed: bool = False) -> WatermarkResult | None:
    """Look for a watermark in an image, audio, video or text file; None for a file of another format
    aigclabel knows (a PDF, say), :class:`UnsupportedFormatError` for one nothing here can read.

    ``search_speed`` also searches audio played faster or slower (seconds of CPU per clip; see
    :func:`~aigclabel.watermark.audio.detect_audio`). Raises :class:`LimitExceededError` ("not
    searched") for media over the decode limits.
    """
    path = Path(path)
    with hostile_input(path, "media"):
        return _detect_file(path, key, search_speed)


def detect_decoded_image(image: Image.Image | npt.NDArray[np.uint8], key: bytes = DEMO_KEY) -> WatermarkResult:
    """Look for a watermark in an already decoded picture, or its pixels (e.g. the shared decode of ``verify``)."""
    from .image import Z_PRESENT

    d = detect_image(np.asarray(image), key, record=False)
    return WatermarkResult(
        "image",
        d.present,
        d.z,
        Z_PRESENT,
        d.payload,
        d.mac_ok and d.present,
        {
            "scale": round(d.scale, 4),
            "rotation_deg": round(d.rotation_deg, 2),
            **({"orientation": d.orientation} if d.orientation is not None else {}),
            "ms": round(d.elapsed_ms, 1),
            # Which layer verified: 1 the tile mark, 2 the low-frequency layer (marks made since issue 18).
            **({"layer": int(d.details.get("layer", 1))} if d.payload is not None else {}),
            **({} if d.content_ok else {"unverified": CONTENT_MISMATCH}),
        },
    )


def _detect_file(path: Path, key: bytes, search_speed: bool = False) -> WatermarkResult | None:
    from ..api import vet

    vet(path)  # a file over our parsers' limits never reaches FFmpeg or Pillow
    media = _media_of(path)
    if media == "text":
        with open(path, "rb") as handle:
            raw = handle.read(_DETECT_TEXT_BYTES)  # marks repeat per paragraph: a prefix is enough
        mark = read_text_mark(raw.decode("utf-8", errors="replace"), key)
        ok = mark is not None and mark.verified
        return WatermarkResult(
            "text",
            ok,
            1.0 if ok else 0.0,
            1.0,
            mark.payload if ok and mark is not None else None,
            ok,
            {"marks": float(mark.count) if mark else 0.0},
        )
    if media == "image":
        image, _factor = decode_for_analysis(path, keep_alpha=True)  # half scale over 16 MP: the search covers it
        return detect_decoded_image(image, key)
    if media == "audio":
        from .audio import Z_PRESENT as AZ
        from .audio import Z_SCALE

        samples, rate = _read_audio(path, _DETECT_AUDIO_S, truncate=True)
        a = detect_audio(samples, rate, key, search_speed=search_speed)
        speed = {"speed": round(a.speed, 4)} if a.speed != 1.0 else {}
        if a.version == 3:  # the scale layer: what pitch shift and tempo change it was found at
            speed = {"version": 3.0, "tempo": round(a.tempo, 4), "pitch_semitones": round(a.pitch_semitones, 2)}
        verified = a.mac_ok and a.present
        return WatermarkResult(
            "audio",
            a.present,
            a.z,
            Z_SCALE if a.version == 3 else AZ,
            a.payload,
            verified,
            {
                "offset_s": round(a.offset_s, 3),
                "ms": round(a.elapsed_ms, 1),
                **speed,
                **({"unverified": AUDIO_SYNC_ONLY} if a.present and not verified else {}),
            },
        )
    if media == "video":
        from .image import Z_PRESENT as VZ
        from .video import detect_video

        v = detect_video(path, key)
        return WatermarkResult(
            "video",
            v.present,
            v.z,
            VZ,
            v.payload,
            v.mac_ok and v.present,
            {"scale": round(v.scale, 4), "rotation_deg": round(v.rotation_deg, 2), "ms": round(v.elapsed_ms, 1)},
        )
    if claimed_by(path) is None:  # neither a format we know nor anything Pillow or FFmpeg decodes
        raise UnsupportedFormatError(f"{path}: not an image, audio, video or text file aigclabel can read")
    return None
