"""Hostile traffic against a service binary, measured from outside (RELIABILITY.md, "Hostile
traffic"). Needs no broker: the service serves HTTP while Kafka is away, which is the worst case
for bodies waiting on it.

Usage: python3 scripts/hostile.py BINARY [--silent N] [--preface N] [--bodies N]
(scripts/hostile.sh builds the binary and runs this, as CI does.)

The service starts with the usual soft limit of 1,024 open files. 1. N silent connections and N
   that send only the HTTP/2 preface, opened at once, with HTTP_HEADER_TIMEOUT_MS=2000: how many are still open 1 s after the header timeout, when the
   last one closed, and whether /api/events/health/live answered on a new connection every 50 ms
   meanwhile.
2. N concurrent POSTs of 900 KiB (a valid movie plus a large array in a field no parser reads),
   KAFKA_DELIVERY_TIMEOUT_MS=1000: the statuses and the peak resident memory (VmHWM).

Prints one table row per measurement, then `hostile: N passed, N failed`; exits 1 when the
service breaks a promise (a connection open past the header timeout plus a second, a failed
liveness probe, more than 200 MiB, an exit status other than 0 on SIGTERM afterwards)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time

from harness import Failure, Service, free_port

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def usual_file_limit():
    """The service starts with the soft open-file limit most systems give a process, 1,024 (the
    hard limit stays): what it does about that is part of what is measured."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


def start(binary: str, env: dict[str, str]) -> Service:
    """The binary on a port of its own, with no broker where its KAFKA_BROKERS points."""
    return Service({"KAFKA_BROKERS": f"127.0.0.1:{free_port()}", "LOG_LEVEL": "warn", **env},
                   binary=binary, health="live", preexec_fn=usual_file_limit).start(30)


def stopped(service: Service) -> tuple[bool, str]:
    """SIGTERM; whether it exited 0 within 25 s, and what to say when not."""
    try:
        code, took = service.stop(25)
    except Failure as failure:
        return False, f"the service is {failure}"
    return code == 0, f"the service exited with {code} {took:.1f} s after SIGTERM"


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
    service = start(binary, {"HTTP_HEADER_TIMEOUT_MS": str(int(header_timeout * 1000))})
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
        exited, exit_note = stopped(service)
    late = [c for c in closes if c > header_timeout + 1]
    slowest = max(closes) if closes else 0
    row = [f"{silent} silent + {preface} preface-only connections, header timeout 2 s",
           f"{len(late)} open after 3 s" + (f", {refused} not accepted within 3 s" if refused else ""),
           "never (20 s)" if slowest == float("inf") else f"{slowest:.2f} s",
           f"{sum(answers)}/{len(answers)} liveness probes answered"
           + ("" if exited else f"; {exit_note}")]
    return row, not late and all(answers) and not refused and exited


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
    service = start(binary, {"KAFKA_DELIVERY_TIMEOUT_MS": "1000"})
    try:
        body = padded_movie(900 * 1024)
        started = time.monotonic()
        statuses = await asyncio.gather(*(post(service.port, body) for _ in range(count)))
        took = time.monotonic() - started
        peak = service.memory_mib("VmHWM")
    finally:
        exited, exit_note = stopped(service)
    tally = {s: statuses.count(s) for s in sorted(set(statuses))}
    row = [f"{count} concurrent 900 KiB bodies, broker away",
           ", ".join(f"{n}× {s or 'no answer'}" for s, n in tally.items()),
           f"{took:.1f} s", f"peak resident {peak:.0f} MiB" + ("" if exited else f"; {exit_note}")]
    return row, peak < 200 and 0 not in tally and exited


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
    results = []
    for measure in (lambda: connections(args.binary, args.silent, args.preface),
                    lambda: bodies(args.binary, args.bodies)):
        row, passed = asyncio.run(measure())
        results.append(passed)
        print("| " + " | ".join(row) + f" | {'ok' if passed else 'FAILED'} |", flush=True)
    print(f"hostile: {results.count(True)} passed, {results.count(False)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
