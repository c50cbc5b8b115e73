"""Reading a topic back with an independent client (confluent-kafka) and holding it against the
answers: what was acknowledged, stored, lost, stored somewhere other than the answer said,
duplicated, or stored out of its key's order."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from harness import Failure, wait_until
from traffic import Answer


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str
    id: str
    seq: int | None  # None: not an event of this run


def read_topic(bootstrap: str, topic: str, tag: str, timeout: float = 60) -> list[Record]:
    """Every record of `topic`, from each partition's start to its current end."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"faults-reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records, done = [], {p for p in partitions if ends[p] == 0}
        marker = f"{tag}#"

        def drained():
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(_record(message, marker))
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
            elif message is not None and message.error().code() == -191:  # _PARTITION_EOF
                if message.offset() >= ends[message.partition()]:
                    done.add(message.partition())
            return len(done) == len(partitions)

        wait_until(f"reading {topic} to its end", drained, timeout, interval=0)
        return records
    finally:
        consumer.close()


def _record(message, marker: str) -> Record:
    event = json.loads(message.value())
    title = event.get("payload", {}).get("title", "")
    seq = int(title[len(marker):]) if title.startswith(marker) else None
    key = (message.key() or b"").decode()
    return Record(message.partition(), message.offset(), key, event["id"], seq)


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    server_errors: int = 0
    no_answer: int = 0
    stored: int = 0
    lost: int = 0
    wrong: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    stored_unacked: int = 0  # stored although the client got no 201 (allowed, counted)
    other_statuses: Counter = field(default_factory=Counter)

    def row(self) -> list:
        return [self.sent, self.acked, self.server_errors + self.no_answer, self.stored,
                self.lost, self.wrong, self.duplicated, self.out_of_order]


def tally(answers: list[Answer], records: list[Record]) -> Tally:
    ours = [r for r in records if r.seq is not None]
    by_id = defaultdict(list)
    for r in ours:
        by_id[r.id].append(r)
    at = {(r.partition, r.offset): r for r in records}
    seqs = Counter(r.seq for r in ours)
    t = Tally(sent=len(answers), stored=len(seqs))
    acked_seqs = set()
    for a in answers:
        if a.acked:
            t.acked += 1
            acked_seqs.add(a.seq)
            if a.id not in by_id:
                t.lost += 1
            stored_there = at.get((a.partition, a.offset))
            if stored_there is None or stored_there.id != a.id:
                t.wrong += 1
        elif a.status is None:
            t.no_answer += 1
        elif a.status >= 500:
            t.server_errors += 1
        else:
            t.other_statuses[a.status] += 1
    t.duplicated = sum(n - 1 for n in seqs.values() if n > 1)
    t.stored_unacked = len(set(seqs) - acked_seqs)
    # A worker sends a key's events one after another: Kafka must hold them in that order.
    by_key = defaultdict(list)
    for r in sorted(ours, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(r.seq)
    for key_seqs in by_key.values():
        t.out_of_order += sum(1 for a, b in zip(key_seqs, key_seqs[1:]) if b < a)
    return t


def committed_everything(bootstrap: str, group: str, topic: str) -> bool:
    """Whether `group` has committed every partition of `topic` up to its end."""
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
