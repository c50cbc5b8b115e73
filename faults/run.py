"""Runs the fault scenarios and prints their table; exits 1 unless every check passed.

Usage: python faults/run.py --binary target/release/events-service [--full] [--report FILE]
                            [scenario ...]
Scenarios: broker-crash, leader-kills, sigterm, consumer-crash, long-outage, instance-kill
(default: all).
--full runs longer outages, more load and bigger backlogs (see RELIABILITY.md)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

import scenarios
import test_ledger
from instances import instance_kill
from processes import Broker
from scenarios import Lab, Outcome

# In the order they run. The scenario with several instances and a Redis has a module of its own.
ALL = {**scenarios.ALL, "instance-kill": instance_kill}

# The brokers' JIT: C1 alone (a caller's KAFKA_OPTS come after, and win). With C2, a broker's
# hot code runs in the JIT's profiling tier until C2 has compiled it, which on two busy cores
# takes tens of seconds after every start, so a broker restarted in a scenario ran at about 70%
# of the warm one it replaced for over 35 s (1 run in 4; C1 alone: back to 90% within 2.4-4.7 s
# in 4 of 4), and scenario 5's recovery check measured the JVM's warm-up instead of the service
# (RELIABILITY.md).
BROKER_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"

# The columns are defined in ledger.py's docstring; every one after "stored" must be 0.
HEADER = ["scenario", "sent", "201", "5xx / no answer", "stored", "lost", "wrong", "duplicated",
          "out of order", "4xx / other", "failed outside faults", "result"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--report", type=Path)
    parser.add_argument("scenarios", nargs="*", metavar="scenario")
    args = parser.parse_args()
    if unknown := set(args.scenarios) - set(ALL):
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL)}")
    args.scenarios = args.scenarios or list(ALL)
    # A ledger that cannot catch a planted bug proves nothing: its self-test first (< 1 s).
    if failed := test_ledger.run():
        say(f"the ledger's self-test failed: {'; '.join(failed)}")
        return 1

    # kafka/start.sh and kafka/node.sh (a revived broker) both read it.
    os.environ["KAFKA_OPTS"] = f"{BROKER_JVM_OPTIONS} {os.environ.get('KAFKA_OPTS', '')}".strip()
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    lab = Lab(binary=args.binary.resolve(), work=work, run=uuid.uuid4().hex[:8], full=args.full)
    needs_broker = any(name != "leader-kills" for name in args.scenarios)
    # In the run's own directory, not kafka/.run: `kafka/stop.sh --all`, run by anyone sharing
    # the checkout, deletes kafka/.run and would kill this broker mid-run (it once did).
    # --proxied: scenario 6 cuts one instance off from it through a proxy (faults/proxy.py).
    lab.broker = Broker(work / "broker", options=["--proxied"])
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        if needs_broker:
            lab.broker.start()
        for name in [name for name in ALL if name in args.scenarios]:
            say(f"--- {name}")
            began = time.monotonic()
            try:
                outcome = ALL[name](lab)
            except Exception as error:  # a scenario that cannot run is a failed scenario
                traceback.print_exc()
                outcome = Outcome(name)
                outcome.check("the scenario ran to its end", False, f"{error}")
                crashes = [crash for load in lab.loads for crash in load.crashes]
                if crashes:  # a load that failed may be why: name what it failed on
                    outcome.check("every load worker ran to its end", False,
                                  "; ".join(crashes[:3]))
            finally:
                left = lab.reap()
            if left:
                outcome.notes.append(f"stopped what the scenario left running: {'; '.join(left)}")
            outcome.notes.append(f"{time.monotonic() - began:.0f} s")
            outcomes.append(outcome)
            for what, ok, detail in outcome.checks:
                say(f"  {'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")
    finally:
        lab.reap()
        if needs_broker:
            lab.broker.stop()
    table = render(outcomes, args.full, time.monotonic() - started)
    print(table)
    if args.report:
        args.report.write_text(table)
    passed = all(o.passed for o in outcomes)
    if passed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        say(f"service logs kept in {work}")
    return 0 if passed else 1


def render(outcomes: list[Outcome], full: bool, took: float) -> str:
    lines = [f"Fault suite ({'full' if full else 'CI'} run, {took:.0f} s)", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for o in outcomes:
        counts = o.tally.row() if o.tally else [""] * (len(HEADER) - 2)
        result = "pass" if o.passed else "FAIL"
        lines.append("| " + " | ".join(str(c) for c in [o.name, *counts, result]) + " |")
    lines.append("")
    for o in outcomes:
        lines.append(f"- **{o.name}**: " + "; ".join(
            [f"{'✓' if ok else '✗'} {what}{' (' + detail + ')' if detail else ''}"
             for what, ok, detail in o.checks] + o.notes))
    return "\n".join(lines) + "\n"


def say(message: str):
    print(f"faults: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
