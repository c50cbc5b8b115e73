"""Reads back the records a running service wrote and checks them against its AsyncAPI document
from outside Rust: Python `jsonschema` against the document's message schemas (key, every
header, value), and, for the wire format, confluent-kafka's registry-aware `JSONDeserializer`.

Usage:
  python scripts/contracts_check.py records SERVICE_URL BROKERS
      posts an event of each type (one with trace context) and a poison record, then checks each
      event's record and the poison's dead letter against the document the service serves
  python scripts/contracts_check.py wire SERVICE_URL BROKERS REGISTRY_URL
      posts an event of each type to a service with SCHEMA_REGISTRY_WIRE_FORMAT=true and reads
      each record with JSONDeserializer against the registry (REGISTRY_URL: its
      Confluent-compatible API), which must give back the event the service answered; the
      record's schema id must be the one registered under <topic>-value
Prints one line per record; exits 1 at the first record that is not right."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from importlib.metadata import version

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from jsonschema import Draft7Validator

# The checks below are asserts: under python -O (PYTHONOPTIMIZE) they would vanish, and with
# them every check, so the script refuses to run so.
if not __debug__:
    raise SystemExit(f"{__file__}: its checks are asserts; run it without -O or PYTHONOPTIMIZE")

DEADLINE_SECONDS = 30
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EVENTS = {
    "movie": {"movie_id": 7, "title": "Heat", "action": "rated", "rating": 8},
    "user": {"user_id": 123, "username": "john_doe", "action": "logged_in"},
    "payment": {"payment_id": 456, "user_id": 123, "amount": 9.5, "status": "refunded"},
}


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def post(service: str, kind: str, body: dict, headers: dict) -> dict:
    request = urllib.request.Request(
        f"{service}/api/events/{kind}", data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201, f"POST {kind}: {answer.status}"
        return json.load(answer)


class Document:
    """The AsyncAPI document: each channel's address and message, schemas resolved in it."""

    def __init__(self, document: dict):
        self.document = document
        self.by_address = {}
        for channel in document["channels"].values():
            (reference,) = [m["$ref"] for m in channel["messages"].values()]
            self.by_address[channel["address"]] = self.resolve(reference)

    def resolve(self, reference: str):
        node = self.document
        for part in reference.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def errors(self, what: str, schema: dict, instance) -> list[str]:
        # The schema inside the document, so that its #/components/... references resolve.
        rooted = {"allOf": [schema], "components": self.document["components"]}
        return [f"{what}: {e.message} at /{'/'.join(map(str, e.absolute_path))}"
                for e in Draft7Validator(rooted).iter_errors(instance)]

    def check(self, record) -> dict:
        """The record's value, decoded; AssertionError naming everything that is wrong."""
        message = self.by_address.get(record.topic())
        where = f"{record.topic()}/{record.partition()}/{record.offset()}"
        assert message is not None, f"{where}: the document has no channel for {record.topic()}"
        binding = message["bindings"]["kafka"]
        wrong = []
        key = record.key().decode(errors="replace") if record.key() is not None else None
        wrong += self.errors("key", binding["key"], key)
        headers = {}
        for name, value in record.headers() or []:
            if name in headers:
                wrong.append(f"header {name} appears twice")
            headers[name] = value.decode(errors="replace") if value is not None else None
        wrong += self.errors("headers", message["headers"], headers)
        value = record.value() or b""
        if binding.get("schemaIdLocation") == "payload":
            if value[:1] != b"\0" or len(value) < 5:
                wrong.append("the value lacks the wire format's prefix")
            value = value[5:]
        decoded = None
        if message["contentType"] == "application/json":
            try:
                decoded = json.loads(value)
            except ValueError as error:
                wrong.append(f"the value is not JSON: {error}")
            wrong += self.errors("value", message["payload"], decoded)
        assert not wrong, f"{where} breaks the document:\n  " + "\n  ".join(wrong)
        return decoded


