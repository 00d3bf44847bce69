"""The service as operators run it: ``aigclabel serve`` on a loopback port, driven over raw sockets.

What only a real server shows: a request head that never completes, a body that dribbles, a request
uvicorn itself cannot parse, SIGTERM, and ``--workers`` children whose supervisor is killed. Limits are
set small through the environment so each case takes about a second.
"""

from __future__ import annotations

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

import pytest

from ._tools import free_port
from .test_service_hostile import PNG

pytestmark = pytest.mark.interop  # real server processes on loopback

BODY_LIMITS = {
    "AIGCLABEL_HEADER_SECONDS": "1",
    "AIGCLABEL_BODY_IDLE_SECONDS": "1",
    "AIGCLABEL_BODY_GRACE_SECONDS": "1",
    "AIGCLABEL_MIN_BODY_RATE": "1000",
    "AIGCLABEL_GRACEFUL_SECONDS": "2",
}


def _start(tmp: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, **BODY_LIMITS, "AIGCLABEL_API_KEYS": "", "AIGCLABEL_WORK_DIR": str(tmp)}
    command = [sys.executable, "-m", "aigclabel", "serve", "--port", str(port), "--db", str(tmp / "audit.sqlite")]
    process = subprocess.Popen([*command, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):  # up to 60 s on a loaded machine
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if probe.recv(100).startswith(b"HTTP/1.1 200"):
                    return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server did not start: {process.stderr.read() if process.stderr else b''!r}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = _start(tmp_path_factory.mktemp("serve"))
    yield port
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)  # bounded graceful shutdown


def _exchange(port: int, data: bytes, *, then: bytes = b"", every: float = 0.0, wait: float = 10.0) -> bytes:
    """Send ``data`` (then ``then`` one byte every ``every`` seconds) and return everything the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        for byte in then:
            time.sleep(every)
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def _error_of(answer: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_request_head_that_never_completes_is_closed(server: int) -> None:
    status, body = _error_of(_exchange(server, b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow"))
    assert status == 408 and body["error"] == "timeout"


def test_unparsable_request_gets_the_json_error_shape(server: int) -> None:
    status, body = _error_of(_exchange(server, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400 and set(body) == {"error", "detail"}


def test_stalled_and_dribbling_bodies_are_closed(server: int) -> None:
    head = (
        b"POST /v1/verify?filename=a.png HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    )
    status, body = _error_of(_exchange(server, head + b"ab"))
    assert status == 408 and "no body data" in body["detail"]
    status, body = _error_of(_exchange(server, head, then=b"x" * 20, every=0.4))
    assert status == 408 and "slower than" in body["detail"]


def test_normal_upload_still_works(server: int) -> None:
    head = (
        b"POST /v1/verify?filename=a.png HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(PNG)
    )
    answer = _exchange(server, head + PNG)
    assert answer.startswith(b"HTTP/1.1 200") and b"x-content-type-options: nosniff" in answer


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    process, _port = _start(tmp_path, "--workers", "2")
    children = [
        int(pid)
        for pid in subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    ]
    assert children
    process.kill()  # kill -9: no chance to stop its workers
    process.wait()
    for _ in range(150):
        alive = [pid for pid in children if Path(f"/proc/{pid}").exists() and _running(pid)]
        if not alive:
            return
        time.sleep(0.2)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"workers {alive} outlived their supervisor")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def _served_connection(protocol: type) -> Iterator[tuple[socket.socket, Any]]:
    """A client socket and the server-side protocol object of its connection, served by uvicorn with
    ``protocol`` on the asyncio loop from a listening socket made the way uvicorn's ``--workers``
    supervisor makes it (protocol number 0); the app answers the size of the body it read."""
    import threading

    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size, more = size + len(message.get("body", b"")), message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % size})

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=protocol, loop="asyncio", lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.01)
        with socket.create_connection(sock.getsockname(), timeout=10) as client:
            while not server.server_state.connections:
                time.sleep(0.01)
            (connection,) = server.server_state.connections
            yield client, connection
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _nodelay_of_served_connection(protocol: type) -> int:
    with _served_connection(protocol) as (_, connection):
        return int(connection.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def _answer_to_one_read(protocol: type, data: bytes) -> bytes:
    """What the server answers when ``data`` reaches its protocol in one read (fed to it on its loop)."""
    with _served_connection(protocol) as (client, connection):
        connection.loop.call_soon_threadsafe(connection.data_received, data)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        return answer


def test_a_body_read_with_its_head_is_not_taken_for_a_huge_head() -> None:
    """The 64 KiB bound is on the request head: a large body that arrives in the same read as its head
    reaches the app (a 431 for it was a bug), while a head still incomplete past it is refused: 431 on
    httptools, which has no bound of its own, 400 on h11, whose own bound (16 KiB) comes first."""
    from aigclabel.gateway.server import GatewayProtocol
    from aigclabel.service.server import GuardedH11Protocol

    body = bytes(300_000)
    head = b"POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    endless = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 70_000
    for protocol in (GuardedH11Protocol, GatewayProtocol):
        answer = _answer_to_one_read(protocol, head + body)
        assert answer.startswith(b"HTTP/1.1 200") and b"\r\n300000\r\n" in answer, answer[:200]
        refusal = b"HTTP/1.1 431" if protocol is GatewayProtocol else b"HTTP/1.1 400"
        assert _answer_to_one_read(protocol, endless).startswith(refusal)


def test_workers_connections_have_nagle_off() -> None:
    """asyncio turns Nagle's algorithm off only on sockets whose protocol number says TCP; the socket uvicorn
    shares with ``--workers`` says 0, so each small write waited for the client's delayed ACK (40 ms).
    The service's and the gateway's protocols turn it off on every connection."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from aigclabel.gateway.server import GatewayProtocol
    from aigclabel.service.server import GuardedH11Protocol

    assert _nodelay_of_served_connection(H11Protocol) == 0  # what `serve --workers` had
    assert _nodelay_of_served_connection(GuardedH11Protocol) == 1
    assert _nodelay_of_served_connection(GatewayProtocol) == 1
