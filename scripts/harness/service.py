"""The service's release binary, built once and run the way every script and suite runs it.

`build()` gives the binary: `$EVENTS_SERVICE_BINARY` when it is set (so that CI builds once and
every step reuses that build), else what `cargo build` makes, a no-op when it is up to date.

`Service` runs it (or a command that runs it, such as scripts/run.sh) on a free loopback port
that the harness picks, so that the address is known without reading the log; with the caller's
variables and none of the service's own inherited from the caller's environment; its output in a
file, whose end every failure quotes. `start()` polls the health route the caller names with a
deadline; `stop()` sends SIGTERM and waits with a deadline.

Stdlib only: it runs under any Python 3.9 or newer, a script's virtualenv or the system's.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent.parent
# The one build command: the Dockerfile's too (scripts/containers.py holds them together).
BUILD = ["cargo", "build", "--locked", "--release", "--bin", "events-service"]
BUILT = ROOT / "target/release/events-service"
# Set to an executable to run that instead of building (CI builds once, then sets it).
PREBUILT = "EVENTS_SERVICE_BINARY"
# The variables the service reads (every one src/config/ documents matches). None is inherited
# from the caller's environment: a KAFKA_BROKERS, AUTH_* or RATE_LIMIT_* left set in a shell would
# otherwise change what a check checks (a 401 or a 429 where it expects a 201). Callers set what
# they need.
SERVICE_VARIABLES = re.compile(
    r"(HOST|PORT|SHUTDOWN_TIMEOUT_MS|(AUTH|KAFKA|RDKAFKA|HTTP|RATE_LIMIT|OTEL|IDEMPOTENCY|BATCH"
    r"|STREAM|CLOUDEVENTS|LOG|REDIS|SCHEMA_REGISTRY)_.*)")
HEALTH_ROUTES = {"ready": "/api/events/health", "live": "/api/events/health/live"}


class Failure(Exception):
    """Something could not be done: a build, a start, a health check, a stop in time."""


def wait_until(what: str, condition: Callable, timeout: float, interval: float = 0.1):
    """Polls `condition` until it returns something truthy, which is returned; raises Failure
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def build() -> Path:
    """The service's binary: $EVENTS_SERVICE_BINARY if set, else BUILD's (cargo's output on
    stderr)."""
    if given := os.environ.get(PREBUILT):
        path = Path(given).resolve()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise Failure(f"{PREBUILT}={given} is not an executable file")
        return path
    result = subprocess.run(BUILD, cwd=ROOT, stdout=subprocess.DEVNULL)
    if result.returncode != 0:
        raise Failure(f"`{' '.join(BUILD)}` failed with status {result.returncode}")
    return BUILT


def free_port() -> int:
    """A loopback port that no socket uses, picked the way kafka/start.sh picks its brokers' (by
    kafka/lib/ports.sh: at random below Linux's ephemeral range, so that no client socket can
    take it before the service binds it)."""
    pick = subprocess.run(
        ["bash", "-c", '. "$0/common.sh" && . "$0/lib/ports.sh" && pick_port && echo "${picked[-1]}"',
         ROOT / "kafka"], stdout=subprocess.PIPE, text=True)
    if pick.returncode != 0 or not pick.stdout.strip().isdigit():
        raise Failure("kafka/lib/ports.sh found no free port")
    return int(pick.stdout)


def environment(env: dict[str, str], inherit: bool = True) -> dict[str, str]:
    """The caller's environment without the service's variables (or nothing, when not
    `inherit`), then `env`."""
    base = {k: v for k, v in os.environ.items() if not SERVICE_VARIABLES.fullmatch(k)} if inherit else {}
    return {**base, **{k: str(v) for k, v in env.items()}}


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no output: {path} cannot be read)"


class Service:
    """One run of the service: `Service(env, ...).start()`, then `url`, and `stop()`.

    env      the service's variables (PORT is the harness's; HOST defaults to 127.0.0.1)
    binary   the executable (default: build())
    command  the argv to run instead of the binary alone: a prefix ending in it, such as
             setpriv's, or a script that runs it, such as scripts/run.sh
    log      the file for the service's output (default: a temporary one, removed after a stop
             with exit status 0)
    health   "ready" (Kafka reachable), "live" (serving HTTP) or None (no wait)
    inherit  False: the environment is `env` alone
    """

    def __init__(self, env: dict[str, str] | None = None, *, binary: Path | str | None = None,
                 command: list[str] | None = None, log: Path | str | None = None,
                 health: str | None = "ready", inherit: bool = True, cwd: Path | str | None = None,
                 preexec_fn: Callable[[], None] | None = None):
        if health is not None and health not in HEALTH_ROUTES:
            raise ValueError(f"health must be one of {', '.join(HEALTH_ROUTES)} or None")
        self.env = dict(env or {})
        self.binary = binary
        self.command = command
        self.health = health
        self.inherit = inherit
        self.cwd = cwd
        self.preexec_fn = preexec_fn
        self.own_log = not log
        self.log = Path(log) if log else None
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.url = ""

    def start(self, within: float = 60.0) -> "Service":
        """Starts it on a free port and, unless health is None, polls the health route until it
        answers 200; raises Failure (with the end of the output) if the process exits first or
        `within` seconds pass."""
        command = self.command or [str(self.binary or build())]
        self.port = free_port()
        env = environment({"HOST": "127.0.0.1", **self.env, "PORT": str(self.port)}, self.inherit)
        host = env["HOST"]
        host = "127.0.0.1" if host in ("0.0.0.0", "127.0.0.1", "localhost") else host
        host = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{self.port}"
        if self.log is None:
            fd, name = tempfile.mkstemp(prefix="events-service-", suffix=".log")
            os.close(fd)
            self.log = Path(name)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, env=env, cwd=self.cwd, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=self.preexec_fn)
        if self.health is None:
            return self
        route = HEALTH_ROUTES[self.health]

        def answers():
            if self.proc.poll() is not None:
                raise Failure(f"{command[0]} exited with status {self.proc.returncode} before "
                              f"{route} answered 200; the end of its output ({self.log}):\n"
                              f"{tail(self.log)}")
            return self.status(route, timeout=1) == 200

        try:
            wait_until(f"{route} to answer 200", answers, within)
        except Failure as failure:
            if self.alive():
                self.kill()
                raise Failure(f"{failure}; the end of its output ({self.log}):\n"
                              f"{tail(self.log)}") from None
            raise
        return self

    def status(self, path: str, timeout: float = 5.0) -> int | None:
        """The status of GET `path`, or None without an answer."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (OSError, ValueError):
            return None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, within: float = 30.0) -> tuple[int, float]:
        """SIGTERM, then waits up to `within` seconds; returns the exit status (negative: the
        signal that ended it) and how long the exit took. Raises Failure, after SIGKILL, if it
        is still running then."""
        started = time.monotonic()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure(f"still running {within:.0f} s after SIGTERM (killed); the end of its "
                          f"output ({self.log}):\n{tail(self.log)}") from None
        if code == 0 and self.own_log:
            self.log.unlink(missing_ok=True)
        return code, time.monotonic() - started

    def kill(self):
        """SIGKILL: nothing is flushed or committed."""
        self.proc.kill()
        self.proc.wait()

    def memory_mib(self, field: str = "VmRSS") -> float | None:
        """A field of /proc/PID/status in MiB: VmRSS (resident now), VmHWM (the peak); None once
        the process is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
        return int(match[1]) / 1024 if match else None

    def __enter__(self) -> "Service":
        return self.start() if self.proc is None else self

    def __exit__(self, *_):
        if self.alive():
            self.kill()
