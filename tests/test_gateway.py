"""The labelling gateway, driven by the official ``openai`` client, in front of a fake OpenAI-compatible upstream.

Everything runs on loopback: the upstream (``tests/openai_upstream.py``) and the gateway are uvicorn
servers in threads. Files the gateway returns are read back with aigclabel's readers and exiftool/ffprobe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, inspect
from aigclabel.audit import AuditStore
from aigclabel.cli import app as cli_app
from aigclabel.errors import LimitExceededError
from aigclabel.explicit.audio import detect_cue_in_file, find_spoken_label, load_mono
from aigclabel.explicit.image import locate_label
from aigclabel.explicit.text import find_text_labels, label_text
from aigclabel.gateway import GatewaySettings
from aigclabel.gateway import app as gateway_app
from aigclabel.gateway.app import create_app
from aigclabel.gateway.text import SSEFramer, TextLabeller
from aigclabel.gateway.upstream import UpstreamPool
from aigclabel.label import AIGCLabel
from aigclabel.signing import SignatureState, demo_registry, demo_signing_key, payload_digest, verify
from aigclabel.watermark import detect_file
from aigclabel.watermark.text import read_text_mark, strip_text_mark
from tests._tools import exiftool_label, free_port, wait_for_http
from tests.conftest import require_tool
from tests.openai_upstream import BEFORE_TROUBLE, Upstream, create_upstream, serve, token

pytestmark = pytest.mark.interop  # the openai client against servers on loopback, exiftool and ffprobe

UPSTREAM_KEY = "sk-upstream-secret"
GATEWAY_KEY = "sk-gateway-key"
MESSAGES: Any = [{"role": "user", "content": "hello"}]
HEAD = label_text("", position="start")
TAIL = label_text("", position="end")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Upstream]]:
    seen = Upstream()
    with serve(create_upstream(seen)) as url:
        yield url, seen


@contextmanager
def gateway(upstream_url: str, **options: Any) -> Iterator[tuple[openai.OpenAI, str]]:
    """A gateway in front of ``upstream_url`` and an OpenAI client pointed at it."""
    settings = GatewaySettings(
        upstream=upstream_url, producer=DEMO_PROVIDER_CODE, upstream_api_key=UPSTREAM_KEY,
        api_keys=frozenset({GATEWAY_KEY}), **options,
    )  # fmt: skip
    with serve(create_app(settings)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=15)
        try:
            yield client, url
        finally:
            client.close()


def answer(n: int) -> str:
    return "".join(token(i) for i in range(n))


def collect(stream: Any) -> tuple[list[Any], str]:
    chunks = list(stream)
    return chunks, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# ---------------------------------------------------------------------------- text


def test_streamed_chat_is_labelled_in_its_first_chunk_and_audited(
    upstream: tuple[str, Upstream], tmp_path: Path
) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    with gateway(upstream[0], audit=store) as (client, _):
        raw = client.chat.completions.with_raw_response.create(model="tiny", messages=MESSAGES, stream=True)
        chunks, text = collect(raw.parse())
    assert chunks[0].choices[0].delta.content == HEAD  # the label comes before the first token does
    assert text == label_text(answer(8), position="start")
    assert [f.where for f in find_text_labels(text)] == ["start"]
    field = AIGCLabel.from_mapping(chunks[0].model_extra["aigc"])
    assert field.content_producer == raw.headers["aigc-contentproducer"] == DEMO_PROVIDER_CODE
    assert field.produce_id == raw.headers["aigc-produceid"]
    _wait_for(lambda: bool(store.trace(produce_id=field.produce_id)))  # written after the answer's last byte
    (event,) = store.trace(produce_id=field.produce_id)
    assert event.detail["state"] == "complete" and event.detail["stream"] is True
    assert event.content_sha256 == hashlib.sha256(text.encode()).hexdigest()
    store.close()


def test_every_answer_is_recorded_once_and_the_audit_queue_is_drained_on_shutdown(
    upstream: tuple[str, Upstream], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events are written in groups after the answers; the events still queued when the gateway stops
    are written before it is gone (here all of them: the writer would wait a minute for more)."""
    monkeypatch.setattr(gateway_app, "_AUDIT_LINGER", 60.0)
    store = AuditStore(tmp_path / "audit.sqlite")
    with gateway(upstream[0], audit=store) as (client, _):
        asked = []
        for number in range(12):
            raw = client.chat.completions.with_raw_response.create(
                model="tiny", messages=MESSAGES, stream=number % 2 == 0, extra_body={"tokens": 2}
            )
            list(raw.parse()) if number % 2 == 0 else raw.parse()
            asked.append(raw.headers["aigc-produceid"])
        assert not list(store.events())  # all still queued
    recorded = [event.produce_id for event in store.events()]
    assert sorted(recorded) == sorted(asked)
    store.close()


