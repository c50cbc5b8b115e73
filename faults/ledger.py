"""The bookkeeping of the fault suite: every request and its answer (`Answer`), every record read
back from the topic by an independent client (`Record`, `read_topic`), and the ledger that holds
each answer against its own request and the topic (`tally`).

This module needs no broker and no third-party package to import (confluent-kafka is imported
where a topic is read), so its self-test, faults/test_ledger.py, runs anywhere in well under a
second.

How a request is recognised
---------------------------
Every request of a run carries a marker in its title, `<tag>#<seq>`: the run's tag and a
sequence number of its own, drawn once per request. The load client sends each request exactly
once: it never retries (aiohttp does not resend a POST), so no two requests share a sequence
number and a sequence number reaches exactly one service process. The one exception is the
retrying load (traffic.py, `retry_for`): it resends a request, the same body under an
`Idempotency-Key` of its own, to other instances until it is answered 201, and its Answer is
the last attempt's, timed from the first attempt to the last answer. Every attempt of it asks
for the one event that the key promises to store at most once. A record whose title carries
the marker of request #n is a copy of request #n's event if it is *faithful*: it is in the
request's topic, its key is the request's key (the movie id), its value is a JSON event of the
request's type whose `payload` is exactly the request's body and whose `id` is a string. A
record of the topic that is not a faithful copy of some request of the run (no marker, a marker
of a request never sent, another key or payload, a value that is not such an event) is *stray*.

The columns, precisely
----------------------
sent          requests sent (one per sequence number).
201           requests answered 201.
5xx / no answer
              requests answered 5xx, or with no HTTP answer at all (refused, reset, client
              timeout). Allowed only while a fault is injected (see "failed outside faults").
stored        requests of which at least one faithful copy is in the topic.
lost          requests answered 201 of which no faithful copy is in the topic, whatever the
              answer says (a 201 naming some other request's stored record is still lost).
wrong         requests answered 201 whose own event is stored but whose answer does not say so
              exactly: the body is not a 201's (not a JSON object, `status` not "success",
              `topic`/`partition`/`offset`/`event`/`event.id` missing or mistyped); the answer's
              topic is not the request's; there is no record at the answer's (topic, partition,
              offset); the record there is not a faithful copy of *this* request (another
              request's, or a stray); its event id is not the answer's event id; the echoed
              `event.payload` is not the request's body; or the echoed `event` is not the stored
              event. Plus every stray record in the topic: something the service stored that
              no request of the run asked for, or stored other than asked.
duplicated    for every request, its faithful copies beyond the first. Every copy of a request
              comes from the one producer session (one service process, one idempotent
              producer) that handled it, since the client never resends a request: the
              idempotent producer's internal retries never write a record twice, and a request
              whose outcome was unknown (answered 5xx, or not at all) is stored once or not at
              all, never twice. So in this suite no duplicate is legitimate, in any scenario.
              (What a request with an unknown outcome may legitimately do, be stored once
              without a 201, is counted as "stored without a 201" and allowed. A duplicate
              becomes legitimate only when a client resends after an unknown outcome without an
              Idempotency-Key, or with one but without a store shared by the instances; no load
              here does. The retrying load resends with a key, to instances sharing Redis:
              there a duplicate is the broken promise it is looking for.) One exception, in the
              leader-kills scenario only: a request in flight when its partition's leader died
              may be stored twice by librdkafka (RELIABILITY.md, "What this shows"); such
              copies are counted in the column and named in the notes, and any other fails.
out of order  the load sends a key's requests one after another (and a batch's items in order),
              so a key's sequence numbers increase in the order sent. For every key, its
              faithful records ordered by (partition, offset): each adjacent pair where the
              sequence number goes down, or where the partition changes (a key split over
              partitions cannot be in order).
4xx / other   answers that are neither 201 nor 5xx: every 4xx not explicitly allowed by the
              scenario (none is: the requests are well formed and nothing limits them), and any
              1xx, 2xx other than 201, or 3xx.
failed outside faults
              requests answered 5xx or not at all whose time in flight [sent, done] overlaps no
              fault window of the scenario (a window runs from the moment the fault is injected
              to the moment the scenario saw the service recovered, or to the end of the run).
              A request that failed while nothing was broken is a failure.

A scenario passes only when lost, wrong, duplicated, out of order, 4xx / other and failed
outside faults are all 0, no load worker failed, and its own checks pass.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from processes import Failure, wait_until

EVENT_TYPE = "movie"
# The end of a fault window that lasts to the end of the run.
FOREVER = math.inf
# How many examples of each kind of failure a check names.
EXAMPLES = 3


def marker(tag: str, seq: int) -> str:
    """The title of request #seq of the run tagged `tag`."""
    return f"{tag}#{seq}"


