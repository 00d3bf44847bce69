"""Platform verification throughput (Measures Art. 6): ``classify`` vs exiftool reading the same files.

A platform runs ``aigclabel verify`` on every upload, so it must keep up with the upload pipeline.
The script makes ``--count`` JPEGs of about 1 MB (photo-like: smooth gradients, texture and noise)
in a temporary directory, half of them carrying a signed implicit label (demo key, ``Label=1``) and
half unlabelled, and times, on the same files in the same run:

* **classify (fast path)**: :func:`aigclabel.verify.classify` as the CLI/service call it by default;
  a valid label confirms the file and the trace detectors are skipped;
* **classify --thorough**: every applicable trace detector runs on every file;
* **exiftool**: one ``-stay_open True -@ -`` process (PyExifTool, start-up not counted) reading every
  tag of each file as JSON (``-j -G1``), the floor for "look at the metadata of an upload".

It prints files/s, the ratio to exiftool, and the time spent per detector (with the number of calls).

**Unlabelled uploads per core** (issue 13 target: 30 files/s per core for a 2 MP JPEG): the unlabelled
half is classified again and timed in CPU time (``time.process_time``: fair on a loaded machine), beside
the floor measured on the same files in the same run: a plain Pillow decode (what any pixel check must
pay) and exiftool's own CPU time reading the metadata (from ``/proc``). The detectors' CPU is split out,
with the shared decode (:class:`aigclabel._media.MediaSample`) counted apart from the detectors using it.
The same is then printed for scikit-image's sample photos at the same size: the generated uploads are
noisy, and the OCR pre-filter skips the label search on far fewer real photos.

**Third-party labels** (``--thirdparty``, on by default): the 64-file held-out set of
``tests/_thirdparty.py`` (labels drawn by Pillow, ffmpeg, numpy tones and espeak-ng in other
producers' styles, half compliant) is checked with ``check`` (accuracy: right verdict *and* the right
failing rule) and classified with ``classify``; per detector it prints ms per call and its accuracy
(finds a trace on labelled files, none on unlabelled ones).

**OCR pre-filter** (``--prefilter-count 300``, on by default; ``--prefilter-only``): the image-label
detector with and without its stroke pre-filter (:func:`aigclabel.explicit.ocr.may_hold_text`) on the same
files: labels in styles aigclabel did not choose (``tests/_label_styles.py``; ``--prefilter-seed`` draws
another set) and its own plates, whose findings must be identical, then unlabelled photos and text-heavy
pictures: false traces with and without it, and the detector's CPU per photo. ``check`` (whose image and
video-frame rules use the same gate) must give identical reports with and without it on every label the
detector's full search finds, and the video label detector identical findings on H.264 clips of the 12
hardest of them.

It reports, it does not assert: timings vary with the machine and its load (printed by ``uptime``).

Usage: ``python bench/verify.py [--count 200] [--size 1600x1200] [--skip-thorough] [--no-thirdparty]
[--thirdparty-only] [--prefilter-count N] [--prefilter-seed S] [--no-prefilter] [--prefilter-only]
[--dir DIR]`` (run from the repository root with ``PYTHONPATH=.``)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, write_label
from aigclabel._media import MediaSample
from aigclabel.explicit.detector import IMAGE_FORMATS
from aigclabel.signing import demo_registry, demo_signing_key, payload_digest, sign
from aigclabel.verify import (
    Classification,
    Evidence,
    TraceDetector,
    classify,
    detector_shares_media,
    registered_detectors,
    run_detector,
)

#: The name the shared decode's CPU time is kept under (:class:`Timed`).
SHARED_DECODE = "(shared decode)"


class Timed:
    """Wraps a detector, keeping its name, formats and cost, and adds up the time spent in it (wall
    clock in ``totals``; CPU time in ``cpu`` when given, the shared image decode apart)."""

    def __init__(
        self,
        inner: TraceDetector,
        totals: dict[str, float],
        calls: dict[str, int],
        cpu: dict[str, float] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.formats = getattr(inner, "formats", None)
        self.cost = getattr(inner, "cost", None) or 50.0
        self.shares_media = detector_shares_media(inner)
        self.totals, self.calls, self.cpu = totals, calls, cpu

    def detect(self, path: Path, media: MediaSample | None = None) -> list[Evidence]:
        if self.cpu is not None and self.shares_media and media is not None and media.container in IMAGE_FORMATS:
            begin = time.process_time()
            with contextlib.suppress(Exception):  # the detector meets the same error and reports it
                media.analysis_image()  # decoded once per upload: the first detector asking pays
            self.cpu[SHARED_DECODE] += time.process_time() - begin
        start, begin = time.perf_counter(), time.process_time()
        try:
            return run_detector(self.inner, path, media)
        finally:
            self.totals[self.name] += time.perf_counter() - start
            self.calls[self.name] += 1
            if self.cpu is not None:
                self.cpu[self.name] += time.process_time() - begin


def make_files(directory: Path, count: int, size: tuple[int, int]) -> tuple[list[Path], list[Path]]:
    """``count`` photo-like JPEGs; the first half labelled and signed with the demo key."""
    rng = np.random.default_rng(45438)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    key = demo_signing_key()
    labelled: list[Path] = []
    plain: list[Path] = []
    for i in range(count):
        phase = rng.uniform(0, 6.28, 3)
        base = np.stack(
            [
                128 + 90 * np.sin(xx / (80 + 7 * c) + yy / (130 + 5 * c) + phase[c]) * np.cos(yy / 210 + c)
                for c in range(3)
            ],
            axis=-1,
        )
        pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
        path = directory / f"upload-{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        if i < count // 2:
            label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, f"bench-{i}")
            write_label(path, sign(label, payload_digest(path), key))
            labelled.append(path)
        else:
            plain.append(path)
    return labelled, plain


def run_classify(
    files: list[Path], detectors: Mapping[str, TraceDetector], thorough: bool
) -> tuple[float, dict[Classification, int]]:
    registry = demo_registry()
    seen: dict[Classification, int] = defaultdict(int)
    start = time.perf_counter()
    for path in files:
        seen[classify(path, None, registry, detectors, thorough=thorough).classification] += 1
    return time.perf_counter() - start, dict(seen)


def run_exiftool(files: list[Path]) -> tuple[float, float | None]:
    """Wall-clock seconds for exiftool to read every tag of ``files``, and its own CPU seconds (``None``
    where ``/proc`` does not tell)."""
    import exiftool

    with exiftool.ExifTool() as tool:
        tool.execute("-ver")  # start-up and first-command latency are not counted
        pid = tool._process.pid if tool._process is not None else None
        cpu = _process_cpu(pid)
        start = time.perf_counter()
        for path in files:
            tool.execute("-j", "-G1", str(path))
        elapsed = time.perf_counter() - start
        after = _process_cpu(pid)
        return elapsed, None if cpu is None or after is None else after - cpu


def _process_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``), ``None`` elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pillow_decode_cpu(files: list[Path]) -> float:
    """CPU seconds to decode ``files`` to RGB with Pillow (no analysis): the floor of any pixel check."""
    begin = time.process_time()
    for path in files:
        with Image.open(path) as image:
            image.convert("RGB").load()
    return time.process_time() - begin


def make_photo_files(directory: Path, size: tuple[int, int]) -> list[Path]:
    """scikit-image's sample photos, resized to ``size`` and saved at JPEG q90: real pictures, where the
    generated uploads' noise lets the OCR pre-filter skip the label search more often than photos do."""
    from skimage import data

    folder = directory / "photos"
    folder.mkdir()
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "camera", "brick"):
        pixels = np.asarray(getattr(data, name)())
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        path = folder / f"{name}.jpg"
        Image.fromarray(pixels[..., :3].astype(np.uint8)).resize(size, Image.Resampling.LANCZOS).save(path, quality=90)
        out.append(path)
    return out


