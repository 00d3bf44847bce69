"""Likeness matching: how well faces (and voices) are told apart, what edits survive, what it costs.

**Faces** (``--face``), on the faces available offline: the ``face_recognition`` 1.3.0 sdist's photos of
two people (fetched by ``tests/corpus/fetch.py``: three distinct photos of Obama plus two crops of one of
them, one of Biden), scikit-image's astronaut (Eileen Collins) and Pillow's test portrait of Grace Hopper
(128 x 128). Four identities are far too few for a real false-accept rate: the genuine pairs are made
more numerous by **augmenting** each photo (random crops, mirror, small rotations, brightness), which
measures the encoder's stability under those changes, not its accuracy across years, poses and lighting
of real photos (dlib reports 99.38 % on LFW at 0.6 for that). The impostor pairs are every pair of
variants of different people. The tables:

1. genuine / impostor distance distributions and false accept / false reject at several thresholds;
2. robustness to the edits a deepfake pipeline makes (crop, JPEG q30/q10, resize 0.5/0.25, hue, saturation,
   grey, partial occlusion): found or not, distance to the unedited face, still matched at the threshold;
3. false detections on scikit-image's face-free pictures;
4. CPU per stage (detect at several picture sizes and upsampling, landmarks, encode) and peak memory.

**Voices** (``--voice``), on the real speech available offline: the pocketsphinx 5.1.1 sdist's test data
(fetched by ``tests/corpus/fetch.py``: a LibriVox reader, 5 clips; the "cards" speaker, 4 clips; six single
clips of other speakers, impostors for the two known speakers only), then six espeak-ng voices (a weak
proxy: one synthesiser). The tables:

1. CPU per clip of :meth:`VoiceEncoder.find` (and the mel front end's share), traced numpy memory, the
   120 s cap, the weights load;
2. same-speaker / different-speaker cosine distances, equal-error rate, false accept / reject at the
   threshold;
3. pitch shift (sox ``pitch`` +-1/+-2/+-4 semitones, tempo kept): each known speaker's clip shifted against
   the speaker enrolled from their other clips: how far an imitation in another register lands.

Usage: ``python bench/likeness.py [--face] [--voice] [--variants 12] [--seed 1]`` (no switch: all sections).
CPU times are ``time.process_time`` (the machine is shared); memory is ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus" / ".cache" / "files"
PHOTOS = CORPUS / "face_recognition-1.3.0" / "tests" / "test_images"
HOPPER = CORPUS / "pillow-13.0.0" / "Tests" / "images" / "hopper.png"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _face_photos() -> dict[str, list[tuple[str, Image.Image]]]:
    """Identity -> (name, picture) of every face photo available offline."""
    from skimage import data

    if not PHOTOS.is_dir():
        sys.exit("the face photos are not downloaded: run `python tests/corpus/fetch.py`")
    people: dict[str, list[tuple[str, Image.Image]]] = {
        "obama": [
            (n, Image.open(PHOTOS / n).convert("RGB"))
            for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg")
        ],
        "biden": [("biden.jpg", Image.open(PHOTOS / "biden.jpg").convert("RGB"))],
        "collins": [("skimage astronaut", Image.fromarray(data.astronaut()))],
    }
    if HOPPER.is_file():
        people["hopper"] = [("pillow hopper.png", Image.open(HOPPER).convert("RGB"))]
    return people


def _augment(image: Image.Image, box: tuple[float, ...], rng: random.Random) -> Image.Image:
    """A random variant of ``image``: a crop keeping the face, maybe mirrored, rotated up to 10 degrees,
    brightness 0.7-1.3."""
    left, top, right, bottom = box
    side = right - left
    margin = side * rng.uniform(0.4, 1.2)
    crop = (
        max(0, left - margin * rng.uniform(0.5, 1.5)),
        max(0, top - margin * rng.uniform(0.5, 1.5)),
        min(image.width, right + margin * rng.uniform(0.5, 1.5)),
        min(image.height, bottom + margin * rng.uniform(0.5, 1.5)),
    )
    out = image.crop(tuple(round(v) for v in crop))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = out.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    return ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.3))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return Image.open(out).convert("RGB")


def _hue(image: Image.Image, shift: int) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def _occlude(image: Image.Image, box: tuple[float, ...], part: str) -> Image.Image:
    """A grey block over part of the face box: ``eyes`` (a band), ``mouth`` (lower half, a mask),
    ``side`` (left half)."""
    left, top, right, bottom = box
    height, width = bottom - top, right - left
    area = {
        "eyes": (left, top + 0.2 * height, right, top + 0.5 * height),
        "mouth": (left, top + 0.55 * height, right, bottom + 0.1 * height),
        "side": (left, top, left + 0.5 * width, bottom),
    }[part]
    out = image.copy()
    ImageDraw.Draw(out).rectangle(area, fill=(110, 110, 110))
    return out


#: How an edit moves the face box: subtract (dx, dy), then multiply by the scale.
_Edit = tuple[Callable[[Image.Image], Image.Image], tuple[float, float, float]]


def _edits(box: tuple[float, ...]) -> dict[str, _Edit]:
    left, top, right, bottom = box
    pad = (right - left) * 0.25
    x0, y0 = max(0, round(left - pad)), max(0, round(top - pad))
    same = (0.0, 0.0, 1.0)
    return {
        "crop to face +25 %": (lambda im: im.crop((x0, y0, round(right + pad), round(bottom + pad))), (x0, y0, 1.0)),
        "JPEG q30": (lambda im: _jpeg(im, 30), same),
        "JPEG q10": (lambda im: _jpeg(im, 10), same),
        "resize 0.5": (lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), (0, 0, 0.5)),
        "resize 0.25": (
            lambda im: im.resize((im.width // 4, im.height // 4), Image.Resampling.LANCZOS),
            (0, 0, 0.25),
        ),
        "hue +90 deg": (lambda im: _hue(im, 64), same),
        "saturation x2": (lambda im: ImageEnhance.Color(im).enhance(2.0), same),
        "grey": (lambda im: im.convert("L").convert("RGB"), same),
        "occlude eyes band": (lambda im: _occlude(im, box, "eyes"), same),
        "occlude mouth (mask)": (lambda im: _occlude(im, box, "mouth"), same),
        "occlude left half": (lambda im: _occlude(im, box, "side"), same),
    }


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def face_accuracy(variants: int, seed: int) -> float:
    """Table 1 and 2; returns the threshold in force."""
    from aigclabel.likeness.face import FaceEncoder

    encoder = FaceEncoder()
    rng = random.Random(seed)
    people = _face_photos()
    embeddings: dict[str, list[np.ndarray]] = {}
    originals: list[tuple[str, str, Image.Image, tuple[float, ...], np.ndarray]] = []
    missed = 0
    for person, photos in people.items():
        for name, image in photos:
            found = encoder.find(image)
            if not found:
                print(f"  no face found in {name}")
                continue
            best = found[0]
            originals.append((person, name, image, best.where, best.vector))
            embeddings.setdefault(person, []).append(best.vector)
            for _ in range(variants):
                got = encoder.find(_augment(image, best.where, rng))
                if got:
                    embeddings[person].append(got[0].vector)
                else:
                    missed += 1
    genuine = [
        encoder.distance(a, b)
        for vectors in embeddings.values()
        for i, a in enumerate(vectors)
        for b in vectors[i + 1 :]
    ]
    names = list(embeddings)
    pairs = [
        (encoder.distance(a, b), p, q)
        for i, p in enumerate(names)
        for q in names[i + 1 :]
        for a in embeddings[p]
        for b in embeddings[q]
    ]
    impostor = [d for d, _, _ in pairs]
    counts = ", ".join(f"{p} {len(v)}" for p, v in embeddings.items())
    print(f"\nFace verification: {sum(len(v) for v in embeddings.values())} embeddings ({counts});")
    augmented = "augmented variants per photo (crop, mirror, rotation <= 10 deg, brightness)"
    print(f"  {variants} {augmented}, {missed} not detected")
    print(f"  {len(genuine)} genuine pairs, {len(impostor)} impostor pairs\n")
    print("| pairs | n | min | 5 % | median | 95 % | max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, values in (("genuine (same person)", genuine), ("impostor (different people)", impostor)):
        cells = " | ".join(f"{_pct(values, q):.3f}" for q in (0, 5, 50, 95, 100))
        print(f"| {label} | {len(values)} | {cells} |")
    print("\n| threshold | false accept | false reject |")
    print("| ---: | ---: | ---: |")
    for threshold in (0.45, 0.5, 0.55, 0.6, 0.65):
        far = sum(d <= threshold for d in impostor) / len(impostor)
        frr = sum(d > threshold for d in genuine) / len(genuine)
        mark = " (chosen)" if threshold == encoder.threshold else ""
        print(f"| {threshold:.2f}{mark} | {far:.2%} | {frr:.2%} |")
    worst = max(genuine)
    closest, p, q = min(pairs)
    print(f"\n  margin: largest genuine {worst:.3f}, smallest impostor {closest:.3f} ({p} / {q})")
    face_robustness(encoder, originals, embeddings)
    return encoder.threshold


def face_robustness(
    encoder: object,
    originals: list[tuple[str, str, Image.Image, tuple[float, ...], np.ndarray]],
    embeddings: dict[str, list[np.ndarray]],
) -> None:
    """Table 2: each edit on each distinct photo (the two sdist crops of obama.jpg left out)."""
    from aigclabel.likeness.face import FaceEncoder

    assert isinstance(encoder, FaceEncoder)
    bases = [o for o in originals if "partial" not in o[1]]
    print(f"\nRobustness to edits ({len(bases)} photos; 'found': a detection on the face; distance to the unedited")
    print(f"  face; 'matched': within {encoder.threshold} of it; 'nearest other': least distance to another person)\n")
    print("| edit | found | matched | median distance | max distance | nearest other |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows: dict[str, list[tuple[bool, float, float, str]]] = {}
    for person, _name, image, box, vector in bases:
        others = [(p, v) for p, vs in embeddings.items() if p != person for v in vs]
        for edit, (apply, (dx, dy, scale)) in _edits(box).items():
            expected = ((box[0] - dx) * scale, (box[1] - dy) * scale, (box[2] - dx) * scale, (box[3] - dy) * scale)
            # only a detection on the face counts (the astronaut picture has a weak false one elsewhere)
            found = [f for f in encoder.find(apply(image)) if _overlap(f.where, expected) >= 0.3]
            if not found:
                rows.setdefault(edit, []).append((False, float("nan"), float("nan"), ""))
                continue
            best = max(found, key=lambda f: _overlap(f.where, expected))
            distance = encoder.distance(best.vector, vector)
            other = min((encoder.distance(best.vector, v), p) for p, v in others)
            rows.setdefault(edit, []).append((True, distance, other[0], f"{person}~{other[1]}"))
    for edit, results in rows.items():
        hits = [r for r in results if r[0]]
        matched = sum(r[1] <= encoder.threshold for r in hits)
        distances = [r[1] for r in hits]
        med = f"{statistics.median(distances):.3f}" if distances else "-"
        top = f"{max(distances):.3f}" if distances else "-"
        nearest = min(hits, key=lambda r: r[2]) if hits else None
        other = f"{nearest[2]:.3f} ({nearest[3]})" if nearest else "-"
        print(f"| {edit} | {len(hits)}/{len(results)} | {matched}/{len(results)} | {med} | {top} | {other} |")


def face_false_detections() -> None:
    """Table 3: scikit-image's pictures without a face."""
    from skimage import data

    from aigclabel.likeness.face import FaceEncoder

    encoder = FaceEncoder()
    names = ["camera", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel"]
    names += ["retina", "page", "text", "brick", "grass", "gravel", "horse", "moon", "logo", "clock", "cat"]
    false = 0
    for name in names:
        picture = Image.fromarray(getattr(data, name)())
        false += len(encoder.find(picture))
    print(f"\nFalse detections: {false} faces in {len(names)} face-free scikit-image pictures (upsample 1)")


def face_cost() -> None:
    """Table 4: CPU per stage and peak memory."""
    from aigclabel.likeness import face

    before = _rss_mb()
    start = time.process_time()
    models = face._models()
    load = time.process_time() - start
    loaded = _rss_mb()
    photo = Image.open(PHOTOS / "obama.jpg").convert("RGB")
    print(f"\nCost (CPU seconds, process_time; load average {os.getloadavg()[0]:.1f}):\n")
    print(f"  model load {load:.2f} s, peak RSS {before:.0f} -> {loaded:.0f} MB\n")
    print("| stage | picture | upsample | CPU per call |")
    print("| --- | --- | ---: | ---: |")
    for side in (640, 1280, 2560):
        picture = np.asarray(photo.resize((side, side * photo.height // photo.width)), dtype=np.uint8)
        mp = picture.shape[0] * picture.shape[1] / 1e6
        for upsample in (0, 1):
            if mp * 4**upsample > face.DETECT_PIXELS / 1e6 * 1.5:
                continue  # FaceEncoder would detect on a smaller picture
            runs = 3
            start = time.process_time()
            for _ in range(runs):
                models.detector.run(picture, upsample, 0.0)
            each = (time.process_time() - start) / runs
            print(f"| detect (HOG) | {side} px wide, {mp:.1f} MP | {upsample} | {each:.3f} s |")
    rgb = np.asarray(photo, dtype=np.uint8)
    rects, _, _ = models.detector.run(rgb, 0, 0.0)
    runs = 20
    start = time.process_time()
    for _ in range(runs):
        shape = models.landmarks(rgb, rects[0])
    print(f"| landmarks (5 points) | one face | - | {(time.process_time() - start) / runs * 1000:.1f} ms |")
    runs = 10
    for jitters in (0, 10):
        start = time.process_time()
        for _ in range(runs if jitters == 0 else 2):
            models.encoder.compute_face_descriptor(rgb, shape, jitters)
        each = (time.process_time() - start) / (runs if jitters == 0 else 2)
        print(f"| encode (ResNet, {jitters} jitters) | one face | - | {each * 1000:.0f} ms |")
    encoder = face.FaceEncoder()
    start = time.process_time()
    for _ in range(3):
        encoder.find_in_file(PHOTOS / "obama3.jpg")
    print(
        f"| find_in_file, whole pipeline | obama3.jpg, 1434x2333 JPEG | 1 | {(time.process_time() - start) / 3:.3f} s |"
    )
    print(f"\n  peak RSS after all of the above: {_rss_mb():.0f} MB")


def face_section(args: argparse.Namespace) -> None:
    """Everything about faces."""
    print("## Faces (dlib HOG + 5-point landmarks + ResNet 128-d)")
    face_cost()  # first: it measures the model load
    face_accuracy(args.variants, args.seed)
    face_false_detections()


# ---------------------------------------------------------------------------------------------- voices
def _voice_clips() -> dict[str, list[tuple[str, np.ndarray, int]]]:
    """Speaker -> (name, samples, rate): the pocketsphinx sdist's real speech (``tests/_voice.py``)."""
    from tests._voice import SINGLE_CLIPS, SPEAKERS, VOICES, read_speech

    if not VOICES.is_dir():
        sys.exit("the speech corpus is not downloaded: run `python tests/corpus/fetch.py`")
    clips = {name: [(Path(p).stem, *read_speech(VOICES / p)) for p in paths] for name, paths in SPEAKERS.items()}
    for path in SINGLE_CLIPS:
        clips[f"single:{Path(path).stem}"] = [(Path(path).stem, *read_speech(VOICES / path))]
    return clips


def _espeak_clips(folder: Path) -> dict[str, list[tuple[str, np.ndarray, int]]]:
    """espeak-ng voice -> its three sentences (a weak proxy for people: one synthesiser)."""
    from tests._voice import ESPEAK_SPEAKERS, SENTENCES, espeak, read_speech

    return {
        voice: [(f"{voice}-{i}", *read_speech(espeak(folder, voice, i))) for i in range(len(SENTENCES))]
        for voice in ESPEAK_SPEAKERS
    }


def _eer(genuine: list[float], impostor: list[float]) -> tuple[float, float]:
    """Equal-error rate and the distance threshold where false accepts and false rejects cross."""
    best = (2.0, 0.0)
    for t in sorted(set(genuine) | set(impostor)):
        far = sum(d <= t for d in impostor) / len(impostor)
        frr = sum(d > t for d in genuine) / len(genuine)
        if abs(far - frr) < best[0]:
            best, rate = (abs(far - frr), t), (far + frr) / 2
    return rate, best[1]


def voice_accuracy(title: str, embedded: dict[str, list[np.ndarray]], threshold: float) -> None:
    """Genuine pairs within a known speaker, impostor pairs across speakers (single clips only vs known)."""
    from itertools import combinations

    from aigclabel.likeness.voice import VoiceEncoder

    distance = VoiceEncoder().distance
    genuine = [distance(a, b) for vs in embedded.values() for a, b in combinations(vs, 2)]
    impostor = [
        distance(a, b)
        for (n1, v1), (n2, v2) in combinations(embedded.items(), 2)
        if not (n1.startswith("single:") and n2.startswith("single:"))
        for a in v1
        for b in v2
    ]
    eer, at = _eer(genuine, impostor)
    far = sum(d <= threshold for d in impostor) / len(impostor)
    frr = sum(d > threshold for d in genuine) / len(genuine)
    print(f"\n### {title}")
    print(f"{len(genuine)} genuine pairs, {len(impostor)} impostor pairs (cosine distance)")
    print("| pairs | min | median | max |\n| --- | --- | --- | --- |")
    for name, values in (("genuine", genuine), ("impostor", impostor)):
        print(f"| {name} | {min(values):.3f} | {statistics.median(values):.3f} | {max(values):.3f} |")
    print(
        f"EER {eer:.1%} at distance {at:.3f}; at the threshold {threshold}: "
        f"false accept {far:.1%}, false reject {frr:.1%}"
    )


def _pitch(samples: np.ndarray, rate: int, cents: int, folder: Path) -> np.ndarray:
    """``samples`` shifted by ``cents`` with sox's ``pitch`` (tempo kept)."""
    import wave

    from tests._voice import read_speech

    src, dst = folder / "in.wav", folder / f"out{cents}.wav"
    with wave.open(str(src), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(np.clip(np.rint(samples * 32767), -32768, 32767).astype("<i2").tobytes())
    subprocess.run(["sox", "-V1", str(src), str(dst), "pitch", str(cents)], check=True)
    return read_speech(dst)[0]


def voice_pitch(clips: dict[str, list[tuple[str, np.ndarray, int]]], folder: Path) -> None:
    """Each clip of a known speaker, pitch-shifted, against that speaker enrolled from their other clips."""
    from aigclabel.likeness.voice import THRESHOLD, VoiceEncoder

    encoder = VoiceEncoder()
    shifts = (-400, -200, -100, 0, 100, 200, 400)
    rows: dict[int, list[float]] = {s: [] for s in shifts}
    for speaker, items in clips.items():
        if speaker.startswith("single:"):
            continue
        for i, (_, samples, rate) in enumerate(items):
            others = [encoder.embed(s, r) for j, (_, s, r) in enumerate(items) if j != i]
            enrolled = np.mean([v for v in others if v is not None], axis=0)
            for cents in shifts:
                probe = encoder.embed(_pitch(samples, rate, cents, folder) if cents else samples, rate)
                if probe is not None:
                    rows[cents].append(encoder.distance(enrolled, probe))
    print("\n### Pitch shift (sox `pitch`, tempo kept) against the speaker enrolled from their other clips")
    print(f"| shift (semitones) | clips | mean distance | max distance | still matched at {THRESHOLD} |")
    print("| --- | --- | --- | --- | --- |")
    for cents, values in rows.items():
        kept = sum(d <= THRESHOLD for d in values) / len(values)
        print(
            f"| {cents / 100:+.0f} | {len(values)} | {statistics.mean(values):.3f} | {max(values):.3f} | {kept:.0%} |"
        )


def voice_cost(clips: dict[str, list[tuple[str, np.ndarray, int]]]) -> None:
    """CPU per clip (find: resample, VAD, mel, LSTM) against decoding the same clip, and peak memory."""
    import tracemalloc

    from aigclabel.likeness import _ge2e
    from aigclabel.likeness.voice import VoiceEncoder

    started = time.process_time()
    encoder = VoiceEncoder()
    _ = encoder.weights  # loaded on first use
    load = time.process_time() - started
    print("\n### Cost (CPU seconds, `time.process_time`)")
    print(f"weights load (restricted unpickler, 17 MB): {load:.3f} s; load average {os.getloadavg()[0]:.1f}")
    print("| clip | seconds | find CPU | per audio second | mel share | peak traced MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for _, items in clips.items():
        name, samples, rate = max(items, key=lambda item: item[1].size / item[2])
        tracemalloc.start()
        t0 = time.process_time()
        encoder.find(samples, rate)
        spent = time.process_time() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        t0 = time.process_time()
        _ge2e.mel_frames(_ge2e.resample(samples, rate))
        mel = time.process_time() - t0
        seconds = samples.size / rate
        print(f"| {name} | {seconds:.1f} | {spent:.3f} | {spent / seconds:.3f} | {mel / spent:.0%} | {peak:.1f} |")
    long = np.tile(clips["librivox"][0][1], 20)[: 120 * 16000]
    tracemalloc.start()
    t0 = time.process_time()
    found = encoder.find(long, 16000)
    spent = time.process_time() - t0
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    print(f"| 120 s of speech (the cap; {len(found)} spans) | 120.0 | {spent:.3f} | {spent / 120:.3f} | | {peak:.1f} |")
    print(f"\npeak RSS of the process: {_rss_mb():.0f} MB")


def voice_section(args: argparse.Namespace) -> None:
    """Everything about voices."""
    import tempfile

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests._voice: the speech corpus and espeak-ng speakers
    from aigclabel.likeness.voice import MODEL, THRESHOLD, VoiceEncoder

    encoder = VoiceEncoder()
    print(f"## Voices ({MODEL}, threshold {THRESHOLD})")
    clips = _voice_clips()
    voice_cost(clips)  # first: it measures the weights load
    embedded = {
        k: [v for v in (encoder.embed(s, r) for _, s, r in items) if v is not None] for k, items in clips.items()
    }
    voice_accuracy("Real speech (pocketsphinx sdist: 2 known speakers, 6 single clips)", embedded, THRESHOLD)
    with tempfile.TemporaryDirectory() as scratch:
        synthetic = _espeak_clips(Path(scratch))
        embedded = {k: [encoder.embed(s, r) for _, s, r in items] for k, items in synthetic.items()}
        voice_accuracy("espeak-ng voices (a weak proxy: one synthesiser)", embedded, THRESHOLD)  # type: ignore[arg-type]
        voice_pitch(clips, Path(scratch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", action="store_true", help="face matching only")
    parser.add_argument("--voice", action="store_true", help="voice matching only")
    parser.add_argument("--variants", type=int, default=12, help="augmented variants per face photo")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    everything = not (args.face or args.voice)
    if args.face or everything:
        face_section(args)
    if args.voice or everything:
        voice_section(args)


if __name__ == "__main__":
    main()