def marked_seq(title, tag: str) -> int | None:
    """The sequence number a title's marker carries, or None when it is no marker of this run."""
    prefix = f"{tag}#"
    if not isinstance(title, str) or not title.startswith(prefix):
        return None
    digits = title[len(prefix):]
    return int(digits) if digits.isdigit() and digits.isascii() else None


@dataclass
class Answer:
    """One request (its sequence number, key and body) and what came back."""
    seq: int
    key: int
    sent: float  # time.monotonic()
    done: float
    status: int | None  # None: no HTTP answer at all (refused, reset, client timeout)
    payload: dict = field(default_factory=dict)  # the request's body: the payload to be stored
    error: str = ""  # why there was no answer, or why its body could not be read
    problem: str = ""  # for a 201: what is wrong with its body ("" when it says where the event is)
    body: str = ""  # the start of a 201's body when it has a problem, for the report
    topic: str = ""
    partition: int = -1
    offset: int = -1
    id: str = ""
    event: dict | None = None  # the event a 201 echoes
    attempts: int = 1  # how many times the retrying load sent it (traffic.py, `retry_for`)
    replayed: bool = False  # the answer carried `Idempotent-Replayed: true`

    @property
    def acked(self) -> bool:
        return self.status == 201

    def read_created(self, data) -> None:
        """Takes a 201's JSON (already parsed) into this answer; a body that is not what a 201
        must be is recorded in `problem`, never raised."""
        problem = _created_problem(data)
        if problem:
            self.problem = problem
            self.body = json.dumps(data)[:300]
            return
        self.topic, self.partition, self.offset = data["topic"], data["partition"], data["offset"]
        self.event, self.id = data["event"], data["event"]["id"]

    def describe(self) -> str:
        what = (f"answered {self.status}" if self.status is not None
                else f"no answer ({self.error or 'none'})")
        return f"request #{self.seq} (key {self.key}) {what}"


def _created_problem(data) -> str:
    if not isinstance(data, dict):
        return f"the body is not a JSON object but {type(data).__name__}"
    if data.get("status") != "success":
        return f"status {data.get('status')!r}, not 'success'"
    for name, kind in (("topic", str), ("partition", int), ("offset", int), ("event", dict)):
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name} is {value!r}, not a {kind.__name__}"
    if not isinstance(data["event"].get("id"), str):
        return f"event.id is {data['event'].get('id')!r}, not a string"
    return ""


@dataclass(frozen=True, eq=False)
class Record:
    """A record read back from a topic."""
    topic: str
    partition: int
    offset: int
    key: str | None
    event: dict | None  # the value as a JSON object; None when it is not one
    seq: int | None  # the sequence number its title's marker carries; None: no marker of this run

    @staticmethod
    def parse(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
              tag: str) -> "Record":
        try:
            event = json.loads(value) if value is not None else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            event = None
        payload = event.get("payload") if event else None
        seq = marked_seq(payload.get("title"), tag) if isinstance(payload, dict) else None
        return Record(topic, partition, offset,
                      key.decode(errors="replace") if key is not None else None, event, seq)

    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


