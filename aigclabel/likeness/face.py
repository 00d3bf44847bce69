"""Faces: find them in an image or a video and reduce each to a 128-d embedding (dlib, public-domain weights).

The pipeline is dlib's, run directly (not through ``face_recognition``, which needs ``pkg_resources``):

1. the HOG + linear SVM frontal face detector (``get_frontal_face_detector``, built into dlib);
2. the 5-point landmark model (``shape_predictor_5_face_landmarks.dat``) to align the face;
3. the ResNet encoder (``dlib_face_recognition_resnet_model_v1.dat``): 128 numbers per face, where the
   Euclidean distance between two faces of one person is small.

The weights come from ``face_recognition_models`` (public domain); its files are found with
:func:`importlib.util.find_spec`, as importing it needs ``pkg_resources``. Two of its files are left
alone on purpose: the 68-point landmark model was trained on iBUG 300-W, whose licence excludes
commercial use, and the MMOD CNN detector costs ~10x the HOG one on a CPU.

Work is bounded whatever the input: files go through the project's decoders (:func:`decode_for_analysis`
refuses an image over the decode limit and halves a large one; :func:`video_frames` samples one frame
per second at most ``limit`` times and charges the budget), the detector runs on an image of at most
:data:`DETECT_PIXELS` after upsampling (landmarks and encoding use the full-size picture), and at most
:data:`MAX_FACES` faces are encoded per picture, the detector's most confident first.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _budget
from .._decode import check_pixels, video_frames
from .._extras import needs_extra
from .._media import MediaSample, media_of
from ..containers import MediaKind
from ..errors import MissingExtraError, UnsupportedFormatError
from .types import Likeness, Modality

if TYPE_CHECKING:
    import numpy.typing as npt
    from PIL import Image

__all__ = ["DETECT_PIXELS", "MAX_FACES", "MODEL", "THRESHOLD", "FaceEncoder", "find_in_file"]

#: Recorded with every embedding and decision: detector, landmarks, encoder (a change of any one
#: changes the distances, so old templates must not be compared with new ones).
MODEL = "dlib-hog/sp5/resnet128-v1"
#: Euclidean distance at or below which two faces are taken to be one person. dlib's reference is 0.6
#: (99.38 % on LFW). ``bench/likeness.py`` found every same-person pair at or below 0.50 (distinct photos,
#: crops, mirror, rotation, brightness, JPEG q10, hue, grey), but different people at 0.555 unedited and,
#: edited the way a deepfake pipeline does, at 0.567 (grey), 0.578 (hue) and 0.548 (a 128 px face at JPEG
#: q10): at 0.6 those match, at 0.55 all but the last are kept apart. Four identities are a small sample;
#: callers may pass their own threshold, and every decision records it.
THRESHOLD = 0.55
#: Pixels the HOG detector looks at (image area x 4 per upsampling step); a larger picture is scaled down
#: for detection only. About 0.5 s of CPU; keeps faces of ~100 px findable in a 12 MP photo.
DETECT_PIXELS = 8_000_000
#: Faces encoded per picture at most (each costs ~60 ms of CPU); a crowd beyond this keeps its clearest faces.
MAX_FACES = 20
#: The landmark and encoder files of ``face_recognition_models`` this module uses.
_LANDMARKS = "shape_predictor_5_face_landmarks.dat"
_ENCODER = "dlib_face_recognition_resnet_model_v1.dat"


class _Models:
    """dlib's detector, landmark model and encoder, loaded once per process (~0.5 s, ~100 MB)."""

    def __init__(self) -> None:
        with needs_extra("likeness"):
            import dlib
        folder = _model_folder()
        self.detector: Any = dlib.get_frontal_face_detector()
        self.landmarks: Any = dlib.shape_predictor(str(folder / _LANDMARKS))
        self.encoder: Any = dlib.face_recognition_model_v1(str(folder / _ENCODER))
        self.rectangle: Any = dlib.rectangle
        # dlib's networks keep their activations in the object: one picture at a time per process.
        self.lock = threading.Lock()


