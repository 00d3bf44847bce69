"""What the labelling gateway costs a streamed LLM answer: added time to the first token, and token throughput.

Starts the test upstream (``tests/openai_upstream.py``, a server speaking the OpenAI wire format) and
``aigclabel gateway`` in front of it, each in its own process on a free 127.0.0.1 port, then streams
``/v1/chat/completions`` from both with httpx, alternating direct and gateway requests so drift in the
machine's load hits both alike:

* **first token**: time from sending the request to receiving the first answer token (``word0``), with
  the upstream taking ``--prefill`` seconds before it; the gateway's label arrives with the upstream's
  first chunk, before that. Reported as the median and p90 of the difference gateway - direct.
* **throughput**: ``--streams`` concurrent answers of ``--tokens`` tokens each, the upstream sending
  as fast as it can; tokens received per second through each path. Once with every process free to use
  every core (on a 2-core machine the gateway then takes CPU from the upstream and the client, which a
  real model server's would not give up), once with the gateway on a core of its own and the upstream and
  the client sharing the other; then ``--paced-streams`` answers at a model's pace (``--paced-delay``).

    python bench/gateway.py [--requests 200] [--tokens 2000] [--streams 8] [--paced-streams 200] [--text-mark]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aigclabel import DEMO_PROVIDER_CODE  # noqa: E402

MESSAGES = [{"role": "user", "content": "hello"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early: {process.args}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server not ready: {url}")


def serve_upstream(port: int) -> None:
    """Run the test upstream in this process (the benchmark starts itself with --serve-upstream)."""
    import uvicorn

    from tests.openai_upstream import create_upstream

    uvicorn.run(create_upstream(), host="127.0.0.1", port=port, log_level="warning")


async def first_token(client: httpx.AsyncClient, base: str, prefill: float) -> float:
    """Seconds from sending the request to the first answer token."""
    body = {"model": "tiny", "messages": MESSAGES, "stream": True, "tokens": 4, "first_delay": prefill}
    start = time.perf_counter()
    async with client.stream("POST", base + "/v1/chat/completions", json=body) as answer:
        seen = -1.0
        async for data in answer.aiter_bytes():
            if seen < 0 and b"word0" in data:
                seen = time.perf_counter() - start
    return seen


async def stream_tokens(client: httpx.AsyncClient, base: str, tokens: int, delay: float) -> int:
    """Read one streamed answer to its end; the number of token events received."""
    body = {"model": "tiny", "messages": MESSAGES, "stream": True, "tokens": tokens, "delay": delay}
    token = b'"content":"word'
    count, tail = 0, b""
    async with client.stream("POST", base + "/v1/chat/completions", json=body) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"{base}: HTTP {answer.status_code} {(await answer.aread())[:300]!r}")
        async for data in answer.aiter_bytes():
            # a token cut between two reads is counted once: the tail is too short to hold a whole one
            window = tail + data
            count += window.count(token)
            tail = window[-(len(token) - 1) :]
    return count


async def throughput(base: str, streams: int, tokens: int, delay: float) -> float:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=streams)) as client:
        start = time.perf_counter()
        counts = await asyncio.gather(*(stream_tokens(client, base, tokens, delay) for _ in range(streams)))
        elapsed = time.perf_counter() - start
    if sum(counts) != streams * tokens:
        raise SystemExit(f"{base}: received {sum(counts)} tokens, expected {streams * tokens}")
    return sum(counts) / elapsed


def family(pid: int) -> list[int]:
    """A process and its children (the gateway's ``--workers`` processes), from Linux /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its children have used (Linux /proc)."""
    total = 0
    for member in family(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def measure(args: argparse.Namespace, direct: str, gateway: str, pids: dict[str, int]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for base in (direct, gateway):  # warm both connection pools
            await first_token(client, base, 0.0)
        gaps, plain, labelled = [], [], []
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        for _ in range(args.requests):
            a = await first_token(client, direct, args.prefill)
            b = await first_token(client, gateway, args.prefill)
            plain.append(a)
            labelled.append(b)
            gaps.append(b - a)
    served = {"gateway": args.requests, "upstream": 2 * args.requests}  # the upstream serves both paths
    request_cpu = {name: (cpu_seconds(pid) - before[name]) / served[name] for name, pid in pids.items()}
    gaps.sort()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"first token, {args.requests} requests, upstream prefill {args.prefill * 1000:.0f} ms:")
    print(f"  direct  median {statistics.median(plain) * 1000:7.2f} ms")
    print(f"  gateway median {statistics.median(labelled) * 1000:7.2f} ms")
    print(f"  added   median {statistics.median(gaps) * 1000:7.2f} ms   p90 {gaps[int(0.9 * len(gaps))] * 1000:.2f} ms")
    print("  CPU time per request (a whole 4-token answer; the gateway's includes its audit record):")
    for name, seconds in request_cpu.items():
        print(f"    {name:8s} {seconds * 1000:.2f} ms")
    summary = {"first token added (median)": f"{statistics.median(gaps) * 1000:.2f} ms"}
    summary["gateway CPU per request"] = f"{request_cpu['gateway'] * 1000:.2f} ms"
    summary["full speed, cores shared"] = await compare(
        "as fast as the upstream can, all processes sharing the cores", args, direct, gateway, pids, 0.0
    )
    if len(os.sched_getaffinity(0)) >= 2:
        # The deployment a proxy has: the model server's CPU is not the proxy's. The client and the upstream
        # share core 0 in both paths; the gateway alone gets core 1.
        os.sched_setaffinity(0, {0})
        os.sched_setaffinity(pids["upstream"], {0})
        for pid in family(pids["gateway"]):
            os.sched_setaffinity(pid, {1})
        await compare("as fast as the upstream can, the gateway on a core of its own", args, direct, gateway, pids, 0.0)
        everywhere = set(range(os.cpu_count() or 1))
        for pid in (0, pids["upstream"], *family(pids["gateway"])):
            os.sched_setaffinity(pid, everywhere)
    paced = argparse.Namespace(**{**vars(args), "streams": args.paced_streams, "tokens": args.paced_tokens})
    summary["paced"] = await compare(
        f"{args.paced_streams} answers at a model's pace", paced, direct, gateway, pids, args.paced_delay,
        request_cpu=request_cpu,
    )  # fmt: skip
    print(f"summary (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    for name, value in summary.items():
        print(f"  {name:28s} {value}")


async def compare(
    title: str,
    args: argparse.Namespace,
    direct: str,
    gateway: str,
    pids: dict[str, int],
    delay: float,
    request_cpu: dict[str, float] | None = None,
) -> str:
    """Token throughput direct and through the gateway, alternating rounds; the gateway's CPU per token
    (with ``request_cpu``, also net of each answer's per-request cost: what one more token costs)."""
    rates: dict[str, list[float]] = {"direct": [], "gateway": []}
    cpu = dict.fromkeys(pids, 0.0)
    for _ in range(args.rounds):
        rates["direct"].append(await throughput(direct, args.streams, args.tokens, delay))
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        rates["gateway"].append(await throughput(gateway, args.streams, args.tokens, delay))
        for name, pid in pids.items():
            cpu[name] += cpu_seconds(pid) - before[name]
    d, g = statistics.median(rates["direct"]), statistics.median(rates["gateway"])
    pace = "no delay" if delay == 0 else f"one token per {delay * 1000:g} ms per answer"
    print(f"throughput, {title}: {args.streams} answers x {args.tokens} tokens, {pace}, median of {args.rounds}:")
    print(f"  direct  {d:9.0f} tokens/s")
    print(f"  gateway {g:9.0f} tokens/s   ({100 * g / d:.1f} % of direct)")
    total = args.rounds * args.streams * args.tokens
    print("  CPU time per streamed token in the gateway runs (independent of other load on the machine):")
    for name, seconds in cpu.items():
        line = f"    {name:8s} {seconds / total * 1e6:6.1f} us"
        if request_cpu is not None:
            answers = args.rounds * args.streams
            net = (seconds - answers * request_cpu[name]) / total
            line += f"   ({net * 1e6:.1f} us beyond the per-request cost measured above)"
        print(line)
    per_token = cpu["gateway"] / total * 1e6
    return f"{100 * g / d:.1f} % of direct; gateway CPU {per_token:.1f} us per token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="first-token requests per path")
    parser.add_argument("--prefill", type=float, default=0.02, help="upstream's delay before the first token (s)")
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per streamed answer")
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams in the throughput test")
    parser.add_argument("--paced-streams", type=int, default=200, help="concurrent answers in the paced test")
    parser.add_argument("--paced-tokens", type=int, default=100, help="tokens per answer in the paced test")
    parser.add_argument("--paced-delay", type=float, default=0.02, help="the paced upstream's delay between tokens (s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--text-mark", action="store_true", help="also insert the invisible Unicode mark")
    parser.add_argument("--no-audit", action="store_true", help="run the gateway without its audit store")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the gateway under test")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    up_port, gw_port = free_port(), free_port()
    direct, gateway = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    with tempfile.TemporaryDirectory() as scratch:
        upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)], env=env)
        command = [sys.executable, "-m", "aigclabel", "gateway", "--upstream", direct, "-p", DEMO_PROVIDER_CODE,
                   "--port", str(gw_port), "--db", str(Path(scratch) / "audit.sqlite")]  # fmt: skip
        if args.text_mark:
            command.append("--text-mark")
        if args.no_audit:
            command.append("--no-audit")
        if args.workers > 1:
            command += ["--workers", str(args.workers)]
        proxy = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(direct + "/v1/models", upstream)
            wait_ready(gateway + "/aigclabel/health", proxy)
            asyncio.run(measure(args, direct, gateway, {"gateway": proxy.pid, "upstream": upstream.pid}))
        finally:
            for process in (proxy, upstream):
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    main()
