"""The processes a fault scenario plays with: a Kafka broker or cluster (kafka/*.sh) and the
service's release binary, each started, crashed and restarted the way an operator would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA = ROOT / "kafka"
LISTENING = re.compile(r"Events Service listening on http://([\d.]+):(\d+)")
# The variables the service reads (src/config/). None is inherited from the caller's
# environment: a KAFKA_BROKERS, AUTH_* or RATE_LIMIT_* left set in a shell would otherwise change
# what a scenario tests (a 401 or 429 is a failure here). Each scenario sets what it needs.
SERVICE_VARIABLES = re.compile(
    r"(HOST|PORT|SHUTDOWN_TIMEOUT_MS|(AUTH|KAFKA|RDKAFKA|HTTP|RATE_LIMIT|OTEL|IDEMPOTENCY|BATCH"
    r"|STREAM|CLOUDEVENTS|LOG)_.*)")


class Failure(Exception):
    """A scenario could not be carried out (as opposed to a check that failed)."""


def wait_until(what: str, condition, timeout: float, interval: float = 0.1):
    """Polls `condition` until it returns something truthy, which is returned; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Kafka:
    """A broker (nodes=1) or a three-node cluster started by kafka/start.sh in its own directory."""

    def __init__(self, run_dir: Path, nodes: int = 1):
        self.dir = run_dir
        self.nodes = nodes
        self.bootstrap = ""

    def start(self) -> str:
        out = subprocess.run(
            [KAFKA / "start.sh", "--dir", self.dir, "--brokers", str(self.nodes)],
            check=True, stdout=subprocess.PIPE, text=True,
        )
        self.bootstrap = out.stdout.strip()
        return self.bootstrap

    def kill(self, node: int | None = None):
        """SIGKILL: the broker gets no chance to close anything."""
        self._node("kill", node)

    def revive(self, node: int | None = None):
        """Restarts a killed node on the data it had; returns once it listens."""
        self._node("start", node)

    def _node(self, action: str, node: int | None):
        args = [KAFKA / "node.sh", "--dir", self.dir]
        if node is not None and self.nodes > 1:
            args += ["--node", str(node)]
        subprocess.run(args + [action], check=True)

    def stop(self):
        subprocess.run([KAFKA / "stop.sh", "--dir", self.dir], check=False)


class Service:
    """The service's binary with the given environment; its log goes to a file the scenario reads."""

    def __init__(self, binary: Path, env: dict[str, str], log: Path):
        self.binary = binary
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, healthy_within: float = 60.0) -> "Service":
        inherited = {k: v for k, v in os.environ.items() if not SERVICE_VARIABLES.fullmatch(k)}
        # PORT 0: the kernel picks a free port, which the service's log line names.
        env = {**inherited, "HOST": "127.0.0.1", "PORT": "0", "LOG_LEVEL": "info", **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([self.binary], env=env, stdout=out, stderr=subprocess.STDOUT)

        def listening():
            if self.proc.poll() is not None:
                raise Failure(f"the service exited with {self.proc.returncode}; see {self.log}")
            match = LISTENING.search(self.log.read_text(errors="replace"))
            return match and f"http://{match[1]}:{match[2]}"

        self.url = wait_until("the service to listen", listening, 30)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM, then waits; returns the exit status and how long the exit took."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def rss_mib(self) -> float | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match[1]) / 1024 if match else None
