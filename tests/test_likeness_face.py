"""Face matching (``aigclabel.likeness.face``) on real photos, fetched, never committed.

The photos of two people come from the ``face_recognition`` 1.3.0 sdist (``tests/corpus/fetch.py``:
obama*.jpg, biden.jpg, 32bit.png), a third person from scikit-image's bundled astronaut; the two-person
picture and the video are assembled from them here. Skips without dlib (the ``[likeness]`` extra),
which CI installs.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image

from aigclabel import _budget
from aigclabel._decode import video_frames
from aigclabel.errors import BudgetExceeded, LimitExceededError, MalformedFileError, UnsupportedFormatError
from aigclabel.likeness import face
from aigclabel.likeness.face import FaceEncoder
from aigclabel.likeness.types import Likeness
from tests import _hostile
from tests.conftest import missing
from tests.corpus import CORPUS

pytestmark = pytest.mark.interop  # fetched photos

PHOTOS = CORPUS / "face_recognition-1.3.0" / "tests" / "test_images"


@pytest.fixture(scope="session")
def encoder() -> FaceEncoder:
    """One encoder for the session; its models load once per process."""
    pytest.importorskip("dlib")
    return FaceEncoder()


@pytest.fixture(scope="session")
def photos() -> Path:
    if not (PHOTOS / "obama.jpg").is_file():
        missing("the face_recognition sdist's photos are not downloaded", "run `make corpus`")
    return PHOTOS


@pytest.fixture(scope="session")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skdata = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("faces") / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def faces(encoder: FaceEncoder, photos: Path, astronaut: Path) -> dict[str, Likeness]:
    """The most confident face of each photo, found once."""
    paths = {name: photos / f"{name}.jpg" for name in ("obama", "obama2", "obama3", "biden")}
    paths["astronaut"] = astronaut
    return {name: encoder.find_in_file(path)[0] for name, path in paths.items()}


def test_same_person_matches_across_photos(encoder: FaceEncoder, faces: dict[str, Likeness]) -> None:
    for other in ("obama2", "obama3"):
        distance = encoder.distance(faces["obama"].vector, faces[other].vector)
        assert distance <= encoder.threshold, other
    assert faces["obama"].vector.shape == (128,) and faces["obama"].model == face.MODEL


def test_different_people_do_not_match(encoder: FaceEncoder, faces: dict[str, Likeness]) -> None:
    people = ("obama", "biden", "astronaut")
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            assert not encoder.matches(faces[a].vector, faces[b].vector), (a, b)


def test_two_people_in_one_picture(
    encoder: FaceEncoder, faces: dict[str, Likeness], photos: Path, tmp_path: Path
) -> None:
    """Obama and Biden side by side: two faces, each in its half, each matching its person."""
    left, right = Image.open(photos / "obama.jpg"), Image.open(photos / "biden.jpg")
    right = right.resize((right.width * left.height // right.height, left.height))
    both = Image.new("RGB", (left.width + right.width, left.height))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    path = tmp_path / "two_people.webp"  # any format the project decodes
    both.save(path, quality=90)
    found = encoder.find_in_file(path)
    assert len(found) == 2
    by_side = sorted(found, key=lambda f: f.where[0])
    assert by_side[0].where[2] <= left.width <= by_side[1].where[0]
    assert encoder.matches(by_side[0].vector, faces["obama"].vector)
    assert encoder.matches(by_side[1].vector, faces["biden"].vector)
    assert not encoder.matches(by_side[1].vector, faces["obama"].vector)


def test_picture_without_a_face(encoder: FaceEncoder, tmp_path: Path) -> None:
    skdata = pytest.importorskip("skimage.data")
    path = tmp_path / "coffee.jpg"
    Image.fromarray(skdata.coffee()).save(path)
    assert encoder.find_in_file(path) == []


def test_alpha_picture_and_its_opaque_twin(encoder: FaceEncoder, faces: dict[str, Likeness], photos: Path) -> None:
    """32bit.png is obama2.jpg with an alpha channel: the same face, almost the same embedding."""
    (found,) = encoder.find_in_file(photos / "32bit.png")
    assert encoder.distance(found.vector, faces["obama2"].vector) < 0.1


def test_large_picture_is_detected_at_reduced_size(
    encoder: FaceEncoder, faces: dict[str, Likeness], photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the detection budget the detector sees a smaller picture; boxes still refer to the original."""
    monkeypatch.setattr(face, "DETECT_PIXELS", 250_000)
    (found,) = encoder.find(Image.open(photos / "obama.jpg"))
    assert _overlap(found.where, faces["obama"].where) > 0.7  # the HOG pyramid's steps move the box a little
    assert encoder.matches(found.vector, faces["obama"].vector)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _video(path: Path, pictures: list[tuple[Image.Image, int]], rate: int = 10, gop: int = 12) -> Path:
    """An MPEG-4 video showing each picture for its number of frames (a keyframe every ``gop`` frames)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.codec_context.gop_size = gop
        stream.width, stream.height = pictures[0][0].size
        stream.pix_fmt = "yuv420p"
        for picture, count in pictures:
            frame = av.VideoFrame.from_image(picture)
            for _ in range(count):
                out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _obama_video(photos: Path, path: Path) -> Path:
    photo = Image.open(photos / "obama.jpg").convert("RGB").resize((364, 454))
    blank = Image.new("RGB", photo.size, (40, 60, 80))
    return _video(path, [(blank, 15), (photo, 20), (blank, 10)])


def test_face_in_a_video_is_found_with_its_time(
    encoder: FaceEncoder, faces: dict[str, Likeness], photos: Path, tmp_path: Path
) -> None:
    """Blank 0-1.5 s, the face 1.5-3.5 s, blank to 4.5 s; sampled once a second: faces at 2 s and 3 s only."""
    found = encoder.find_in_file(_obama_video(photos, tmp_path / "face.mp4"))
    assert [f.at for f in found] == pytest.approx([2.0, 3.0])
    assert all(encoder.matches(f.vector, faces["obama"].vector) for f in found)
    assert not any(encoder.matches(f.vector, faces["biden"].vector) for f in found)


def test_long_video_is_sampled_over_its_whole_length_by_seeking(tmp_path: Path) -> None:
    """20 s at 5 fps, keyframes every 2 s, 3 samples: one every 9.9 s up to the last frame, decoding far fewer than
    the 100 frames."""
    pictures = [(Image.new("RGB", (64, 48), (i * 2, 80, 120)), 1) for i in range(100)]
    video = _video(tmp_path / "long.mp4", pictures, rate=5, gop=10)
    with _budget.budget(_budget.Budget()), _budget.stage("faces") as spent:
        times = [at for at, _ in video_frames(video, every=1.0, limit=3)]
        assert spent is not None and spent.used_frames < 40
    assert times == pytest.approx([0.0, 10.0, 19.8], abs=0.25)


def test_video_sampling_is_budgeted(encoder: FaceEncoder, photos: Path, tmp_path: Path) -> None:
    video = _obama_video(photos, tmp_path / "face.mp4")
    with _budget.budget(_budget.Budget(frames=5)), _budget.stage("faces") as spent:
        times = [at for at, _ in video_frames(video)]  # 5 samples 10 frames apart: keyframes alone fit
        assert spent is not None and spent.used_frames == len(times) <= 5 and times[0] == 0.0
    with _budget.budget(_budget.Budget(frames=5, seconds=0)), pytest.raises(BudgetExceeded, match="over budget"):
        encoder.find_in_file(video)
    assert len(encoder.find_in_file(video, limit=1)) == 0  # one sample: the blank first frame


def test_hostile_inputs_give_typed_errors(encoder: FaceEncoder, tmp_path: Path, photos: Path) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(_hostile.png_huge_dimensions())
    with pytest.raises(LimitExceededError, match="not searched"):
        encoder.find_in_file(huge)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((photos / "obama.jpg").read_bytes()[:3000])
    with pytest.raises(MalformedFileError):
        encoder.find_in_file(cut)
    text = tmp_path / "notes.txt"
    text.write_text("no face here")
    with pytest.raises(UnsupportedFormatError, match="not an image or a video"):
        encoder.find_in_file(text)
    with pytest.raises(LimitExceededError, match="not searched"):  # a caller's own picture: 60 MP in 1 bit
        encoder.find(Image.new("1", (10_000, 6_000)))
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(bytes(range(256)) * 64)
    with pytest.raises((UnsupportedFormatError, MalformedFileError)):
        encoder.find_in_file(noise)