def read_topic(bootstrap: str, topic: str, tag: str, timeout: float = 60) -> list[Record]:
    """Every record of `topic`, from each partition's start to its current end."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"faults-reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise Failure(f"cannot read {topic}: {found.error if found else 'no such topic'}")
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records, done = [], {p for p in partitions if ends[p] == 0}

        def drained():
            for message in consumer.consume(10_000, 0.5):
                if message.error() is None:
                    records.append(Record.parse(message.topic(), message.partition(),
                                                message.offset(), message.key(), message.value(),
                                                tag))
                    if message.offset() + 1 >= ends[message.partition()]:
                        done.add(message.partition())
                elif message.error().code() == -191:  # _PARTITION_EOF
                    if message.offset() >= ends[message.partition()]:
                        done.add(message.partition())
                else:
                    raise Failure(f"reading {topic}: {message.error()}")
            return len(done) == len(partitions)

        wait_until(f"reading {topic} to its end", drained, timeout, interval=0)
        return records
    finally:
        consumer.close()


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    server_errors: int = 0
    no_answer: int = 0
    stored: int = 0
    lost: int = 0
    wrong: int = 0
    stray: int = 0  # the part of `wrong` that is records no request asked for
    duplicated: int = 0
    failover_copies: int = 0  # the part of `duplicated` in flight at a failover, where allowed
    out_of_order: int = 0
    unexpected: int = 0  # 4xx not allowed, and statuses neither 201 nor 5xx
    failed_outside: int = 0  # 5xx or no answer overlapping no fault window
    stored_unacked: int = 0  # stored although the client got no 201 (allowed, counted)
    statuses: Counter = field(default_factory=Counter)  # every non-201 status (None: no answer)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def row(self) -> list:
        return [self.sent, self.acked, self.server_errors + self.no_answer, self.stored,
                self.lost, self.wrong, self.duplicated, self.out_of_order, self.unexpected,
                self.failed_outside]

    def example(self, column: str, text: str):
        if len(self.examples[column]) < EXAMPLES:
            self.examples[column].append(text)

    def checks(self) -> list[tuple[str, bool, str]]:
        """(what, passed, detail) for every enforced column."""
        def detail(column: str, text: str) -> str:
            shown = self.examples.get(column) or []
            return text + (f"; e.g. {' | '.join(shown)}" if shown else "")
        return [
            ("no acknowledged event lost", self.lost == 0, detail("lost", f"{self.lost} lost")),
            ("every 201 names exactly its own stored event, and nothing stray is stored",
             self.wrong == 0,
             detail("wrong", f"{self.wrong} wrong ({self.stray} stray records)")),
            ("no duplicates" + (" outside the failovers" if self.failover_copies else ""),
             self.duplicated == self.failover_copies,
             detail("duplicated", f"{self.duplicated} duplicated"
                    + (f", {self.failover_copies} of them in flight at a failover (allowed)"
                       if self.failover_copies else ""))),
            ("each key's events in the order sent", self.out_of_order == 0,
             detail("out of order", f"{self.out_of_order} out of order")),
            ("no 4xx or other unexpected status", self.unexpected == 0,
             detail("unexpected", f"{self.unexpected} unexpected")),
            ("no 5xx and no unanswered request outside the fault windows",
             self.failed_outside == 0,
             detail("failed outside", f"{self.failed_outside} failed outside faults")),
        ]


def _not_faithful(record: Record, request: Answer, topic: str) -> str:
    """Why `record`, which carries request's marker, is not a faithful copy of it ("" if it is)."""
    if record.topic != topic:
        return f"in topic {record.topic}, not {topic}"
    if record.key != str(request.key):
        return f"key {record.key!r}, not {str(request.key)!r}"
    event = record.event
    if event is None:
        return "its value is not a JSON object"
    if event.get("type") != EVENT_TYPE:
        return f"type {event.get('type')!r}, not {EVENT_TYPE!r}"
    if not isinstance(event.get("id"), str):
        return f"id {event.get('id')!r}"
    if event.get("payload") != request.payload:
        return f"payload {event.get('payload')!r}, not the request's {request.payload!r}"
    return ""


def _answer_problem(a: Answer, own: list[Record], at: dict, topic: str) -> str:
    """Why a 201, whose request's own event is stored (`own`), does not say exactly that."""
    if a.problem:
        return f"its body is not a 201's: {a.problem} ({a.body or a.error})"
    if a.topic != topic:
        return f"it names topic {a.topic!r}, not the request's {topic!r}"
    there = at.get((a.topic, a.partition, a.offset))
    where = f"{a.topic}/{a.partition}@{a.offset}"
    if there is None:
        return f"no record at {where}"
    if not any(there is r for r in own):
        whose = (f"request #{there.seq}'s" if there.seq is not None and there.seq != a.seq
                 else "a stray record")
        return f"the record at {where} is {whose}, not its own (stored at {own[0].where()})"
    if there.event.get("id") != a.id:
        return f"the record at {where} has id {there.event.get('id')}, the answer {a.id}"
    if not isinstance(a.event, dict) or a.event.get("payload") != a.payload:
        return f"it echoes payload {a.event and a.event.get('payload')!r}, not {a.payload!r}"
    if a.event != there.event:
        return f"it echoes {a.event!r}, but {where} holds {there.event!r}"
    return ""


