"""The ledger's self-test: planted bugs it must catch, on synthetic answers and records, with no
broker and no third-party package. Runs in milliseconds: `python faults/test_ledger.py`, or
pytest; faults/run.py runs it before any scenario.

Each case plays a fake service that stores records the way a buggy one would (through the same
parsing of record bytes and of 201 bodies the real run uses) and checks every column of the
tally, so a case also fails when the ledger counts something it should not."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger import FOREVER, Answer, Record, marker, tally  # noqa: E402

TAG = "selftest-0000"
TOPIC = f"{TAG}.movie-events"
# Every column a scenario enforces, and what a correct run has in it.
ENFORCED = ("lost", "wrong", "duplicated", "out_of_order", "unexpected", "failed_outside")


# What each case's tally counted, for main() to print.
COUNTED: dict[str, dict] = {}


class LedgerTestFailure(Exception):
    """The ledger counted something other than it must."""


class FakeKafka:
    """Partitioned logs of raw records, read back through ledger.Record.parse."""

    def __init__(self, partitions: int = 2):
        self.partitions = partitions
        self.logs: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)

    def store(self, a: Answer, *, payload: dict | None = None, key: str | None = None,
              event_id: str | None = None, partition: int | None = None):
        """Appends request `a`'s event (as a buggy service may alter it); returns where and what."""
        event = {"id": event_id or f"00000000-0000-4000-8000-{a.seq:012d}", "type": "movie",
                 "timestamp": "2025-01-01T00:00:00Z", "payload": payload or dict(a.payload)}
        p = a.key % self.partitions if partition is None else partition
        self.logs[p].append(((key or str(a.key)).encode(), json.dumps(event).encode()))
        return p, len(self.logs[p]) - 1, event

    def store_raw(self, partition: int, key: bytes, value: bytes):
        self.logs[partition].append((key, value))

    def records(self) -> list[Record]:
        return [Record.parse(TOPIC, p, o, k, v, TAG)
                for p, log in sorted(self.logs.items()) for o, (k, v) in enumerate(log)]


def requests(n: int, keys: int = 2) -> list[Answer]:
    """n requests, request #i on key 1000 + i % keys, sent one second apart."""
    out = []
    for seq in range(n):
        key = 1000 + seq % keys
        out.append(Answer(seq, key, float(seq), seq + 0.5, None,
                          payload={"movie_id": key, "title": marker(TAG, seq), "action": "viewed"}))
    return out


def created(a: Answer, partition: int, offset: int, event: dict, topic: str = TOPIC):
    """`a` answered 201 with this body, parsed the way the load client parses it."""
    a.status = 201
    a.read_created({"status": "success", "topic": topic, "partition": partition,
                    "offset": offset, "event": event})


def correct(n: int = 6, keys: int = 2):
    """A correct service: every request stored once, in order, and answered where."""
    kafka, answers = FakeKafka(), requests(n, keys)
    for a in answers:
        created(a, *kafka.store(a))
    return kafka, answers


def expect(case: str, t, **counts):
    """Every enforced column is 0 unless `counts` names it; other named fields are checked too."""
    wanted = {column: 0 for column in ENFORCED} | counts
    got = {column: getattr(t, column) for column in wanted}
    COUNTED[case] = got
    if got != wanted:
        raise LedgerTestFailure(f"{case}: expected {wanted}, got {got}; examples {dict(t.examples)}")


def test_correct_ledger_is_all_zero():
    kafka, answers = correct()
    # A request answered 500 in a fault window that was stored anyway: allowed, counted.
    late = requests(7)[6]
    kafka.store(late)
    late.status = 500
    expect("correct", tally(answers + [late], kafka.records(), TOPIC, [(5.0, 7.0)]),
                  stored=7, acked=6, stored_unacked=1)


def test_swapped_answers_are_wrong():
    kafka = FakeKafka()
    first, second = requests(2, keys=1)
    where_first, where_second = kafka.store(first), kafka.store(second)
    created(first, *where_second)  # each request gets the other's answer
    created(second, *where_first)
    expect("swapped", tally([first, second], kafka.records(), TOPIC), wrong=2)


def test_answer_naming_another_offset_is_wrong():
    kafka = FakeKafka()
    first, second = requests(2, keys=1)
    p, _, own_first = kafka.store(first)
    _, o, own_second = kafka.store(second)
    created(first, p, o, own_first)  # its own event echoed, but the second's offset
    created(second, p, o + 5, own_second)  # an offset that holds nothing
    expect("offset", tally([first, second], kafka.records(), TOPIC), wrong=2)


def test_201_naming_another_stored_event_is_lost():
    kafka = FakeKafka()
    first, second = requests(2, keys=1)
    where = kafka.store(first)
    created(first, *where)
    created(second, *where)  # answered 201 with the first's record; its own never stored
    expect("other's record", tally([first, second], kafka.records(), TOPIC), lost=1)


def test_duplicate_is_counted():
    kafka, answers = correct()
    kafka.store(answers[2])  # stored a second time, later
    expect("duplicate", tally(answers, kafka.records(), TOPIC), duplicated=1,
                  out_of_order=1)  # the late copy also breaks its key's order


