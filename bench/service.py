"""Load test of the HTTP service on loopback: verify (or inspect) of a 1 MB JPEG at 64 connections.

Starts ``aigclabel serve`` on a free 127.0.0.1 port, drives it with wrk (Debian package) for a fixed
time, and prints requests/s and latency percentiles next to the same operation called in-process,
so the figure reads as "HTTP overhead relative to the library".

    python bench/service.py [--seconds 15] [--connections 64] [--workers 2] [--endpoint verify]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--endpoint", default="verify", choices=["verify", "inspect"])
    args = parser.parse_args()
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
    env = {**os.environ, "AIGCLABEL_API_KEYS": ""}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aigclabel",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--db",
            str(work / "audit.sqlite"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
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