def test_end_label_goes_into_the_finishing_chunk(upstream: tuple[str, Upstream]) -> None:
    with gateway(upstream[0], text_position="end") as (client, _):
        chunks, text = collect(client.chat.completions.create(model="tiny", messages=MESSAGES, stream=True))
    assert text == answer(8) + TAIL
    finishing = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finishing.choices[0].delta.content == TAIL
    assert [f.where for f in find_text_labels(text)] == ["end"]


def test_whole_chat_answers_label_every_choice(upstream: tuple[str, Upstream]) -> None:
    with gateway(upstream[0], text_position="both") as (client, _):
        raw = client.chat.completions.with_raw_response.create(
            model="tiny", messages=MESSAGES, n=2, extra_body={"tokens": 5}
        )
        done = raw.parse()
    expected = label_text(answer(5), position="both")
    assert [c.message.content for c in done.choices] == [expected, expected]
    assert done.model_extra["aigc"]["ProduceID"] == raw.headers["aigc-produceid"]
    assert done.usage is not None and done.usage.completion_tokens == 5  # the rest of the answer is untouched


def test_streamed_choices_are_labelled_each(upstream: tuple[str, Upstream]) -> None:
    with gateway(upstream[0], text_position="both") as (client, _):
        chunks = list(client.chat.completions.create(model="tiny", messages=MESSAGES, n=2, stream=True))
    texts = ["", ""]
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == [HEAD + answer(8) + TAIL] * 2


def test_completions_streamed_and_whole(upstream: tuple[str, Upstream]) -> None:
    with gateway(upstream[0], text_position="both") as (client, _):
        streamed = client.completions.create(model="tiny", prompt="x", stream=True, extra_body={"tokens": 4})
        text = "".join(c.choices[0].text for c in streamed if c.choices)
        whole = client.completions.create(model="tiny", prompt="x", extra_body={"tokens": 4})
    assert text == HEAD + answer(4) + TAIL
    assert whole.choices[0].text == label_text(answer(4), position="both")


def test_unicode_mark_carries_the_produce_id(upstream: tuple[str, Upstream]) -> None:
    with gateway(upstream[0], text_mark=True) as (client, _):
        raw = client.chat.completions.with_raw_response.create(model="tiny", messages=MESSAGES, stream=True)
        _, text = collect(raw.parse())
        whole = client.chat.completions.create(model="tiny", messages=MESSAGES)
    mark = read_text_mark(text)
    assert mark is not None and mark.verified and mark.payload.matches(raw.headers["aigc-produceid"])
    assert strip_text_mark(text) == label_text(answer(8))
    marked = whole.choices[0].message.content or ""
    found = read_text_mark(marked)
    assert found is not None and found.payload.matches(whole.model_extra["aigc"]["ProduceID"])


def test_responses_api_streamed_and_whole(upstream: tuple[str, Upstream]) -> None:
    """``/v1/responses``: the deltas add up to the labelled text, and every repeated copy of the text (done
    events, the final response) is that same text, so the client's final response matches its stream."""
    with gateway(upstream[0], text_position="both", text_mark=True) as (client, _):
        raw = client.responses.with_raw_response.create(model="tiny", input="hi", stream=True)
        events = list(raw.parse())
        whole = client.responses.create(model="tiny", input="hi", extra_body={"tokens": 5})
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert strip_text_mark(streamed) == HEAD + answer(8) + TAIL
    mark = read_text_mark(streamed)
    assert mark is not None and mark.verified and mark.payload.matches(raw.headers["aigc-produceid"])
    final = next(e for e in events if e.type == "response.completed").response
    assert final.output_text == streamed
    assert next(e for e in events if e.type == "response.output_text.done").text == streamed
    assert [e.sequence_number for e in events] == list(range(len(events)))  # the extra tail delta renumbered
    assert final.model_extra["aigc"]["ProduceID"] == raw.headers["aigc-produceid"]
    assert strip_text_mark(whole.output_text) == label_text(answer(5), position="both")
    assert whole.model_extra["aigc"]["ContentProducer"] == DEMO_PROVIDER_CODE


