"""`aigclabel check`: per-file, per-rule compliance with the clause, JSON and a safe HTML report."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigclabel import AIGCLabel, api
from aigclabel.check import check_file, to_html
from aigclabel.cli import app
from aigclabel.explicit import add_audio_label, add_image_label, add_video_label, label_text

from .conftest import SAMPLES, require_tool

runner = CliRunner()


def _rules(path: Path, **kw: object) -> dict[str, tuple[str, str]]:
    report = check_file(path, **kw)  # type: ignore[arg-type]
    return {r.rule: (r.status, r.clause) for r in report.rules}


def _noise_png(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_text_rules(tmp_path: Path, demo_label: AIGCLabel) -> None:
    good, bad, middle = tmp_path / "good.md", tmp_path / "bad.md", tmp_path / "middle.txt"
    body = "\n\n".join("段落" * 40 for _ in range(4))
    good.write_text(label_text(body, position="end", fmt="markdown"), encoding="utf-8")
    bad.write_text(body, encoding="utf-8")
    middle.write_text(label_text(body, position="inline"), encoding="utf-8")
    assert _rules(good, implicit=False) == {"text-label": ("pass", "GB 45438 §5.1; Measures Art. 4(1)(1)")}
    assert _rules(bad, implicit=False)["text-label"][0] == "fail"
    assert _rules(middle, implicit=False)["text-label"][0] == "warning"
    assert check_file(middle, implicit=False).compliant
    # with its implicit label (wherever the text container keeps it) the file is fully compliant
    assert check_file(good).rules[0].status == "fail"  # no implicit label yet
    api.write_label(good, demo_label)
    assert [(r.rule, r.status) for r in check_file(good).rules] == [("implicit-label", "pass"), ("text-label", "pass")]


def test_image_rules_with_ocr(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src, dst = _noise_png(tmp_path / "in.png"), tmp_path / "out.png"
    api.write_label(src, demo_label)
    add_image_label(src, dst)
    report = check_file(dst, ocr=True)
    rules = {r.rule: r for r in report.rules}
    assert rules["implicit-label"].status == "pass" and rules["implicit-label"].clause == "GB 45438 §6.1, Annex E"
    assert rules["image-label"].status == "pass"
    assert rules["label-size"].status == "pass" and rules["label-size"].measured["ratio"] >= 0.05
    assert rules["label-text"].status == "pass" and "人工智能生成" in rules["label-text"].measured["ocr"]
    assert report.compliant
    unlabelled = check_file(src)
    assert {r.rule: r.status for r in unlabelled.rules} == {"implicit-label": "pass", "image-label": "fail"}
    assert not unlabelled.compliant


def test_image_label_too_small_fails_the_size_rule(tmp_path: Path) -> None:
    src, small = _noise_png(tmp_path / "in.png"), tmp_path / "small.png"
    add_image_label(src, small, implicit="if-supported")
    # the same label pasted into the corner of a picture three times larger: glyphs now ~2 % of the side
    big = Image.new("RGB", (960, 720), (200, 200, 200))
    big.paste(Image.open(small), (960 - 320, 720 - 240))
    path = tmp_path / "big.png"
    big.save(path)
    rules = {r.rule: r for r in check_file(path, implicit=False).rules}
    assert rules["image-label"].status == "pass"
    assert rules["label-size"].status == "fail" and rules["label-size"].measured["ratio"] < 0.05


@pytest.mark.interop  # ffmpeg
def test_audio_rules(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    src = tmp_path / "in.wav"
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=300:d=3", str(src)], check=True
    )
    dst = tmp_path / "out.mp3"
    add_audio_label(src, dst, kind="cue", positions=("end",), implicit="if-supported")
    rule = check_file(dst, implicit=False).rules[0]
    assert (rule.rule, rule.status, rule.clause) == ("audio-label", "pass", "GB 45438 §5.3")
    (cue,) = rule.measured["cues"]
    assert cue["start_s"] == pytest.approx(3.25, abs=0.06)  # after the 3 s of programme and the lead-in
    assert cue["position"] == "end"
    assert check_file(src, implicit=False).rules[0].status == "fail"


@pytest.mark.interop  # ffmpeg
def test_video_rules_measure_seconds(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    src = tmp_path / "in.mp4"
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
        check=True,
    )  # fmt: skip
    dst = tmp_path / "out.mp4"
    add_video_label(src, dst, seconds=2.0, implicit="if-supported")
    rules = {r.rule: r for r in check_file(dst, implicit=False, ocr=True).rules}
    assert rules["video-label"].status == "pass" and rules["label-size"].status == "pass"
    assert rules["label-text"].status == "pass"
    assert rules["video-label-duration"].status == "pass"
    assert rules["video-label-duration"].measured["seconds"] == pytest.approx(2.0, abs=0.001)
    # cut the first 1.2 s: the label now lasts 0.8 s from frame 0
    cut = tmp_path / "cut.mp4"
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-ss", "1.2", "-i", str(dst), "-c:v", "libx264", "-crf", "18",
         str(cut)],
        check=True,
    )  # fmt: skip
    rules = {r.rule: r for r in check_file(cut, implicit=False).rules}
    assert rules["video-label-duration"].status == "fail"
    assert rules["video-label-duration"].measured["seconds"] == pytest.approx(0.8, abs=0.05)
    assert {r.rule: r.status for r in check_file(src, implicit=False).rules} == {"video-label": "fail"}


def test_bad_files_become_error_rules(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    report = check_file(junk)
    assert [r.status for r in report.rules] == ["error"] and not report.compliant
    missing = check_file(tmp_path / "nope.png")
    assert missing.rules[0].status == "error"


def test_cli_json_and_exit_codes(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src, good = _noise_png(tmp_path / "in.png"), tmp_path / "good.png"
    api.write_label(src, demo_label)
    add_image_label(src, good)
    result = runner.invoke(app, ["check", "--json", str(good)])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["compliant"] is True and entry["kind"] == "image"
    assert {r["rule"] for r in entry["rules"]} >= {"implicit-label", "image-label", "label-size", "label-text"}
    assert all(r["status"] == "pass" for r in entry["rules"])
    result = runner.invoke(app, ["check", "--json", str(good), str(src)])
    assert result.exit_code == 1
    assert [e["compliant"] for e in json.loads(result.stdout)] == [True, False]


def test_cli_mark_then_check(tmp_path: Path) -> None:
    src = tmp_path / "notes.md"
    src.write_text("# 标题\n\n正文。\n", encoding="utf-8")
    out = tmp_path / "notes-labelled.md"
    assert runner.invoke(app, ["mark", str(src), "-o", str(out), "--position", "both"]).exit_code == 0
    assert runner.invoke(app, ["check", "--explicit-only", str(out)]).exit_code == 0
    assert runner.invoke(app, ["check", "--explicit-only", str(src)]).exit_code == 1
    img, img_out = _noise_png(tmp_path / "x.png"), tmp_path / "y.png"
    result = runner.invoke(app, ["mark", str(img), "-o", str(img_out), "--lenient", "--position", "top-left"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["check", "--explicit-only", str(img_out)]).exit_code == 0
    bad = runner.invoke(app, ["mark", str(img), "-o", str(tmp_path / "z.png"), "--lenient", "--text", "AI"])
    assert bad.exit_code == 5


def test_cli_mark_refuses_options_not_of_the_files_kind(tmp_path: Path) -> None:
    """Each media kind's labeller checks --position and --audio-label against its own choices (exit 2)."""
    wav = SAMPLES / "sample.wav"
    cases = {
        "image placement": (_noise_png(tmp_path / "x.png"), ["--position", "middle"], "'middle' is not one of"),
        "audio position": (wav, ["--position", "start,top"], "'top' is not one of start, end, middle"),
        "audio label kind": (wav, ["--audio-label", "beep"], "'beep' is not one of cue, speech, both"),
        "text position": (SAMPLES / "sample.txt", ["--position", "top"], "'top' is not one of start"),
    }
    for case, (source, options, message) in cases.items():
        out = tmp_path / f"out{source.suffix}"
        result = runner.invoke(app, ["mark", str(source), "-o", str(out), "--lenient", *options])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (case, result.output)
        assert not out.exists(), case


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.srcs += [v or "" for k, v in attrs if k == "src"]