def run_unlabelled_per_core(plain: list[Path], exif_cpu: float | None, exif_files: int, what: str = "JPEGs") -> None:
    """Unlabelled uploads classified in CPU time per file, against Pillow's decode and exiftool's CPU."""
    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    cpu: dict[str, float] = defaultdict(float)
    detectors = {name: Timed(d, totals, calls, cpu) for name, d in registered_detectors().items()}
    run_classify(plain[:2], detectors, False)  # models loaded and caches warm before timing
    cpu.clear()
    registry = demo_registry()
    begin = time.process_time()
    for path in plain:
        classify(path, None, registry, detectors)
    spent = time.process_time() - begin
    decode = pillow_decode_cpu(plain)
    with Image.open(plain[0]) as first:
        megapixels = first.width * first.height / 1e6
    per_file = spent / len(plain) * 1e3
    print(
        f"\nunlabelled {megapixels:.1f} MP {what}, CPU time per file ({len(plain)} files, classify as verify runs it):"
    )
    print(f"    classify                : {per_file:6.1f} ms = {1e3 / per_file:5.1f} files/s per core (target 30)")
    floor = decode / len(plain) * 1e3
    print(
        f"    Pillow decode to RGB    : {floor:6.1f} ms = {1e3 / floor:5.1f} files/s per core "
        f"(the floor of a pixel check; classify is {per_file / floor:.1f}x it)"
    )
    if exif_cpu is not None:
        exif = exif_cpu / exif_files * 1e3
        rate = 1e3 / max(exif, 1e-6)
        print(f"    exiftool (its own CPU)  : {exif:6.1f} ms = {rate:5.1f} files/s per core (metadata only)")
    print("    where classify's CPU goes (ms per file):")
    for name in sorted(cpu, key=cpu.__getitem__, reverse=True):
        print(f"        {name:24s}: {cpu[name] / len(plain) * 1e3:6.1f}")
    rest = spent - sum(cpu.values())
    print(f"        {'(label read, plan, rest)':24s}: {rest / len(plain) * 1e3:6.1f}")