def test_duplicate_in_place_is_counted():
    kafka = FakeKafka()
    a, = requests(1)
    created(a, *kafka.store(a))
    kafka.store(a)  # stored twice in a row (a producer retry written twice)
    expect("duplicate in place", tally([a], kafka.records(), TOPIC), duplicated=1)


def test_out_of_order_is_counted():
    kafka = FakeKafka()
    answers = requests(4, keys=1)
    for a in (answers[0], answers[2], answers[1], answers[3]):
        created(a, *kafka.store(a))
    expect("out of order", tally(answers, kafka.records(), TOPIC), out_of_order=1)


def test_key_split_over_partitions_is_out_of_order():
    kafka = FakeKafka()
    answers = requests(2, keys=1)
    created(answers[0], *kafka.store(answers[0], partition=0))
    created(answers[1], *kafka.store(answers[1], partition=1))
    expect("split key", tally(answers, kafka.records(), TOPIC), out_of_order=1)


def test_unexpected_4xx_is_counted():
    kafka, answers = correct()
    extra = requests(8)[6:]
    extra[0].status = 400
    extra[1].status = 200  # a success that is not 201
    expect("4xx", tally(answers + extra, kafka.records(), TOPIC, [(0, FOREVER)]),
                  unexpected=2)


def test_failover_copies_pass_only_inside_a_fault_window():
    # Leader kills: a copy of a request in flight at a failover is counted and allowed; one of a
    # request sent while nothing was broken still fails the check.
    def stored_twice(window):
        kafka = FakeKafka()
        a, = requests(1)  # in flight from 0.0 to 0.5 s
        created(a, *kafka.store(a))
        kafka.store(a)
        t = tally([a], kafka.records(), TOPIC, [window], failover_copies=True)
        return t, dict((what, ok) for what, ok, _ in t.checks())
    t, checks = stored_twice((0.2, 3.0))
    expect("failover copy", t, duplicated=1, failover_copies=1)
    if not checks["no duplicates outside the failovers"]:
        raise LedgerTestFailure(f"a copy at a failover failed the check: {checks}")
    t, checks = stored_twice((5.0, 6.0))
    expect("copy outside failovers", t, duplicated=1)
    if checks["no duplicates"]:
        raise LedgerTestFailure(f"a copy outside the failovers passed: {checks}")


def test_failure_outside_a_fault_window_is_counted():
    kafka, answers = correct()
    refused, failed = requests(8)[6:]  # sent at 6 s and 7 s
    refused.error = "ClientConnectorError"  # no answer at all
    failed.status = 500
    faults = [(0.0, 6.2)]  # overlaps the first request only
    expect("outside faults", tally(answers + [refused, failed], kafka.records(), TOPIC,
                                          faults), failed_outside=1)


def test_malformed_201_is_wrong_or_lost():
    kafka = FakeKafka()
    stored, unstored = requests(2)
    kafka.store(stored)
    for a in (stored, unstored):
        a.status = 201
        a.read_created({"status": "success", "topic": TOPIC, "partition": 0})  # no offset, event
    expect("malformed", tally([stored, unstored], kafka.records(), TOPIC), wrong=1,
                  lost=1)


def test_wrong_topic_id_or_payload_is_wrong():
    kafka = FakeKafka()
    answers = requests(3, keys=3)
    p, o, event = kafka.store(answers[0])
    created(answers[0], p, o, event, topic="elsewhere.movie-events")
    p, o, event = kafka.store(answers[1])
    created(answers[1], p, o, {**event, "id": "another-id"})
    p, o, event = kafka.store(answers[2])
    created(answers[2], p, o, {**event, "payload": {**event["payload"], "action": "rated"}})
    expect("topic, id, payload", tally(answers, kafka.records(), TOPIC), wrong=3)


def test_altered_or_stray_records_are_caught():
    kafka = FakeKafka()
    answers = requests(3, keys=3)
    # Stored under another key: not a faithful copy, so the 201 is lost and the record stray.
    created(answers[0], *kafka.store(answers[0], key="9"))
    created(answers[1], *kafka.store(answers[1]))
    created(answers[2], *kafka.store(answers[2]))
    kafka.store_raw(0, b"1000", b"not json")  # something no request asked for
    kafka.store(requests(9)[8])  # a marker of a request never sent
    expect("stray", tally(answers, kafka.records(), TOPIC), lost=1, wrong=3)


def run() -> list[str]:
    """Runs every case; returns the failures (empty when the ledger catches every planted bug)."""
    failures = []
    for name, case in sorted(globals().items()):
        if name.startswith("test_") and callable(case):
            try:
                case()
            except Exception as error:  # each case is reported, whatever it raised
                failures.append(f"{name}: {type(error).__name__}: {error}")
    return failures


def main() -> int:
    started = time.perf_counter()
    width = max(len(n) for n in globals() if n.startswith("test_"))
    failed = 0
    for name, case in sorted(globals().items()):
        if not (name.startswith("test_") and callable(case)):
            continue
        try:
            COUNTED.clear()
            case()
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in counts.items())
                              for counts in COUNTED.values())
            print(f"ok   {name:<{width}}  {shown}")
        except Exception as error:
            failed += 1
            print(f"FAIL {name:<{width}}  {type(error).__name__}: {error}")
    print(f"{'FAILED' if failed else 'passed'}: {failed} failed, in "
          f"{(time.perf_counter() - started) * 1000:.1f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
