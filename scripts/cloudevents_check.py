"""Reads records the service published with the official CloudEvents SDK (the `cloudevents`
package's Kafka binding, binary mode) and checks that each is the CloudEvent its answer promises.

Usage: python scripts/cloudevents_check.py BROKERS SOURCE RESPONSE...
Each RESPONSE is the JSON a POST /api/events/<type> answered (topic, partition, offset, event).
Prints one line per record; exits 1 at the first record that is not right."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from importlib.metadata import version

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from confluent_kafka import Consumer, TopicPartition

# The checks below are asserts: under python -O (PYTHONOPTIMIZE) they would vanish, and with
# them every check, so the script refuses to run so.
if not __debug__:
    raise SystemExit(f"{__file__}: its checks are asserts; run it without -O or PYTHONOPTIMIZE")

DEADLINE_SECONDS = 30
ATTRIBUTES = ["ce_id", "ce_source", "ce_specversion", "ce_time", "ce_type"]
MICROSECOND = timedelta(microseconds=1)


def read(consumer: Consumer, topic: str, partition: int, offset: int):
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            raise AssertionError(f"{topic}/{partition}/{offset}: {message.error()}")
        assert message.offset() == offset, f"read offset {message.offset()}, not {offset}"
        return message
    raise AssertionError(f"no record at {topic}/{partition}/{offset} within {DEADLINE_SECONDS} s")


def check(consumer: Consumer, source: str, response: dict) -> str:
    topic, partition, offset = response["topic"], response["partition"], response["offset"]
    where = f"{topic}/{partition}/{offset}"
    record = read(consumer, topic, partition, offset)
    headers = record.headers() or []
    names = sorted(name for name, _ in headers if name.startswith("ce_"))
    # A dict keeps one value per name, so duplicates are ruled out before the SDK sees one.
    assert names == ATTRIBUTES, f"{where}: ce_ headers {names}, expected each of {ATTRIBUTES} once"

    event = from_binary(
        KafkaMessage(headers=dict(headers), key=record.key(), value=record.value()), JSONFormat()
    )

    sent = response["event"]
    payload = sent["payload"]
    action = payload.get("action", payload.get("status"))
    expected = {
        "class": CloudEvent,
        "specversion": "1.0",
        "id": sent["id"],
        "source": source,
        "type": f"com.cinemaabyss.{sent['type']}.{action}",
        "time": datetime.fromisoformat(sent["timestamp"]),
        "datacontenttype": "application/json",
        "data": json.loads(record.value()),
        "partitionkey": record.key().decode(),
    }
    found = {
        "class": type(event),
        "specversion": event.get_specversion(),
        "id": event.get_id(),
        "source": event.get_source(),
        "type": event.get_type(),
        "time": event.get_time(),
        "datacontenttype": event.get_datacontenttype(),
        "data": event.get_data(),
        "partitionkey": event.get_extension("partitionkey"),
    }
    # Python keeps microseconds, the service writes nanoseconds: the digits beyond are dropped.
    if isinstance(found["time"], datetime) and abs(found["time"] - expected["time"]) < MICROSECOND:
        found["time"] = expected["time"]
    for name, value in expected.items():
        assert found[name] == value, f"{where}: the SDK reads {name} {found[name]!r}, expected {value!r}"
    # Binary mode: the data is the record's value as it is, the envelope the service answered.
    assert event.get_data() == sent, f"{where}: data {event.get_data()} is not the returned event"
    return (f"{where} is a CloudEvent {event.get_specversion()} to the SDK "
            f"(cloudevents {version('cloudevents')}): {event.get_type()} from {event.get_source()}, "
            f"id and time those of the event, data the record's value")


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, source, responses = sys.argv[1], sys.argv[2], sys.argv[3:]
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "cloudevents-check",
                         "enable.auto.commit": False})
    try:
        for response in responses:
            print(check(consumer, source, json.loads(response)), flush=True)
    except AssertionError as error:
        print(f"CloudEvents check failed: {error}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
