"""Load test of the HTTP service on loopback: verify (or inspect) of a 1 MB JPEG at 64 connections.

Starts ``aigclabel serve`` on a free 127.0.0.1 port, drives it with wrk (Debian package) for a fixed
time, and prints requests/s and latency percentiles next to the same operation called in-process,
so the figure reads as "HTTP overhead relative to the library".

With ``--mix`` it measures instead what hostile uploads do to everyone else: 64 asyncio clients post the
labelled JPEG to ``/v1/verify`` for a fixed time, once alone and once with a quarter of the requests
being decode bombs (a 7000x7000 PNG of ~150 KB, a FLAC declaring 384 kHz x 130 s, a four-minute 1080p
MP4). It prints the normal uploads' p50/p99 in both runs and their ratio (the target is at most 2x).

    python bench/service.py [--seconds 15] [--connections 64] [--workers 2] [--endpoint verify]
    python bench/service.py --mix [--seconds 20] [--connections 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, inspect, write_label


def make_jpeg(path: Path, target_bytes: int = 1 << 20) -> None:
    """A noisy photo-like JPEG of about ``target_bytes``."""
    rng = np.random.default_rng(7)
    side = 900
    while True:
        base = rng.integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((side, side), Image.Resampling.BICUBIC)
        noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 12, (side, side, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
        if buffer.tell() >= target_bytes:
            path.write_bytes(buffer.getvalue())
            return
        side += 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"service did not start at {url}")


def in_process_rate(path: Path, operation: str, seconds: float = 5.0) -> float:
    if operation == "verify":
        from aigclabel.verify import classify

        def call() -> object:
            return classify(path)
    else:

        def call() -> object:
            return inspect(path)

    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - started)


def make_bombs(work: Path) -> list[tuple[str, bytes]]:
    """The three decode bombs of the hostile review, small on the wire and huge to decode."""
    import struct
    import zlib

    import av

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    side, deflate = 7000, zlib.compressobj(9)
    pixels = b"".join(deflate.compress(b"\0" * (side * 3 + 1)) for _ in range(side)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")

    flac_path = work / "bomb.flac"
    with av.open(str(flac_path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=384_000, layout="mono")
        silence = np.zeros((1, 384_000), dtype=np.int16)
        for second in range(130):
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.rate, frame.pts = 384_000, second * 384_000
            for packet in stream.encode(frame):  # type: ignore[attr-defined]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[attr-defined]
            out.mux(packet)

    mp4_path = work / "bomb.mp4"
    with av.open(str(mp4_path), "w") as out:
        video = out.add_stream("libx264", rate=10, options={"preset": "ultrafast", "crf": "40", "g": "250"})
        video.width, video.height, video.pix_fmt = 1920, 1080, "yuv420p"  # type: ignore[attr-defined]
        still = np.full((1080, 1920, 3), 90, dtype=np.uint8)
        for index in range(240 * 10):
            frame = av.VideoFrame.from_ndarray(still, format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):  # type: ignore[attr-defined]
                out.mux(packet)
        for packet in video.encode(None):  # type: ignore[attr-defined]
            out.mux(packet)
    return [("bomb.png", png), ("bomb.flac", flac_path.read_bytes()), ("bomb.mp4", mp4_path.read_bytes())]


async def _post(port: int, name: str, body: bytes) -> int:
    """One POST /v1/verify over a fresh connection; returns the status."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/verify?filename={name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1])


