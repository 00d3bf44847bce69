"""Voice-assistant turns (GB 45438 §5.3 note 3): raw PCM streamed through ``aigclabel voice-turn`` and
``POST /v1/audio/turn``, the audible label found again by the cue detector at the turn's start and end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aigclabel.explicit.audio import PcmTurnLabeller, detect_cue
from aigclabel.service import ServiceSettings, create_app

RATE = 16000


def _speech_like(seconds: float) -> bytes:
    """Noise shaped like speech: bursts of band-limited noise, as s16le."""
    rng = np.random.default_rng(7)
    n = int(seconds * RATE)
    envelope = (np.sin(np.linspace(0, 9 * np.pi, n)) > 0).astype(np.float32)
    return (0.2 * rng.standard_normal(n) * envelope * 32767).astype("<i2").tobytes()


def _cues(pcm: bytes) -> list[float]:
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32767
    return [round(match.start, 2) for match in detect_cue(samples, RATE)]


def test_cli_labels_both_ends_and_passes_the_turn_through(tmp_path: Path) -> None:
    turn = _speech_like(2.0) + b"\x01"  # a cut sample frame at the end, as a killed TTS engine leaves
    done = subprocess.run(
        [sys.executable, "-m", "aigclabel", "voice-turn", "--rate", str(RATE), "--position", "both"],
        input=turn, capture_output=True, check=True,
    )  # fmt: skip
    label = PcmTurnLabeller(RATE).head()
    assert done.stdout == label + turn + b"\0" + label  # the turn's bytes untouched between the labels
    found = _cues(done.stdout)
    label_seconds = len(label) / 2 / RATE
    assert len(found) == 2 and found[0] < 0.5 and found[1] > label_seconds + 2.0  # one per end of the turn


def test_cli_refuses_a_bad_format_with_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aigclabel", "voice-turn", "--rate", str(RATE), "--format", "mp3"],
        input=b"", capture_output=True,
    )  # fmt: skip
    assert done.returncode == 2 and b"--format" in done.stderr


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    work = tmp_path / "uploads"
    work.mkdir()
    with TestClient(
        create_app(ServiceSettings(work_dir=work, max_upload_bytes=1 << 20)), base_url="http://127.0.0.1"
    ) as c:
        yield c


def test_service_streams_a_turn_in_and_out(client: TestClient) -> None:
    turn = _speech_like(1.5)

    def pieces() -> Iterator[bytes]:
        for at in range(0, len(turn), 4000):
            yield turn[at : at + 4000]

    answer = client.post("/v1/audio/turn", params={"rate": RATE, "position": "both"}, content=pieces())
    assert answer.status_code == 200
    label = PcmTurnLabeller(RATE).head()
    assert answer.content == label + turn + label
    assert len(_cues(answer.content)) == 2


def test_service_offers_the_library_s_options(client: TestClient) -> None:
    """The query parameters take exactly the values the labeller does (one definition, in _audio_options)."""
    from typing import get_args

    from aigclabel._audio_options import LabelKind, PcmFormat, TurnPosition

    spec = client.app.openapi()  # type: ignore[attr-defined]
    offered = {p["name"]: p["schema"].get("enum") for p in spec["paths"]["/v1/audio/turn"]["post"]["parameters"]}
    assert offered["format"] == list(get_args(PcmFormat)) == ["s16le", "f32le"]
    assert offered["kind"] == list(get_args(LabelKind)) == ["cue", "speech", "both"]
    assert offered["position"] == list(get_args(TurnPosition)) == ["start", "end", "both"]
    refused = client.post("/v1/audio/turn", params={"rate": RATE, "kind": "beep"}, content=b"")
    assert refused.status_code == 422 and refused.json()["detail"] == "kind: Input should be 'cue', 'speech' or 'both'"


def test_service_refuses_bad_parameters_and_oversized_turns(client: TestClient) -> None:
    assert client.post("/v1/audio/turn", params={"rate": 100}, content=b"").status_code == 422
    assert client.post("/v1/audio/turn", params={"rate": RATE, "format": "u8"}, content=b"").status_code == 422
    big = client.post("/v1/audio/turn", params={"rate": RATE}, content=b"\0" * ((1 << 20) + 2))
    assert big.status_code == 413


def test_the_label_arrives_while_the_turn_is_still_being_sent(tmp_path: Path) -> None:
    """Full duplex over a real socket: the start label and the first chunk come back before the rest is sent."""
    import socket

    from tests.openai_upstream import serve

    work = tmp_path / "uploads"
    work.mkdir()
    label = PcmTurnLabeller(RATE).head()
    first = _speech_like(0.5)
    with serve(create_app(ServiceSettings(work_dir=work))) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            request = f"POST /v1/audio/turn?rate={RATE} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            head = request + "Transfer-Encoding: chunked\r\n\r\n"
            sock.sendall(head.encode() + f"{len(first):x}\r\n".encode() + first + b"\r\n")
            received = b""
            while len(received.partition(b"\r\n\r\n")[2]) < len(label) + len(first):
                data = sock.recv(1 << 16)
                assert data, "the server closed before answering"
                received += data
            assert received.startswith(b"HTTP/1.1 200")
            sock.sendall(b"0\r\n\r\n")  # only now does the turn end
    body = received.partition(b"\r\n\r\n")[2]
    assert label[:1000] in body  # chunked framing around it; the label bytes are there, then the turn's