def test_html_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    hostile = tmp_path / "<img src=x onerror=alert(1)><script>.png"
    _noise_png(hostile)
    html_path = tmp_path / "report.html"
    result = runner.invoke(app, ["check", "--explicit-only", "--html", str(html_path), str(hostile)])
    assert result.exit_code == 1
    page = html_path.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;.png" in page
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert not re.search(r"(?:src|href)=\"(?:https?:|//)", page)
    assert "GB 45438 §5.2" in to_html([check_file(hostile, implicit=False)])


@pytest.mark.interop  # ffmpeg
def test_damaged_files_never_crash_the_checker_or_the_labellers(tmp_path: Path) -> None:
    from aigclabel.errors import AIGCLabelError
    from aigclabel.explicit import add_audio_label as audio_label

    ffmpeg = require_tool("ffmpeg")
    good = tmp_path / "good.m4a"
    subprocess.run(
        [
            ffmpeg,
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-metadata",
            "title=标题",
            str(good),
        ],
        check=True,
    )
    png = _noise_png(tmp_path / "good.png")
    latin1 = tmp_path / "latin1.wav"  # a tag that is not UTF-8 (PyAV raises on it unless told otherwise)
    subprocess.run(
        [ffmpeg.encode(), b"-nostdin", b"-loglevel", b"error", b"-f", b"lavfi", b"-i", b"sine=d=2",
         b"-metadata", b"title=\xa8\xff caf\xe9", str(latin1).encode()],
        check=True,
    )  # fmt: skip
    assert check_file(latin1, implicit=False).rules[0].status == "fail"  # analysed: no cue
    assert audio_label(latin1, tmp_path / "latin1-out.wav", kind="cue", implicit="if-supported").offsets == [0.0]
    rng = np.random.default_rng(3)
    for source in (good, png):
        data = source.read_bytes()
        for k in range(6):
            if k < 3:
                mutant = data[: int(rng.integers(0, len(data)))]
            else:
                buf = bytearray(data)
                for i in rng.integers(0, len(buf), 20):
                    buf[int(i)] = int(rng.integers(0, 256))
                mutant = bytes(buf)
            path = tmp_path / f"m{k}{source.suffix}"
            path.write_bytes(mutant)
            report = check_file(path)
            assert report.rules  # a verdict, never an exception
            try:
                if source.suffix == ".png":
                    add_image_label(path, tmp_path / "out.png", implicit="if-supported")
                else:
                    audio_label(path, tmp_path / "out.wav", kind="cue", implicit="if-supported")
            except AIGCLabelError:
                pass