def test_json_output_gets_the_implicit_label_only(upstream: tuple[str, Upstream]) -> None:
    """A JSON mode or schema answer is read by a program: a visible label would corrupt it."""
    json_mode: Any = {"type": "json_object"}
    with gateway(upstream[0], text_position="both", text_mark=True) as (client, _):
        raw = client.chat.completions.with_raw_response.create(
            model="tiny", messages=MESSAGES, response_format=json_mode, extra_body={"tokens": 3}
        )
        done = raw.parse()
        _, text = collect(client.chat.completions.create(model="tiny", messages=MESSAGES, stream=True,
                                                         response_format=json_mode))  # fmt: skip
    assert done.choices[0].message.content == answer(3) and text == answer(8)
    assert done.model_extra["aigc"]["ProduceID"] == raw.headers["aigc-produceid"]


def test_ollama_api_streamed_whole_and_cut_short(upstream: tuple[str, Upstream]) -> None:
    """Ollama's own ``/api/chat`` and ``/api/generate`` (JSON lines), through the official ``ollama`` client."""
    ollama = pytest.importorskip("ollama")
    with gateway(upstream[0], text_position="both") as (_, url):
        client = ollama.Client(host=url, headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
        parts = list(client.chat(model="tiny", messages=MESSAGES, stream=True))
        whole = client.generate(model="tiny", prompt="x", options={"tokens": 4})
        cut = list(client.generate(model="no-done", prompt="x", stream=True))
        structured = client.chat(model="tiny", messages=MESSAGES, format="json", options={"tokens": 2})
        lines = httpx.post(  # the client drops fields it does not know; the raw lines carry the implicit label
            url + "/api/chat", json={"model": "tiny", "messages": MESSAGES}, headers=client._client.headers
        )
    assert "".join(p.message.content or "" for p in parts) == HEAD + answer(8) + TAIL and parts[-1].done
    first = json.loads(lines.text.splitlines()[0])
    assert AIGCLabel.from_mapping(first["aigc"]).produce_id == lines.headers["aigc-produceid"]
    assert whole.response == label_text(answer(4), position="both")
    assert "".join(p.response for p in cut) == HEAD + answer(8) + TAIL  # the tail came in a line of its own
    assert structured.message.content == answer(2)


def test_label_is_sent_while_the_upstream_stalls_and_closing_cancels_it(upstream: tuple[str, Upstream]) -> None:
    """No buffering: the label and the first tokens reach the client while the upstream is still silent;
    closing the client's stream closes the upstream's."""
    url, seen = upstream
    cut_before = seen.cut_streams
    with gateway(url) as (client, _):
        stream = client.chat.completions.create(model="stall", messages=MESSAGES, stream=True)
        received = [next(stream) for _ in range(BEFORE_TROUBLE + 1)]  # the upstream sends no more than this
        assert received[0].choices[0].delta.content == HEAD
        assert "".join(c.choices[0].delta.content for c in received[1:]) == answer(BEFORE_TROUBLE)
        stream.close()
        _wait_for(lambda: seen.cut_streams > cut_before)


def test_stalled_upstream_is_cut_after_the_read_timeout(upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    with gateway(upstream[0], read_timeout=0.5, audit=store) as (client, _):
        stream = client.chat.completions.create(model="stall", messages=MESSAGES, stream=True)
        with pytest.raises((httpx.HTTPError, openai.APIError)):
            list(stream)
    _wait_for(lambda: any(state.startswith("upstream-broke-off: ReadTimeout") for state in _states(store)))
    store.close()


def test_upstream_disconnect_mid_stream_reaches_the_client(upstream: tuple[str, Upstream]) -> None:
    with gateway(upstream[0]) as (client, _):
        stream = client.chat.completions.create(model="disconnect", messages=MESSAGES, stream=True)
        got: list[Any] = []
        with pytest.raises((httpx.HTTPError, openai.APIError)):
            got.extend(stream)
        assert "".join(c.choices[0].delta.content or "" for c in got) == HEAD + answer(BEFORE_TROUBLE)


@pytest.mark.parametrize(
    ("model", "error"), [("fail-429", openai.RateLimitError), ("fail-500", openai.InternalServerError)]
)
def test_upstream_errors_pass_through_unchanged(
    upstream: tuple[str, Upstream], model: str, error: type[Exception]
) -> None:
    with gateway(upstream[0]) as (client, _), pytest.raises(error) as caught:
        client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert isinstance(caught.value, openai.APIStatusError)
    assert caught.value.body == {
        "message": f"upstream refuses with {model[5:]}",
        "type": "upstream_test",
        "code": model[5:],
    }


def test_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    with gateway(f"http://127.0.0.1:{free_port()}") as (client, _), pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny", messages=MESSAGES)
    assert caught.value.status_code == 502 and caught.value.code == "upstream_unreachable"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, and that key (PEM files in ``folder``)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigclabel test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert, private = folder / "upstream.crt", folder / "upstream.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, private


def test_https_upstream_is_verified_labelled_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``https://`` upstream: the gateway checks its certificate against the system's trust store
    (``SSL_CERT_FILE`` names another, as OpenSSL reads it), labels what comes through TLS, keeps the
    connection for the next request, and answers 502 when the certificate is not trusted."""
    tls = _self_signed(tmp_path)
    seen = Upstream()
    with serve(create_upstream(seen), tls=tls) as url:
        assert url.startswith("https://")
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        with gateway(url) as (client, _), pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="tiny", messages=MESSAGES)
        assert caught.value.status_code == 502 and caught.value.code == "upstream_unreachable"
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value.body)
        assert seen.paths == []  # nothing was sent to a server whose certificate failed
        monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))
        with gateway(url) as (client, _):
            chunks, text = collect(client.chat.completions.create(model="tiny", messages=MESSAGES, stream=True))
            whole = client.chat.completions.create(model="tiny", messages=MESSAGES)

        async def twice() -> None:  # an answer read to its end leaves its TLS connection to the next request
            pool = UpstreamPool(url, connect_timeout=5, read_timeout=15, keepalive=5.0)
            kept = None
            for _ in range(2):
                done = await pool.request("GET", "/v1/models", [], b"")
                assert not pool._idle and done.status_code == 200
                assert b"tiny" in b"".join([chunk async for chunk in done.aiter_bytes()])
                await done.aclose()
                assert len(pool._idle) == 1 and pool._idle[0] is (kept or pool._idle[0])
                kept = pool._idle[0]
            pool.close()

        asyncio.run(twice())
    assert chunks[0].choices[0].delta.content == HEAD and text == label_text(answer(8), position="start")
    assert whole.choices[0].message.content == text
    assert seen.authorizations[:2] == [f"Bearer {UPSTREAM_KEY}"] * 2 and len(seen.paths) == 4


# ---------------------------------------------------------------------------- keys and pass-through


def test_gateway_and_upstream_keys_are_kept_apart(upstream: tuple[str, Upstream]) -> None:
    url, seen = upstream
    with gateway(url) as (client, base):
        models = client.models.list()
        assert [m.id for m in models.data] == ["tiny"]
        assert seen.authorizations[-1] == f"Bearer {UPSTREAM_KEY}"
        asked = len(seen.paths)
        wrong = openai.OpenAI(base_url=base + "/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="tiny", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        assert len(seen.paths) == asked  # refused before the upstream was asked
    settings = GatewaySettings(upstream=url, producer=DEMO_PROVIDER_CODE)
    with serve(create_app(settings)) as bare:
        httpx.get(bare + "/v1/models", headers={"authorization": "Bearer client-only"}).raise_for_status()
        assert seen.authorizations[-1] is None  # no upstream key configured: nothing is sent, not the client's


def test_other_routes_pass_through_byte_for_byte(upstream: tuple[str, Upstream]) -> None:
    url, seen = upstream
    body = bytes(range(256)) * 1000
    with gateway(url) as (_, base):
        answer_ = httpx.put(
            base + "/v1/echo?x=1", content=body, headers={"authorization": f"Bearer {GATEWAY_KEY}", "x-custom": "kept"}
        )
    assert answer_.status_code == 200 and answer_.content == body and answer_.headers["x-echo-method"] == "PUT"
    assert "aigc-produceid" not in answer_.headers
    assert seen.bodies[-1] == body


def test_upstream_connections_are_reused_and_an_abandoned_answer_closes_its_own(
    upstream: tuple[str, Upstream],
) -> None:
    """The gateway's own upstream client: a connection whose answer was read to its end serves the next
    request; one whose answer was abandoned mid-stream is closed (the upstream sees its stream cut), never
    reused with stale bytes in it."""
    url, seen = upstream

    async def scenario() -> None:
        pool = UpstreamPool(url, connect_timeout=5, read_timeout=15, keepalive=2.0)
        headers = [("content-type", "application/json")]
        ask = {"model": "tiny", "messages": MESSAGES, "stream": True, "tokens": 3}
        first = await pool.request("POST", "/v1/chat/completions", headers, json.dumps(ask).encode())
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
        assert b"data: [DONE]" in b"".join([chunk async for chunk in first.aiter_bytes()])
        (kept,) = pool._idle
        stall = json.dumps({**ask, "model": "stall", "tokens": 10}).encode()  # stalls after BEFORE_TROUBLE
        stalled = await pool.request("POST", "/v1/chat/completions", headers, stall)
        assert not pool._idle  # the kept connection carries this request
        assert await stalled.read_some()
        await stalled.aclose()
        assert kept.closed and not pool._idle
        pool.close()

    cut_before = seen.cut_streams
    asyncio.run(scenario())
    _wait_for(lambda: seen.cut_streams > cut_before)


def test_backpressure_holds_the_upstream_back(upstream: tuple[str, Upstream]) -> None:
    """A client that stops reading stops the upstream (through the gateway's bounded buffers)."""
    url, seen = upstream
    tokens = 3000  # 3000 x 64 KiB: far more than every socket buffer on the way can hold
    progress = seen.sent_tokens
    with gateway(url) as (_, base):
        headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
        ask = {"model": "tiny", "messages": MESSAGES, "stream": True, "tokens": tokens, "token_size": 65536}
        cut_before = seen.cut_streams
        with httpx.stream("POST", base + "/v1/chat/completions", json=ask, headers=headers, timeout=15) as answer_:
            next(answer_.iter_raw(4096))
            last, still = -1, 0
            for _ in range(100):  # until the upstream's count has not moved for 0.3 s (at most 10 s)
                time.sleep(0.1)
                now = seen.sent_tokens - progress
                still = still + 1 if now == last else 0
                last = now
                if still >= 3:
                    break
            assert still >= 3 and last < tokens // 4
        _wait_for(lambda: seen.cut_streams > cut_before)


# ---------------------------------------------------------------------------- images and speech


def _check_file(data: bytes, suffix: str, tmp_path: Path, produce_id: str) -> Path:
    path = tmp_path / f"out-{produce_id}{suffix}"
    path.write_bytes(data)
    found = inspect(path)
    assert found.ok and found.labels[0].label is not None and found.labels[0].label.produce_id == produce_id
    return path


def test_b64_images_carry_every_layer(upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    require_tool("exiftool")
    store = AuditStore(tmp_path / "audit.sqlite")
    options = {"image_visible": True, "watermark": True, "signing_key": demo_signing_key(), "audit": store}
    with gateway(upstream[0], **options) as (client, _):
        raw = client.images.with_raw_response.generate(model="tiny", prompt="a cat", n=2, response_format="b64_json")
        result = raw.parse()
    ids = [item.model_extra["aigc"]["ProduceID"] for item in result.data]
    assert raw.headers["aigc-produceid"] == ",".join(ids) and len(set(ids)) == 2
    for item, produce_id in zip(result.data, ids, strict=True):
        path = _check_file(base64.b64decode(item.b64_json or ""), ".png", tmp_path, produce_id)
        label = AIGCLabel.from_mapping(json.loads(exiftool_label(path) or "{}"))
        assert label.produce_id == produce_id  # an independent reader agrees
        check = verify(label, payload_digest(path), demo_registry())
        assert check.state is SignatureState.VALID
        mark = detect_file(path)
        assert mark is not None and mark.present and mark.payload is not None and mark.payload.matches(produce_id)
        with Image.open(path) as image:
            assert locate_label(image.convert("RGB")) is not None
        (event,) = store.trace(produce_id=produce_id)
        assert event.watermark_payload == mark.payload.hex()
    store.close()


def test_url_images_are_fetched_from_the_upstream_only(upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    url, seen = upstream
    with gateway(url) as (client, base):
        result = client.images.generate(model="tiny", prompt="a cat", response_format="url")
        image_url = result.data[0].url or ""
        assert image_url.startswith(base + "/aigclabel/images/")
        _check_file(httpx.get(image_url).content, ".png", tmp_path, result.data[0].model_extra["aigc"]["ProduceID"])
        assert seen.paths[-1].startswith("/files/") and seen.authorizations[-1] == f"Bearer {UPSTREAM_KEY}"
        with pytest.raises(openai.APIStatusError) as caught:
            client.images.generate(model="foreign-url", prompt="a cat", response_format="url")
        assert caught.value.status_code == 502 and caught.value.code == "foreign_image_url"
        with pytest.raises(openai.APIStatusError) as caught:
            client.images.generate(model="bad-shape", prompt="a cat")
    assert caught.value.status_code == 502 and caught.value.code == "unlabelable_answer"


def test_image_edits_upload_passes_and_the_answer_is_labelled(upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    url, seen = upstream
    source = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(source, "PNG")
    with gateway(url) as (client, _):
        result = client.images.edit(image=("in.png", source.getvalue(), "image/png"), prompt="bluer")
    assert seen.bodies[-1] == source.getvalue()
    _check_file(
        base64.b64decode(result.data[0].b64_json or ""),
        ".png",
        tmp_path,
        result.data[0].model_extra["aigc"]["ProduceID"],
    )


@pytest.mark.parametrize(("fmt", "kind"), [("mp3", "cue"), ("wav", "speech")])
def test_speech_gets_the_audible_label_and_the_implicit_label(
    upstream: tuple[str, Upstream], tmp_path: Path, fmt: str, kind: str
) -> None:
    ffprobe = require_tool("ffprobe")
    with gateway(upstream[0], audio_label=kind) as (client, _):
        spoken = client.audio.speech.create(model="tiny", voice="alloy", input="hello", response_format=fmt)  # type: ignore[arg-type]
    path = _check_file(spoken.content, f".{fmt}", tmp_path, spoken.response.headers["aigc-produceid"])
    if kind == "cue":
        (cue,) = detect_cue_in_file(path)
        assert cue.start < 0.5  # before the 1 s of speech
    else:
        assert [round(start) for start in find_spoken_label(load_mono(path))] == [0]
    probe = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert float(json.loads(probe.stdout)["format"]["duration"]) > 1.5  # 1 s of speech + the label


def test_speech_format_without_a_label_slot_is_refused_before_the_upstream(upstream: tuple[str, Upstream]) -> None:
    url, seen = upstream
    with gateway(url) as (client, _):
        asked = len(seen.paths)
        with pytest.raises(openai.BadRequestError, match="pcm"):
            client.audio.speech.create(model="tiny", voice="alloy", input="hello", response_format="pcm")
    assert len(seen.paths) == asked


# ---------------------------------------------------------------------------- pieces and the command


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_sse_framing_survives_any_split(newline: bytes) -> None:
    events = [b'data: {"a":1}' + newline * 2, b": comment" + newline + b"data: [DONE]" + newline * 2]
    stream = b"".join(events)
    for cut in range(1, len(stream)):
        framer = SSEFramer()
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == events


def test_multi_line_data_events_are_labelled_and_endless_ones_refused() -> None:
    settings = GatewaySettings(upstream="http://127.0.0.1:1", producer=DEMO_PROVIDER_CODE)
    labeller = TextLabeller(settings, settings.new_label(), "completion")
    event = b'id: 7\ndata: {"choices":\ndata: [{"index":0,"text":"hi"}]}\n\n'
    out = labeller.label_event(event)
    assert out.startswith(b"id: 7\ndata: {") and out.count(b"data:") == 1
    assert json.loads(out.split(b"data: ")[1])["choices"][0]["text"] == HEAD + "hi"
    framer = SSEFramer(max_event=1000)
    framer.feed(b"data: " + b"x" * 900)
    with pytest.raises(LimitExceededError):
        framer.feed(b"x" * 200)


def test_stream_without_finish_reason_gets_its_end_label_before_done() -> None:
    settings = GatewaySettings(upstream="http://127.0.0.1:1", producer=DEMO_PROVIDER_CODE, text_position="end")
    labeller = TextLabeller(settings, settings.new_label(), "chat")
    first = labeller.label_event(b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
    assert b'"aigc"' in first
    done = labeller.label_event(b"data: [DONE]\n\n")
    chunk = json.loads(done.split(b"\n\n")[0][6:])
    assert chunk["id"] == "x" and chunk["choices"][0]["delta"]["content"] == TAIL
    assert done.endswith(b"data: [DONE]\n\n")


def test_tool_calls_get_no_text_label() -> None:
    settings = GatewaySettings(upstream="http://127.0.0.1:1", producer=DEMO_PROVIDER_CODE, text_position="both")
    labeller = TextLabeller(settings, settings.new_label(), "chat")
    call = {"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [{"index": 0}]}}
    chunk: dict[str, Any] = {"choices": [call]}
    labeller.label_chunk(chunk)
    assert chunk["choices"][0]["delta"]["content"] is None
    assert labeller.closing_chunks() == []


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_the_fast_path_changes_nothing_but_the_cost(kind: Any) -> None:
    """Events the fast path passes unparsed give the same bytes and the same audit digest as the full path:
    escapes, non-ASCII, several choices, tool calls, spaced JSON, finishing chunks, odd bytes."""

    def event(choices: list[dict[str, Any]], *, spaced: bool = False) -> bytes:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices}
        separators = (", ", ": ") if spaced else (",", ":")
        return b"data: " + json.dumps(chunk, separators=separators, ensure_ascii=False).encode() + b"\n\n"

    def choice(index: int, text: str | None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
        if kind == "completion":
            return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        body = {"content": text, **delta} if text is not None or delta else {}
        return {"index": index, "delta": body, "logprobs": None, "finish_reason": finish}

    stream = [
        event([choice(0, "", role="assistant") if kind == "chat" else choice(0, "")]),
        event([choice(0, "plain ")]),
        event([choice(0, 'quote " and \\ backslash\n')]),
        event([choice(0, "中文，标识 ")]),
        event([choice(0, "\u2028 line separator")]),
        event([choice(0, "spaced ")], spaced=True),
        event([choice(0, "a "), choice(1, "b ")]),
        event([choice(1, "second ")]),
        event([choice(0, '"finish_reason":"stop" inside the text ')]),
        event([choice(0, None, tool_calls=[{"index": 0}])] if kind == "chat" else [choice(0, "x ")]),
        b'data: {"choices":[{"index":0,"delta":{"content":"\xff\xfe"},"finish_reason":null}]}\n\n',
        event([choice(0, "last", "stop"), choice(1, "", "stop")]),
        b"data: [DONE]\n\n",
    ]
    settings = GatewaySettings(upstream="http://127.0.0.1:1", producer=DEMO_PROVIDER_CODE, text_position="both")
    label = settings.new_label()
    fast, full = TextLabeller(settings, label, kind), TextLabeller(settings, label, kind)
    full._passes_unchanged = lambda _event: False  # type: ignore[method-assign]
    passed: list[bool] = []
    check = fast._passes_unchanged
    fast._passes_unchanged = lambda e: passed.append(check(e)) or passed[-1]  # type: ignore[method-assign]
    assert [fast.label_event(e) for e in stream] == [full.label_event(e) for e in stream]
    assert fast.audit_detail() == full.audit_detail()
    assert sum(passed) >= 4  # the fast path did run (plain, escaped, Chinese, quoted text)


def test_command_refuses_an_open_address_without_a_key() -> None:
    result = CliRunner().invoke(
        cli_app, ["gateway", "--upstream", "http://127.0.0.1:9", "-p", DEMO_PROVIDER_CODE, "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2 and "non-loopback" in result.output


def test_command_starts_the_gateway_guarded_against_slow_heads(upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    """``aigclabel gateway`` answers; a connection whose request head never completes (slowloris) is cut
    by the service's head guard, and an unparsable request gets an error, both in the OpenAI shape."""
    port = free_port()
    db = tmp_path / "audit.sqlite"
    command = [sys.executable, "-m", "aigclabel", "gateway", "--upstream", upstream[0] + "/v1",
               "-p", DEMO_PROVIDER_CODE, "--port", str(port), "--db", str(db), "--position", "end"]  # fmt: skip
    env = {**os.environ, "AIGCLABEL_HEADER_SECONDS": "0.5"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/aigclabel/health", process)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        done = client.chat.completions.create(model="tiny", messages=MESSAGES, extra_body={"tokens": 2})
        slow = _exchange(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")
        garbage = _exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
    finally:
        process.terminate()
        process.wait(10)
    assert done.choices[0].message.content == label_text(answer(2), position="end")
    store = AuditStore(db)
    assert len(store.trace(produce_id=done.model_extra["aigc"]["ProduceID"])) == 1
    store.close()
    for raw, status, code in ((slow, 408, "timeout"), (garbage, 400, "bad-request")):
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d" % status)
        assert json.loads(body)["error"]["code"] == code


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (at most 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def _states(store: AuditStore) -> list[str]:
    return [str(e.detail.get("state")) for e in store.events()]


def _wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# ---------------------------------------------------------------------------- --workers


def _workers(supervisor: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split()
    workers: set[int] = set()
    for pid in found:
        with contextlib.suppress(OSError):  # one that has just ended is gone
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.add(int(pid))
    return workers


def _recorded(db: Path) -> int:
    store = AuditStore(db)
    try:
        return sum(1 for _ in store.events())
    finally:
        store.close()


def _ask(port: int) -> str:
    """One answer on a fresh connection (a worker is chosen per connection); its ProduceID."""
    with httpx.Client(timeout=15) as client:
        body = {"model": "tiny", "messages": MESSAGES, "tokens": 2}
        answer = client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
    assert answer.status_code == 200
    return answer.headers["aigc-produceid"]


def _ask_streamed(port: int) -> str:
    with httpx.Client(timeout=15) as client:
        body = {"model": "tiny", "messages": MESSAGES, "tokens": 3, "stream": True}
        with client.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as answer:
            assert answer.status_code == 200 and b"[DONE]" in answer.read()
            return answer.headers["aigc-produceid"]


@pytest.mark.slow
def test_workers_share_the_port_record_each_answer_once_and_are_replaced(
    upstream: tuple[str, Upstream], tmp_path: Path
) -> None:
    port = free_port()
    db = tmp_path / "audit.sqlite"
    command = [sys.executable, "-m", "aigclabel", "gateway", "--upstream", upstream[0], "-p", DEMO_PROVIDER_CODE,
               "--port", str(port), "--db", str(db), "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    asked: list[str] = []
    try:
        wait_for_http(f"http://127.0.0.1:{port}/aigclabel/health", process)
        _wait_for(lambda: len(_workers(process.pid)) == 2, 60)
        first, second = sorted(_workers(process.pid))
        # With one worker stopped, the other alone takes the port's connections: each serves by itself.
        for stopped in (first, second):
            os.kill(stopped, signal.SIGSTOP)
            try:
                asked += [_ask(port), _ask_streamed(port)]
            finally:
                with contextlib.suppress(ProcessLookupError):  # uvicorn kills a worker silent for 5 s
                    os.kill(stopped, signal.SIGCONT)
        asked += [_ask(port) if n % 2 else _ask_streamed(port) for n in range(16)]
        # Events are written after the answer's last byte: a worker killed with -9 loses the ones still queued
        # (as a single process would), so it is killed once they are in.
        _wait_for(lambda: _recorded(db) == len(asked), 30)
        with contextlib.suppress(ProcessLookupError):  # (already replaced if it was silent too long)
            os.kill(first, signal.SIGKILL)  # uvicorn's supervisor starts a new worker in its place
        _wait_for(lambda: len(_workers(process.pid) - {first}) == 2, 60)
        originals = _workers(process.pid) & {first, second}
        for pid in originals:
            os.kill(pid, signal.SIGSTOP)
        try:
            asked.append(_ask(port))  # served by the replacement
        finally:
            for pid in originals:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
    finally:
        process.terminate()
        assert process.wait(30) == 0
    assert _workers(process.pid) == set()
    store = AuditStore(db)
    recorded = [e.produce_id for e in store.events()]
    store.close()
    # Every answer once, whichever worker served it (the killed worker had nothing left to write).
    assert sorted(recorded) == sorted(asked) and len(set(asked)) == len(asked) == 21


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(upstream: tuple[str, Upstream], tmp_path: Path) -> None:
    """Killed with -9, the supervisor stops no worker and removes no folder: its workers notice, stop, and
    remove the image folder they shared."""
    port = free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "aigclabel", "gateway", "--upstream", upstream[0], "-p", DEMO_PROVIDER_CODE,
               "--port", str(port), "--no-audit", "--workers", "2"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(scratch)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wait_for_http(f"http://127.0.0.1:{port}/aigclabel/health", process)
    _wait_for(lambda: len(_workers(process.pid)) == 2, 60)
    children = _workers(process.pid)
    assert len(list(scratch.glob("aigclabel-gateway-images-*"))) == 1
    process.kill()  # kill -9: no chance to stop its workers; they notice and stop themselves
    process.wait()
    try:
        _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 30)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_workers_serve_each_others_url_images_and_leave_no_folder(
    upstream: tuple[str, Upstream], tmp_path: Path
) -> None:
    """With ``--workers 2`` a client fetches a ``url`` image on a new connection, which either worker may
    take: every image is served whichever worker made it, and the shared folder goes with the supervisor."""
    port = free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "aigclabel", "gateway", "--upstream", upstream[0], "-p", DEMO_PROVIDER_CODE,
               "--port", str(port), "--no-audit", "--workers", "2"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(scratch)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/aigclabel/health", process)
        _wait_for(lambda: len(_workers(process.pid)) == 2, 60)
        made: list[tuple[str, str]] = []
        for _ in range(8):  # each on its own connection, so on either worker
            with httpx.Client(timeout=30) as client:
                answer = client.post(
                    f"http://127.0.0.1:{port}/v1/images/generations",
                    json={"model": "tiny", "prompt": "a cat", "response_format": "url"},
                )
            assert answer.status_code == 200, answer.text
            (item,) = answer.json()["data"]
            made.append((item["url"], item["aigc"]["ProduceID"]))
        for image_url, produce_id in made:  # on a new connection again: not always the worker that made it
            with httpx.Client(timeout=30) as client:
                fetched = client.get(image_url)
            assert fetched.status_code == 200, fetched.text
            _check_file(fetched.content, ".png", tmp_path, produce_id)
        (folder,) = scratch.glob("aigclabel-gateway-images-*")
        assert len(list(folder.iterdir())) == len(made)
        with httpx.Client(timeout=30) as client:
            missing = client.get(made[0][0].rsplit("/", 1)[0] + "/..%2F..%2Fetc%2Fpasswd")
        assert missing.status_code == 404
    finally:
        process.terminate()
        assert process.wait(30) == 0
    assert list(scratch.iterdir()) == []