def run_thirdparty(work: Path) -> None:
    """check and classify the held-out set of third-party-style labels; accuracy and cost per detector."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from aigclabel.check import check_file
    from aigclabel.signing import KeyRegistry
    from tests._thirdparty import cases, judge

    folder = work / "thirdparty"
    folder.mkdir()
    every = cases()
    start = time.perf_counter()
    made = {case.name: case.make(folder) for case in every}
    print(f"\nthird-party set: {len(every)} files made in {time.perf_counter() - start:.1f} s")
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    wrong: list[str] = []
    check_s = 0.0
    for case in every:
        begin = time.perf_counter()
        report = check_file(made[case.name], implicit=False)
        check_s += time.perf_counter() - begin
        good, why = judge(case, [(r.rule, r.status) for r in report.rules])
        per_kind[case.kind][0] += good
        per_kind[case.kind][1] += 1
        if not good:
            wrong.append(f"    {case.name}: {why}")
    right = sum(v[0] for v in per_kind.values())
    print(
        f"check: {right}/{len(every)} = {right / len(every):.1%} right verdict and reason "
        f"({check_s / len(every) * 1e3:.0f} ms/file)"
    )
    for kind, (ok, n) in sorted(per_kind.items()):
        print(f"    {kind:6s}: {ok}/{n}")
    print("\n".join(wrong))

    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    detectors = {name: Timed(d, totals, calls) for name, d in registered_detectors().items()}
    score: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # right, applicable
    found_by: dict[str, int] = defaultdict(int)
    verdicts = 0
    for case in every:
        verdict = classify(made[case.name], None, KeyRegistry(), detectors)
        expected = Classification.SUSPECTED if case.labelled and case.reason != "review" else Classification.NONE
        verdicts += verdict.classification is expected
        for name in verdict.detectors:
            found = any(e.source == name and e.role == "trace" for e in verdict.evidence)
            found_by[name] += found
            score[name][0] += found == (expected is Classification.SUSPECTED)
            score[name][1] += 1
    print(f"verify: {verdicts}/{len(every)} classified as Art. 6 says (labelled: suspected; none/speech: none)")
    for name in sorted(totals, key=totals.__getitem__, reverse=True):
        ok, n = score[name]
        # Only explicit-label detectors are meant to find these labels; the others must simply not misfire.
        judged = f"accuracy {ok}/{n}" if name.startswith("explicit-") else f"false traces {found_by[name]}/{n}"
        print(f"    {name:24s}: {totals[name] / calls[name] * 1e3:8.1f} ms/call over {calls[name]:2d} files, {judged}")


def run_prefilter(work: Path, count: int, seed: int = 45438, smooth: bool = False, video_count: int = 12) -> None:
    """The OCR pre-filter's recall and savings: the image-label detector with and without it, same files.

    Labelled: ``count`` labels in styles aigclabel did not choose (:mod:`tests._label_styles`: CJK and
    Latin fonts, OpenCV's Hershey font, 3-12 % of the shortest side, low contrast, plates, glass,
    outlines, shadows, tilts, JPEG q50-q95, downscaled) and aigclabel's own plates. The pre-filter must
    pass every one the full search finds. Unlabelled: photos and text-heavy pictures (pages, signs,
    screenshots); their false traces with and without it, and the detector's CPU per file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from aigclabel.explicit.detector import ExplicitImageLabelDetector
    from aigclabel.explicit.ocr import MIN_STROKE_DENSITY, gate_copy, stroke_density
    from tests._label_styles import plain_pictures, styled_labels

    folder = work / "prefilter"
    folder.mkdir()
    gated, full = ExplicitImageLabelDetector(), ExplicitImageLabelDetector(prefilter=False)

    def traced(detector: ExplicitImageLabelDetector, path: Path) -> tuple[bool, float, list[Evidence]]:
        """Whether ``detector`` finds a trace on ``path``, its CPU time (the shared decode apart) and findings."""
        sample = MediaSample(path, "jpeg")
        sample.analysis_image()
        begin = time.process_time()
        evidence = detector.detect(path, sample)
        return any(e.role == "trace" for e in evidence), time.process_time() - begin, evidence

    def density(path: Path) -> float:
        """The stroke density the detector's pre-filter reads (:func:`aigclabel.explicit.ocr.gate_copy`)."""
        return stroke_density(gate_copy(MediaSample(path, "jpeg").analysis_pixels()))

    traced(full, next(styled_labels(1)).write(folder))  # models loaded before anything is timed
    by_style: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # drawn, found by the full search, gated
    by_ratio: dict[float, list[int]] = defaultdict(lambda: [0, 0, 0])
    lost: list[str] = []
    differ: list[str] = []
    lowest = (2.0, "")
    found_paths: list[tuple[float, Path]] = []
    for case in styled_labels(count, seed, smooth=smooth):
        path = case.write(folder)
        found, _, reference = traced(full, path)
        kept, _, evidence = traced(gated, path)
        if found and evidence != reference:
            differ.append(case.name)
        for row in (by_style[case.style], by_ratio[case.ratio]):
            row[0] += 1
            row[1] += found
            row[2] += kept
        if found and not kept:
            lost.append(case.name)
        if found:
            found_paths.append((density(path), path))
            lowest = min(lowest, (found_paths[-1][0], case.name))
    drawn, found_all, kept_all = (sum(row[i] for row in by_style.values()) for i in range(3))
    where = "smooth or noisy backgrounds" if smooth else "photos"
    print(f"\nOCR pre-filter, {drawn} labels in other styles on {where} (load {os.getloadavg()[0]:.2f}):")
    print(f"    full search finds {found_all}/{drawn}; with the pre-filter {kept_all}/{drawn}; lost: {lost or 'none'}")
    print(f"    findings differ (labels the full search finds): {differ or 'none'}")
    print(f"    lowest stroke density among the labels found: {lowest[0]:.2f} ({lowest[1]})")
    for style, (n, f, k) in sorted(by_style.items()):
        print(f"        {style:16s}: {f:3d}/{n:3d} found, {k:3d} with the pre-filter")
    for ratio, (n, f, k) in sorted(by_ratio.items()):
        print(f"        characters {ratio:5.1%}: {f:3d}/{n:3d} found, {k:3d} with the pre-filter")
    cpu = {"full": 0.0, "gated": 0.0}
    false = {"full": 0, "gated": 0}
    photos = skipped = 0
    highest = (0.0, "")
    for name, picture, text_heavy in plain_pictures():
        path = folder / f"plain-{name}.jpg"
        picture.save(path, quality=90)
        for key, detector in (("full", full), ("gated", gated)):
            found, spent, _ = traced(detector, path)
            false[key] += found
            if not text_heavy:
                cpu[key] += spent
        if not text_heavy:
            photos += 1
            value = density(path)
            skipped += value < MIN_STROKE_DENSITY
            if name.startswith("synthetic"):
                highest = max(highest, (value, name))
    print(f"    unlabelled pictures: false traces {false['full']} without the pre-filter, {false['gated']} with it")
    print(
        f"    {photos} unlabelled photos: {skipped} skipped by the pre-filter; the detector's CPU per photo "
        f"{cpu['full'] / photos * 1e3:.1f} ms without, {cpu['gated'] / photos * 1e3:.1f} ms with it "
        f"({cpu['gated'] / max(cpu['full'], 1e-9):.2f}x); highest density of the bench's synthetic uploads "
        f"{highest[0]:.2f} ({highest[1]})"
    )
    run_prefilter_check([p for _, p in found_paths], [p for _, p in sorted(found_paths)[:video_count]], folder)