def _model_folder() -> Path:
    """Where ``face_recognition_models`` keeps its ``.dat`` files (found without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("Face matching (likeness protection)", "likeness", "face_recognition_models")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not (folder / _LANDMARKS).is_file() or not (folder / _ENCODER).is_file():
        raise MissingExtraError("Face matching (likeness protection)", "likeness", "face_recognition_models")
    return folder


@lru_cache(maxsize=1)
def _models() -> _Models:
    return _Models()


class FaceEncoder:
    """Finds faces and compares their embeddings; the models load on first use and are shared per process.

    ``upsample`` doubles the picture that many times before detection so faces under ~80 px are found
    (0: faces from ~80 px; 1, the default: from ~40 px, 4x the detection cost, within :data:`DETECT_PIXELS`).
    ``jitters`` re-encodes each face that many times with small random shifts and averages (slower, a
    little steadier: for enrolment). ``min_score`` drops detections below that HOG score (dlib's own
    cut is 0; true faces in the bench score 0.7-2, the one false detection seen scored 0.12).
    """

    modality: Modality = "face"
    model: str = MODEL

    def __init__(
        self, *, threshold: float = THRESHOLD, upsample: int = 1, jitters: int = 0, min_score: float = 0.0
    ) -> None:
        if not 0 <= upsample <= 3:
            raise ValueError("upsample must be 0-3")
        self.threshold = threshold
        self.upsample = upsample
        self.jitters = jitters
        self.min_score = min_score

    def distance(self, a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
        """Euclidean distance between two face embeddings (0 = identical; same person at or below ``threshold``)."""
        return float(np.linalg.norm(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)))

    def matches(self, a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> bool:
        """Whether two embeddings are taken to be of one person."""
        return self.distance(a, b) <= self.threshold

    def find(self, image: Image.Image, *, at: float | None = None, scale: float = 1.0) -> list[Likeness]:
        """Every face in ``image`` (at most :data:`MAX_FACES`), most confident first.

        ``where`` is the face's box ``(left, top, right, bottom)`` in pixels of the picture, multiplied by
        ``scale`` (the factor a decoder reduced it by, so boxes refer to the original file); ``at`` is
        passed through (the video time of the frame). A picture over the decode limit is refused
        (:class:`LimitExceededError`).
        """
        check_pixels("picture", image.width, image.height)  # a caller's own image, not one our decoders bounded
        models = _models()
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8))
        _budget.check("face detection")
        with models.lock:
            boxes = self._detect(models, image, rgb)
            found = []
            for box, score in boxes[:MAX_FACES]:
                _budget.check("face encoding")
                shape = models.landmarks(rgb, box)
                vector = models.encoder.compute_face_descriptor(rgb, shape, self.jitters)
                where = tuple(float(v * scale) for v in (box.left(), box.top(), box.right(), box.bottom()))
                found.append(
                    Likeness(
                        modality="face",
                        vector=np.asarray(vector, dtype=np.float32),
                        where=where,
                        model=MODEL,
                        quality=score,
                        at=at,
                    )
                )
        return found

    def _detect(self, models: _Models, image: Image.Image, rgb: npt.NDArray[np.uint8]) -> list[tuple[Any, float]]:
        """Face boxes in full-size coordinates with their HOG scores, best first; detection on a picture
        scaled so that its upsampled area stays within :data:`DETECT_PIXELS`."""
        height, width = rgb.shape[:2]
        shrink = math.sqrt(DETECT_PIXELS / (width * height * 4**self.upsample)) if width and height else 1.0
        small = rgb
        if shrink < 1:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            small = np.asarray(image.convert("RGB").resize(size, reducing_gap=2.0), dtype=np.uint8)
        rects, scores, _ = models.detector.run(small, self.upsample, self.min_score)
        grow = width / small.shape[1]
        boxes = [
            (
                models.rectangle(
                    round(r.left() * grow), round(r.top() * grow), round(r.right() * grow), round(r.bottom() * grow)
                ),
                float(s),
            )
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(boxes, key=lambda pair: -pair[1])

    def find_in_file(self, path: Path | str, *, every: float = 1.0, limit: int = 30) -> list[Likeness]:
        """Faces in an image file (any format the project decodes), or in a video sampled one frame per
        ``every`` seconds (at most ``limit`` frames, spread over the whole video when it is longer)."""
        path = Path(path)
        kind = media_of(path)
        if kind is MediaKind.IMAGE:
            image, factor = MediaSample(path).analysis_image()
            return self.find(image, scale=factor)
        if kind is MediaKind.VIDEO:
            found: list[Likeness] = []
            for time, frame in video_frames(path, every=every, limit=limit):
                found.extend(self.find(frame, at=time))
            return found
        raise UnsupportedFormatError(f"{path}: not an image or a video; no faces searched")


def find_in_file(path: Path | str) -> list[Likeness]:
    """Faces in the image or video at ``path`` with the default :class:`FaceEncoder`."""
    return FaceEncoder().find_in_file(path)