def _overlaps(a: Answer, windows) -> bool:
    return any(a.sent <= end and a.done >= start for start, end in windows)


def tally(answers: list[Answer], records: list[Record], topic: str,
          faults: list[tuple[float, float]] = (), allowed_4xx: frozenset = frozenset(),
          failover_copies: bool = False) -> Tally:
    """Holds every answer against its own request and the records of `topic` (see the module's
    docstring for what each column means). `faults` are the scenario's fault windows, in
    time.monotonic() seconds (end FOREVER: to the end of the run). With `failover_copies`, a
    request in flight during a fault window may be stored twice (a broker's failover: see
    "duplicated" in the module's docstring); such copies are counted, not failed."""
    requests: dict[int, Answer] = {}
    for a in answers:
        if a.seq in requests:
            raise Failure(f"the load client sent sequence number {a.seq} twice")
        requests[a.seq] = a
    t = Tally(sent=len(answers))

    own: dict[int, list[Record]] = defaultdict(list)  # seq -> its faithful copies
    for r in records:
        request = requests.get(r.seq) if r.seq is not None else None
        why = (_not_faithful(r, request, topic) if request is not None
               else "no marker of this run" if r.seq is None else f"marker #{r.seq}, never sent")
        if why:
            t.stray += 1
            t.example("wrong", f"stray record at {r.where()}: {why}")
        else:
            own[r.seq].append(r)
    at = {(r.topic, r.partition, r.offset): r for r in records}

    for a in answers:
        if a.acked:
            t.acked += 1
            if not own.get(a.seq):
                t.lost += 1
                said = (f"with a body that is not a 201's ({a.problem})" if a.problem
                        else f"naming {a.topic}/{a.partition}@{a.offset}")
                t.example("lost", f"{a.describe()} {said}, but its event is not in {topic}")
            elif problem := _answer_problem(a, own[a.seq], at, topic):
                t.wrong += 1
                t.example("wrong", f"{a.describe()}: {problem}")
            continue
        t.statuses[a.status] += 1
        if a.status is None or 500 <= a.status <= 599:
            if a.status is None:
                t.no_answer += 1
            else:
                t.server_errors += 1
            if not _overlaps(a, faults):
                t.failed_outside += 1
                t.example("failed outside", f"{a.describe()} while no fault was injected")
        elif a.status not in allowed_4xx or not 400 <= a.status <= 499:
            t.unexpected += 1
            t.example("unexpected", a.describe())
    t.wrong += t.stray

    t.stored = len(own)
    t.stored_unacked = sum(1 for seq in own if not requests[seq].acked)
    for seq, copies in own.items():
        if len(copies) > 1:
            t.duplicated += len(copies) - 1
            if failover_copies and _overlaps(requests[seq], faults):
                t.failover_copies += len(copies) - 1
            t.example("duplicated", f"request #{seq} stored {len(copies)} times: "
                                    f"{', '.join(r.where() for r in copies)}")

    by_key = defaultdict(list)
    for r in sorted((r for copies in own.values() for r in copies),
                    key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(r)
    for key, stored in by_key.items():
        for before, after in zip(stored, stored[1:]):
            if after.partition != before.partition or after.seq < before.seq:
                t.out_of_order += 1
                t.example("out of order", f"key {key}: #{before.seq} at {before.where()}, "
                                          f"then #{after.seq} at {after.where()}")
    return t


def committed_everything(bootstrap: str, group: str, topic: str) -> bool:
    """Whether `group` has committed every partition of `topic` up to its end."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > low and tp.offset < high:
                return False
        return True
    except KafkaException:  # the group coordinator may be moving; the caller asks again
        return False
    finally:
        consumer.close()

