"""The processes a fault scenario plays with: a Kafka broker or cluster and the service's release
binary, each started, crashed and restarted the way an operator would. They are the scripts'
harness (scripts/harness/), which every script and suite runs them with; `Failure` is what it
raises when something cannot be carried out (as opposed to a check that failed)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from harness import Broker, Failure, Service, tail, wait_until  # noqa: E402

__all__ = ["Broker", "Failure", "Service", "tail", "wait_until"]
