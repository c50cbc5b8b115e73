"""Hostile traffic against a service binary, measured from outside (RELIABILITY.md, "Hostile
traffic"). Needs no broker: the service serves HTTP while Kafka is away, which is the worst case
for bodies waiting on it.

Usage: python3 scripts/hostile.py BINARY [--silent N] [--preface N] [--bodies N]

The service starts with the usual soft limit of 1,024 open files. 1. N silent connections and N
   that send only the HTTP/2 preface, opened at once, with HTTP_HEADER_TIMEOUT_MS=2000: how many are still open 1 s after the header timeout, when the
   last one closed, and whether /api/events/health/live answered on a new connection every 50 ms
   meanwhile.
2. N concurrent POSTs of 900 KiB (a valid movie plus a large array in a field no parser reads),
   KAFKA_DELIVERY_TIMEOUT_MS=1000: the statuses and the peak resident memory (VmHWM).

Prints one table row per measurement; exits 1 when the service breaks a promise (a connection
open past the header timeout plus a second, a failed liveness probe, more than 200 MiB)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import socket
import subprocess
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def usual_file_limit():
    """The service starts with the soft open-file limit most systems give a process, 1,024 (the
    hard limit stays): what it does about that is part of what is measured."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


class Service:
    """The binary, started with no broker on a port of its own, its stdout drained."""

    def __init__(self, binary: str, env: dict[str, str]):
        self.port = free_port()
        dead_broker = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [binary],
            env={"PORT": str(self.port), "HOST": "127.0.0.1", "KAFKA_BROKERS": dead_broker,
                 "LOG_LEVEL": "warn", **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=usual_file_limit)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} did not listen on {self.port}")
                time.sleep(0.05)

    def peak_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            kib = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))
        return kib / 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(25)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def closed_after(reader: asyncio.StreamReader, opened: float, within: float) -> float:
    try:
        async with asyncio.timeout(within):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return float("inf")
    except OSError:
        pass
    return time.monotonic() - opened


async def probe_liveness(port: int, until: float) -> list[bool]:
    answers = []
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 2)
            writer.write(b"GET /api/events/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            line = await asyncio.wait_for(reader.readline(), 2)
            answers.append(line.startswith(b"HTTP/1.1 200"))
            writer.close()
        except (OSError, TimeoutError):
            answers.append(False)
        await asyncio.sleep(0.05)
    return answers


async def connections(binary: str, silent: int, preface: int) -> tuple[list, bool]:
    header_timeout = 2.0
    service = Service(binary, {"HTTP_HEADER_TIMEOUT_MS": str(int(header_timeout * 1000))})
    try:
        probing = asyncio.create_task(probe_liveness(service.port, time.monotonic() + header_timeout + 3))
        async def hold(preface: bool):
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", service.port), 3)
            except (OSError, TimeoutError):
                return None  # not accepted
            opened = time.monotonic()
            if preface:
                writer.write(PREFACE)
            closed = await closed_after(reader, opened, 20)
            writer.close()
            return closed

        outcomes = await asyncio.gather(*(hold(n >= silent) for n in range(silent + preface)))
        closes = [c for c in outcomes if c is not None]
        refused = len(outcomes) - len(closes)
        answers = await probing
    finally:
        service.stop()
    late = [c for c in closes if c > header_timeout + 1]
    slowest = max(closes) if closes else 0
    row = [f"{silent} silent + {preface} preface-only connections, header timeout 2 s",
           f"{len(late)} open after 3 s" + (f", {refused} not accepted within 3 s" if refused else ""),
           "never (20 s)" if slowest == float("inf") else f"{slowest:.2f} s",
           f"{sum(answers)}/{len(answers)} liveness probes answered"]
    return row, not late and all(answers) and not refused


def padded_movie(size: int) -> bytes:
    head = b'{"movie_id": 1, "title": "Padded", "action": "viewed", "padding": ['
    items = (size - len(head) - 2) // 2
    return head + b",".join([b"1"] * items) + b"]}"


async def post(port: int, body: bytes) -> int:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/events/movie HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        return int(line.split()[1])
    except (OSError, TimeoutError, IndexError, ValueError):
        return 0


async def bodies(binary: str, count: int) -> tuple[list, bool]:
    service = Service(binary, {"KAFKA_DELIVERY_TIMEOUT_MS": "1000"})
    try:
        body = padded_movie(900 * 1024)
        started = time.monotonic()
        statuses = await asyncio.gather(*(post(service.port, body) for _ in range(count)))
        took = time.monotonic() - started
        peak = service.peak_mib()
    finally:
        service.stop()
    tally = {s: statuses.count(s) for s in sorted(set(statuses))}
    row = [f"{count} concurrent 900 KiB bodies, broker away",
           ", ".join(f"{n}× {s or 'no answer'}" for s, n in tally.items()),
           f"{took:.1f} s", f"peak resident {peak:.0f} MiB"]
    return row, peak < 200 and 0 not in tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--silent", type=int, default=3000)
    parser.add_argument("--preface", type=int, default=1000)
    parser.add_argument("--bodies", type=int, default=100)
    args = parser.parse_args()
    wanted = args.silent + args.preface + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    ok = True
    for measure in (lambda: connections(args.binary, args.silent, args.preface),
                    lambda: bodies(args.binary, args.bodies)):
        row, passed = asyncio.run(measure())
        ok &= passed
        print("| " + " | ".join(row) + f" | {'ok' if passed else 'FAILED'} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