def run_prefilter_check(labelled: list[Path], hardest: list[Path], folder: Path) -> None:
    """``check`` and the video label detector with and without the OCR pre-filter, on the labels the image
    detector's full search finds (``labelled``) and on H.264 clips of the ``hardest`` of them (lowest
    stroke density): their reports must be identical."""
    from aigclabel.check import check_file
    from aigclabel.explicit.detector import ExplicitVideoLabelDetector

    def report(path: Path, prefilter: bool) -> tuple[list[tuple[str, str, str]], float]:
        begin = time.process_time()
        rules = check_file(path, implicit=False, prefilter=prefilter).rules
        return [(r.rule, r.status, r.detail) for r in rules], time.process_time() - begin

    cpu = {True: 0.0, False: 0.0}
    passed = {True: 0, False: 0}
    differ: list[str] = []
    n = max(1, len(labelled))
    for path in labelled:
        reports = {}
        for prefilter in (False, True):
            reports[prefilter], spent = report(path, prefilter)
            cpu[prefilter] += spent
            passed[prefilter] += ("image-label", "pass") in [(r, s) for r, s, _ in reports[prefilter]]
        if reports[True] != reports[False]:
            differ.append(path.stem)
    print(
        f"    check on those {len(labelled)} labels: image-label passes {passed[False]} without the pre-filter, "
        f"{passed[True]} with it; reports differ on {differ or 'none'} (CPU per file {cpu[False] / n * 1e3:.0f} ms "
        f"without, {cpu[True] / n * 1e3:.0f} ms with it)"
    )
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None or not hardest:
        return
    traces = {True: 0, False: 0}
    differ = []
    for path in hardest:
        clip = path.with_suffix(".mp4")
        still = ["-loop", "1", "-i", str(path), "-t", "2.5", "-r", "10", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"]
        encode = ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)]
        subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", *still, *encode], check=True)
        found = {p: ExplicitVideoLabelDetector(prefilter=p).detect(clip) for p in (False, True)}
        for prefilter, evidence in found.items():
            traces[prefilter] += any(e.role == "trace" for e in evidence)
        if found[True] != found[False]:
            differ.append(clip.stem)
    print(
        f"    video label detector on H.264 clips of the {len(hardest)} hardest: traces {traces[False]} without the "
        f"pre-filter, {traces[True]} with it; findings differ on {differ or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", default="1600x1200", help="WIDTHxHEIGHT (1600x1200 at q90 is about 1 MB)")
    parser.add_argument("--skip-thorough", action="store_true", help="Do not time the --thorough pass.")
    parser.add_argument("--dir", type=Path, default=None, help="Where to make the files (default: a temp dir).")
    parser.add_argument("--no-thirdparty", action="store_true", help="Skip the third-party-label set.")
    parser.add_argument("--thirdparty-only", action="store_true", help="Only the third-party-label set.")
    parser.add_argument("--prefilter-count", type=int, default=300, help="Labels in the OCR pre-filter's recall set.")
    parser.add_argument("--prefilter-seed", type=int, default=45438, help="Seed of the recall set (another: held out).")
    parser.add_argument(
        "--prefilter-smooth", action="store_true", help="Recall set on backgrounds with no text-like texture."
    )
    parser.add_argument("--no-prefilter", action="store_true", help="Skip the OCR pre-filter's recall set.")
    parser.add_argument("--prefilter-only", action="store_true", help="Only the OCR pre-filter's recall set.")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="aigclabel-bench-verify-", dir=args.dir))
    try:
        if args.thirdparty_only or args.prefilter_only:
            if args.thirdparty_only:
                run_thirdparty(work)
            if args.prefilter_only:
                run_prefilter(work, args.prefilter_count, args.prefilter_seed, args.prefilter_smooth)
            return
        labelled, plain = make_files(work, args.count, (width, height))
        files = [p for pair in zip(labelled, plain, strict=False) for p in pair]  # interleaved, like uploads
        mean_mb = sum(p.stat().st_size for p in files) / len(files) / 1e6
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
        print(f"{len(files)} JPEGs {width}x{height}, mean {mean_mb:.2f} MB; {len(labelled)} labelled+signed")

        totals: dict[str, float] = defaultdict(float)
        calls: dict[str, int] = defaultdict(int)
        detectors = {name: Timed(d, totals, calls) for name, d in registered_detectors().items()}
        exif_s, exif_cpu = run_exiftool(files)
        exif_rate = len(files) / exif_s
        print(f"\nexiftool -stay_open -j -G1 : {exif_rate:8.1f} files/s")

        passes = [("classify (fast path)", False)] + ([] if args.skip_thorough else [("classify --thorough", True)])
        for title, thorough in passes:
            totals.clear()
            calls.clear()
            elapsed, seen = run_classify(files, detectors, thorough)
            rate = len(files) / elapsed
            classes = ", ".join(f"{k.value} {v}" for k, v in sorted(seen.items()))
            print(f"{title:27s}: {rate:8.1f} files/s  ({rate / exif_rate:.2f}x exiftool)  [{classes}]")
            for name in sorted(totals, key=totals.__getitem__, reverse=True):
                per = totals[name] / calls[name] * 1e3
                print(f"    {name:24s}: {per:8.1f} ms/call over {calls[name]} calls, {totals[name]:6.1f} s in all")
            for sub, group in (("labelled", labelled), ("unlabelled", plain)):
                some = group[: max(1, len(group) // 4)]
                cpu = time.process_time()
                part, _ = run_classify(some, detectors, thorough)
                per_core = len(some) / max(time.process_time() - cpu, 1e-9)  # CPU time: fair on a loaded machine
                print(
                    f"    {sub:10s} only       : {len(some) / part:8.1f} files/s, {per_core:.1f} per core of CPU time "
                    f"(on {len(some)} of them)"
                )
        run_unlabelled_per_core(plain, exif_cpu, len(files))
        photos = make_photo_files(work, (width, height)) * 3  # 24 reads of 8 photos
        run_unlabelled_per_core(photos, None, 0, "photo JPEGs (scikit-image's samples)")
        if not args.no_thirdparty:
            run_thirdparty(work)
        if not args.no_prefilter:
            run_prefilter(work, args.prefilter_count, args.prefilter_seed, args.prefilter_smooth)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