def read(consumer: Consumer, topic: str, partition: int, offset: int = 0):
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        record = consumer.poll(0.5)
        if record is None:
            continue
        assert not record.error(), f"{topic}/{partition}/{offset}: {record.error()}"
        assert record.offset() == offset, f"read offset {record.offset()}, not {offset}"
        return record
    raise AssertionError(f"no record at {topic}/{partition}/{offset} within {DEADLINE_SECONDS} s")


def posted(service: str, consumer: Consumer):
    """Posts each event (the first with trace context); each answer with its record."""
    for index, (kind, body) in enumerate(EVENTS.items()):
        answer = post(service, kind, body, {"traceparent": TRACEPARENT} if index == 0 else {})
        yield answer, read(consumer, answer["topic"], answer["partition"], answer["offset"])


def records(service: str, brokers: str, consumer: Consumer) -> int:
    document = Document(get_json(f"{service}/api/events/asyncapi.json"))
    checked = 0
    for answer, record in posted(service, consumer):
        value = document.check(record)
        where = f"{record.topic()}/{record.partition()}/{record.offset()}"
        assert value == answer["event"], f"{where}: the value is not the event answered"
        print(f"{where}: key, {len(record.headers() or [])} headers and the value valid against "
              f"the document's {answer['event']['type']} message (jsonschema "
              f"{version('jsonschema')})", flush=True)
        checked += 1
    # A record the consumers cannot read: its dead letter, the record's own value kept.
    topic = answer["topic"]
    producer = Producer({"bootstrap.servers": brokers})
    producer.produce(topic, key=b"poison", value=b"not an event", partition=0)
    assert producer.flush(DEADLINE_SECONDS) == 0, "the poison record was not stored"
    letter = read(consumer, f"{topic}.dlq", 0)
    document.check(letter)
    assert letter.value() == b"not an event", f"the dead letter holds {letter.value()!r}"
    names = sorted(name for name, _ in letter.headers() or [] if name.startswith("dlq-"))
    print(f"{topic}.dlq/0/{letter.offset()}: a dead letter, its headers ({', '.join(names)}) "
          "valid against the document's deadLetter message", flush=True)
    return checked + 1


def wire(service: str, registry_url: str, consumer: Consumer) -> int:
    document = Document(get_json(f"{service}/api/events/asyncapi.json"))
    registry = SchemaRegistryClient({"url": registry_url})
    # No schema of its own: the deserializer fetches the one the record's id names.
    deserializer = JSONDeserializer(None, schema_registry_client=registry)
    checked = 0
    for answer, record in posted(service, consumer):
        where = f"{record.topic()}/{record.partition()}/{record.offset()}"
        document.check(record)
        subject = f"{record.topic()}-value"
        registered = registry.get_latest_version(subject).schema_id
        carried = int.from_bytes(record.value()[1:5], "big")
        assert carried == registered, f"{where}: schema id {carried}, {subject} is {registered}"
        value = deserializer(record.value(), SerializationContext(record.topic(), MessageField.VALUE))
        assert value == answer["event"], f"{where}: JSONDeserializer gave {value}"
        print(f"{where}: schema id {carried} (the latest of {subject}); JSONDeserializer "
              f"(confluent-kafka {version('confluent-kafka')}) validated it against the "
              "registry's schema and gave back the event answered", flush=True)
        checked += 1
    return checked


def main() -> int:
    args = sys.argv[1:]
    if not ((args[:1] == ["records"] and len(args) == 3) or (args[:1] == ["wire"] and len(args) == 4)):
        print(__doc__, file=sys.stderr)
        return 2
    consumer = Consumer({"bootstrap.servers": args[2], "group.id": "contracts-check",
                         "enable.auto.commit": False})
    try:
        if args[0] == "records":
            checked = records(args[1], args[2], consumer)
        else:
            checked = wire(args[1], args[3], consumer)
    except AssertionError as error:
        print(f"contracts check failed: {error}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
    print(f"{checked} records checked", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
