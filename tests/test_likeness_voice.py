"""Voice matching: the weights loader that cannot run code, the numpy encoder against torch, speakers apart."""

from __future__ import annotations

import os
import pickle
import random
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aigclabel import _budget
from aigclabel._decode import decode_audio
from aigclabel.errors import BudgetExceeded, MalformedFileError, MissingExtraError, UnsupportedFormatError
from aigclabel.likeness._torchload import load_tensors
from tests._voice import ESPEAK_SPEAKERS, SPEAKERS, VOICES, espeak, read_speech, reference_signal
from tests.conftest import missing

DATA = Path(__file__).parent / "data"


def _encoder() -> Any:
    from aigclabel.likeness.voice import VoiceEncoder, weights_path

    try:
        weights_path()
    except MissingExtraError:
        pytest.skip("resemblyzer's weights are not installed (the [likeness] extra)")
    return VoiceEncoder()


# ---------------------------------------------------------------- the restricted unpickler
class _Shell:
    """Pickles as a call of os.system: what a hostile weights file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _legacy_file(body: bytes) -> bytes:
    header = b"".join(
        pickle.dumps(x, protocol=2)
        for x in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True})
    )
    return header + body + pickle.dumps([], protocol=2)


@pytest.mark.parametrize("where", ["legacy", "legacy-header", "zip"])
def test_unpickler_refuses_a_pickle_that_calls_a_global(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "ran"
    hostile = pickle.dumps({"model_state": _Shell(marker)}, protocol=2)
    path = tmp_path / "evil.pt"
    if where == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/data.pkl", hostile)
    elif where == "legacy":
        path.write_bytes(_legacy_file(hostile))
    else:
        path.write_bytes(hostile + _legacy_file(b""))
    with pytest.raises(MalformedFileError, match=r"refusing to load (posix|os|nt)\.system"):
        load_tensors(path)
    assert not marker.exists()


def test_unpickler_reads_a_zip_checkpoint_written_by_torch() -> None:
    # Written by torch 2.13.0 (CPU):
    #   base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    #   torch.save(OrderedDict(weight=base[1:3, ::2], bias=torch.tensor([1.5, -2.0], dtype=torch.float64),
    #                          steps=torch.tensor([7, 8, 9]), transposed=base.t()), "torch-zip-tensors.pt")
    state = load_tensors(DATA / "torch-zip-tensors.pt")
    assert state["weight"].tolist() == [[6.0, 8.0, 10.0], [12.0, 14.0, 16.0]]
    assert state["bias"].dtype == np.float64 and state["bias"].tolist() == [1.5, -2.0]
    assert state["steps"].dtype == np.int64 and state["steps"].tolist() == [7, 8, 9]
    assert np.array_equal(state["transposed"], np.arange(24, dtype=np.float32).reshape(4, 6).T)


def _patched(tmp_path: Path, member: str, change: Any) -> Path:
    """A copy of the torch-written checkpoint with one member changed."""
    path = tmp_path / "patched.pt"
    with zipfile.ZipFile(DATA / "torch-zip-tensors.pt") as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            dst.writestr(item, change(body) if item.filename.endswith(member) else body)
    return path


def test_unpickler_refuses_tensors_that_overrun_their_storage(tmp_path: Path) -> None:
    # the 4x6 float storage declared as 10 elements: 'weight' (offset 6, last element 16) reaches past it
    shrunk = _patched(tmp_path, "data.pkl", lambda b: b.replace(b"cpuq\x07K\x18", b"cpuq\x07K\x0a"))
    with pytest.raises(MalformedFileError, match="past the end of its storage"):
        load_tensors(shrunk)
    short = _patched(tmp_path, "data/0", lambda b: b[:40])
    with pytest.raises(MalformedFileError, match="wrong size"):
        load_tensors(short)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04garbage", b"\x80\x02K\x01."])
def test_unpickler_types_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(data)
    with pytest.raises(MalformedFileError):
        load_tensors(path)


def test_unpickler_types_random_bytes(tmp_path: Path) -> None:
    # seeded blobs, some behind a protocol-2 header: among them are pickles that declare absurd lengths
    # (MemoryError) and integers too large for their slot (OverflowError), both once escaped as tracebacks
    path = tmp_path / "random.pt"
    for seed in range(600):
        rng = random.Random(seed)
        data = rng.randbytes(rng.choice([10, 50, 300, 2000]))
        path.write_bytes(b"\x80\x02" + data if seed % 3 == 0 else data)
        with pytest.raises(MalformedFileError):
            load_tensors(path)


# ---------------------------------------------------------------- the encoder against torch
def test_numpy_encoder_reproduces_resemblyzer_on_torch() -> None:
    # resemblyzer 0.1.4's own VoiceEncoder.embed_utterance on torch 2.13.0 CPU with librosa 0.11's mel
    # spectrogram (reflect padding), for tests._voice.reference_signal(); regenerate with
    # bench/voice_reference.py in a throwaway venv. Measured difference: 9e-8 at most over the 256 values.
    largest = {
        42: 0.25999126,
        82: 0.1641221,
        124: 0.16025983,
        127: 0.19844808,
        158: 0.26623648,
        178: 0.21389124,
        246: 0.32148522,
        248: 0.15918025,
    }
    from aigclabel.likeness import _ge2e

    encoder = _encoder()
    vector = _ge2e.embed_utterances(encoder.weights, [reference_signal()])[0]
    assert vector.dtype == np.float32 and vector.shape == (256,)
    np.testing.assert_allclose([vector[i] for i in largest], list(largest.values()), atol=1e-6)
    assert int(np.sum(vector == 0)) == 137  # ReLU zeros: same pattern as torch
    assert float(vector.sum()) == pytest.approx(8.0699454, abs=1e-5)


# ---------------------------------------------------------------- speakers
@pytest.fixture(scope="module")
def espeak_voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[np.ndarray]]:
    encoder = _encoder()
    folder = tmp_path_factory.mktemp("espeak")
    voices: dict[str, list[np.ndarray]] = {}
    for voice in ESPEAK_SPEAKERS[:3]:
        voices[voice] = []
        for sentence in (0, 1):
            found = encoder.find_in_file(espeak(folder, voice, sentence))
            assert len(found) == 1 and found[0].modality == "voice" and found[0].model == encoder.model
            voices[voice].append(found[0].vector)
    return voices


@pytest.mark.interop
def test_same_synthetic_speaker_is_closer_than_another(espeak_voices: dict[str, list[np.ndarray]]) -> None:
    """espeak-ng voices are a weak proxy for people: one synthesiser, formant sets that differ by design."""
    encoder = _encoder()
    for voice, (a, b) in espeak_voices.items():
        same = encoder.distance(a, b)
        others = [
            encoder.distance(x, y) for other, vs in espeak_voices.items() if other != voice for x in (a, b) for y in vs
        ]
        assert same < min(others), (voice, same, min(others))


@pytest.mark.interop  # the downloaded corpus
def test_real_speakers_fall_either_side_of_the_threshold() -> None:
    """Two utterances of a LibriVox reader and of the pocketsphinx "cards" speaker (different words)."""
    if not VOICES.is_dir():
        missing("the speech corpus is not downloaded", "run `make corpus`")
    encoder = _encoder()
    clips = {
        name: [encoder.embed(*read_speech(VOICES / SPEAKERS[name][i])) for i in picks]
        for name, picks in (("librivox", (0, 3)), ("cards", (0, 3)))
    }
    (a1, a2), (b1, b2) = clips["librivox"], clips["cards"]
    assert all(v is not None for v in (a1, a2, b1, b2))
    same = [encoder.distance(a1, a2), encoder.distance(b1, b2)]
    different = [encoder.distance(x, y) for x in (a1, a2) for y in (b1, b2)]
    assert max(same) <= encoder.threshold < min(different), (same, different)


@pytest.mark.interop
def test_voice_in_a_video_sound_track_matches_the_audio(tmp_path: Path) -> None:
    encoder = _encoder()
    wav = espeak(tmp_path, "en+f3", 0)
    video = tmp_path / "talk.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=64x64:r=10",
            "-i",
            str(wav),
            "-shortest",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            str(video),
        ],
        check=True,
    )
    (heard,) = encoder.find_in_file(video)
    (spoken,) = encoder.find_in_file(wav)
    assert encoder.distance(heard.vector, spoken.vector) < 0.05
    assert heard.where[1] == pytest.approx(spoken.where[1], abs=0.2)


def test_silence_and_hiss_find_no_voice() -> None:
    encoder = _encoder()
    rate = 16000
    assert encoder.find(np.zeros(3 * rate, dtype=np.float32), rate) == []
    hiss = (np.sin(np.arange(3 * rate) * 1.3) * 1e-4).astype(np.float32)  # -83 dBFS: below the floor
    assert encoder.find(hiss, rate) == []
    assert encoder.embed(np.zeros(rate, dtype=np.float32), rate) is None


def test_long_speech_is_cut_into_spans(tmp_path: Path) -> None:
    encoder = _encoder()
    rate = 16000
    speech = reference_signal(seconds=12.0, rate=rate)
    found = encoder.find(speech, rate)
    assert len(found) == 2
    assert found[0].where[0] == 0.0 and found[0].where[1] == pytest.approx(10.0, abs=0.05)
    assert found[1].where[1] == pytest.approx(12.0, abs=0.05)


# ---------------------------------------------------------------- hostile input
@pytest.mark.parametrize(
    ("samples", "rate", "match"),
    [
        (np.full(16000, np.nan, dtype=np.float32), 16000, "NaN"),
        (np.zeros(16000, dtype=np.float32), 0, "sample rate"),
        (np.zeros(16000, dtype=np.float32), 10**9, "sample rate"),
        (np.zeros((2, 2, 2), dtype=np.float32), 16000, "mono"),
        (np.array(["a", "b"]), 16000, "mono"),
    ],
)
def test_bad_samples_give_typed_errors(samples: np.ndarray, rate: int, match: str) -> None:
    with pytest.raises(MalformedFileError, match=match):
        _encoder().find(samples, rate)


@pytest.mark.interop
def test_bad_files_give_typed_errors(tmp_path: Path) -> None:
    encoder = _encoder()
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    with pytest.raises(MalformedFileError):
        encoder.find_in_file(garbage)
    picture = tmp_path / "still.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=8x8", "-frames:v", "1", str(picture)], check=True
    )
    with pytest.raises(UnsupportedFormatError, match="no audio"):
        encoder.find_in_file(picture)
    lying = tmp_path / "lying.wav"  # a header declaring 384 kHz and a huge data chunk over a few bytes
    lying.write_bytes(
        b"RIFF\xff\xff\xff\x7fWAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 384000, 768000, 2, 16)
        + b"data\xff\xff\xff\x7f"
        + b"\x00\x01" * 500
    )
    assert encoder.find_in_file(lying) == []


@pytest.mark.interop
def test_analysis_is_capped_and_budgeted(tmp_path: Path) -> None:
    long = tmp_path / "long.flac"
    subprocess.run(["sox", "-n", "-r", "8000", str(long), "synth", "150", "sine", "300", "vol", "0.1"], check=True)
    samples, more = decode_audio(long, rate=16000, max_seconds=120.0)
    assert samples.size == 120 * 16000 and more
    with _budget.budget(_budget.Budget(samples=100_000)), pytest.raises(BudgetExceeded):
        _encoder().find_in_file(long)