def drive(port: int, seconds: float, clients: int, normal: bytes, bombs: list[tuple[str, bytes]]) -> dict[str, list]:  # type: ignore[type-arg]
    """``clients`` loops posting for ``seconds``; every fourth request of a client is a bomb when ``bombs``."""
    import asyncio

    results: dict[str, list] = {"normal": [], "bomb": [], "status": []}  # type: ignore[type-arg]

    async def client(index: int) -> None:
        deadline = time.monotonic() + seconds
        turn = index
        while time.monotonic() < deadline:
            turn += 1
            bomb = bool(bombs) and turn % 4 == 0
            name, body = bombs[turn % len(bombs)] if bomb else ("photo.jpg", normal)
            started = time.perf_counter()
            status = await _post(port, name, body)
            results["bomb" if bomb else "normal"].append(time.perf_counter() - started)
            results["status"].append(status)

    async def everyone() -> None:
        await asyncio.gather(*(client(i) for i in range(clients)))

    asyncio.run(everyone())
    return results


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def mixed(args: argparse.Namespace, work: Path, photo: Path) -> None:
    """The --mix figure: normal uploads' latency without and with decode bombs among them."""
    from collections import Counter

    bombs = make_bombs(work)
    port = free_port()
    server = start_server(port, args.workers, work, queue=args.connections)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz")
        normal = photo.read_bytes()
        drive(port, 3, args.connections, normal, [])  # warm-up
        alone = drive(port, args.seconds, args.connections, normal, [])
        mixed_run = drive(port, args.seconds, args.connections, normal, bombs)
    finally:
        stop_server(server)
    print(f"/v1/verify, {args.connections} clients, {args.workers} workers, {args.seconds} s per run")
    print("  bombs: " + ", ".join(f"{name} {len(body) / 1e3:.0f} KB" for name, body in bombs))
    for label, run in (("no bombs", alone), ("1/4 bombs", mixed_run)):
        print(
            f"  {label:9}: normal n={len(run['normal'])} p50 {_percentile(run['normal'], 50) * 1e3:.0f} ms "
            f"p99 {_percentile(run['normal'], 99) * 1e3:.0f} ms; bombs n={len(run['bomb'])} "
            f"p99 {_percentile(run['bomb'], 99) * 1e3:.0f} ms; statuses {dict(Counter(run['status']))}"
        )
    ratio = _percentile(mixed_run["normal"], 99) / _percentile(alone["normal"], 99)
    print(f"  normal p99 with bombs / without: {ratio:.2f} (target <= 2)")


def start_server(port: int, workers: int, work: Path, queue: int | None = None) -> subprocess.Popen[bytes]:
    """``aigclabel serve`` on loopback with its audit log in ``work``."""
    env = {**os.environ, "AIGCLABEL_API_KEYS": ""}
    command = [sys.executable, "-m", "aigclabel", "serve", "--port", str(port), "--workers", str(workers),
               "--db", str(work / "audit.sqlite")]  # fmt: skip
    if queue is not None:
        command += ["--queue", str(queue)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--endpoint", default="verify", choices=["verify", "inspect"])
    parser.add_argument("--mix", action="store_true", help="normal uploads with and without decode bombs")
    args = parser.parse_args()
    if args.mix:
        work = Path(tempfile.mkdtemp(prefix="aigclabel-bench-"))
        photo = work / "photo.jpg"
        make_jpeg(photo)
        write_label(photo, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
        try:
            mixed(args, work, photo)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="aigclabel-bench-"))
    photo = work / "photo.jpg"
    make_jpeg(photo)
    write_label(photo, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        f'local f = io.open("{photo}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    port = free_port()
    server = start_server(port, args.workers, work, queue=args.connections)  # every request served, none shed
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/v1/{args.endpoint}?filename=photo.jpg"
        threads = min(args.connections, 2)
        result = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(args.connections), "-d", f"{args.seconds}s", "--latency",
             "-s", str(script), url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        stop_server(server)
    text = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+(\S+)", text).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", text).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    local = in_process_rate(photo, args.endpoint)
    size = photo.stat().st_size
    print(f"{args.endpoint} of a {size / 1e6:.2f} MB JPEG, {args.connections} connections, {args.workers} workers")
    print(f"  HTTP      : {rps:8.1f} req/s   p50 {p50}   p99 {p99}   non-2xx {errors.group(1) if errors else 0}")
    print(f"  in-process: {local:8.1f} calls/s (one process)")
    print(f"  ratio HTTP / in-process: {rps / local:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
