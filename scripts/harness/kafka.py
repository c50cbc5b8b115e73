"""A local Kafka for a script or a suite: kafka/start.sh in a directory of the caller's, stopped with
kafka/stop.sh --dir (never --all, which would stop other people's brokers too)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .service import ROOT, Failure

KAFKA = ROOT / "kafka"


class Broker:
    """A broker (nodes=1) or a three-node cluster; `options` are more kafka/start.sh options."""

    def __init__(self, run_dir: Path | str, nodes: int = 1, options: list[str] = ()):
        self.dir = Path(run_dir)
        self.nodes = nodes
        self.options = list(options)
        self.bootstrap = ""

    def start(self) -> str:
        """Returns the bootstrap list once the broker answers (start.sh's one line of stdout)."""
        out = subprocess.run(
            [KAFKA / "start.sh", "--dir", self.dir, "--brokers", str(self.nodes), *self.options],
            stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise Failure(f"kafka/start.sh --dir {self.dir} failed with status {out.returncode}")
        self.bootstrap = out.stdout.strip()
        return self.bootstrap

    def proxied(self) -> list[tuple[str, str]]:
        """With --proxied: each node's (advertised address, listener) pair, for a proxy to listen
        on the first and forward to the second (kafka/start.sh writes them to DIR/proxied.env)."""
        env = dict(line.split("=", 1) for line in
                   (self.dir / "proxied.env").read_text().splitlines() if "=" in line)
        return list(zip(env["KAFKA_PROXIED_BROKERS"].split(","),
                        env["KAFKA_PROXIED_UPSTREAMS"].split(",")))

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

    def __enter__(self) -> "Broker":
        self.start()
        return self

    def __exit__(self, *_):
        self.stop()