@pytest.mark.interop  # ffmpeg
def test_long_audio_is_analysed_at_its_ends_within_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the analysis budget the start and end are searched, the middle is reported as not searched."""
    from aigclabel.explicit import audio

    require_tool("ffmpeg")
    monkeypatch.setattr(audio, "SCAN_BUDGET_SECONDS", 120.0)  # a 10-minute file then stands for a 2-hour one
    monkeypatch.setattr(audio, "SCAN_END_SECONDS", 60.0)
    plain = tmp_path / "plain.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "600", "-b:a", "8k", plain],
        check=True,
    )
    (rule,) = [r for r in check_file(plain).rules if r.rule == "audio-label"]
    assert rule.status == "review" and "not searched: over budget" in rule.detail
    assert 60 <= rule.measured["analysed_s"] <= 130
    gap = rule.measured["not_searched"]
    assert gap["start_s"] == pytest.approx(60.0, abs=1) and 520 <= gap["end_s"] <= 545
    assert rule.measured["duration_s"] == pytest.approx(600.0, abs=1)

    labelled = add_audio_label(plain, tmp_path / "end.mp3", kind="cue", positions=("end",), implicit="if-supported")
    (rule,) = [r for r in check_file(labelled.path).rules if r.rule == "audio-label"]
    assert rule.status == "pass" and rule.measured["cues"][0]["position"] == "end"
    assert rule.measured["analysed_s"] <= 130 and "not_searched" in rule.measured


@pytest.mark.interop  # ffmpeg
def test_video_over_the_pixel_limit_is_not_decoded(tmp_path: Path) -> None:
    """A 52 MP frame (a flat one compresses to ~300 KB) is refused from its declared size, before decoding."""
    from aigclabel._io import MAX_DECODE_PIXELS
    from aigclabel.errors import LimitExceededError
    from aigclabel.explicit.detector import ExplicitVideoLabelDetector
    from aigclabel.watermark.video import detect_video

    require_tool("ffmpeg")
    big = tmp_path / "big.mkv"
    source = "color=c=gray:s=8192x6400:d=0.04:r=25"
    assert MAX_DECODE_PIXELS < 8192 * 6400
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-frames:v", "1", "-c:v", "mjpeg", str(big)], check=True
    )
    (rule,) = check_file(big).rules[-1:]
    assert rule.status == "error" and "8192x6400 video is over the" in rule.detail and "not searched" in rule.detail
    (skipped,) = ExplicitVideoLabelDetector().detect(big)
    assert skipped.kind == "detector-skipped" and "scan limit; not searched" in skipped.detail
    with pytest.raises(LimitExceededError, match="scan limit; not searched"):
        detect_video(big)
