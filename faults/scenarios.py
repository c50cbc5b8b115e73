"""The five fault scenarios of RELIABILITY.md. Each drives load with bookkeeping, breaks something
on purpose, reads the topic back with an independent client and returns its checks. Every
scenario enforces every column it prints (ledger.py defines them): lost, wrong, duplicated, out
of order, 4xx / other and failed outside faults must all be 0, no load worker may fail, and a
service the scenario stops must exit 0."""

from __future__ import annotations

import re
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from processes import Broker, Failure, Service, tail, wait_until
from ledger import FOREVER, Answer, Tally, committed_everything, read_topic, tally
from traffic import Traffic, post_batches

MOVIE_TOPIC = "movie-events"
# Load runs this long before anything is broken: past the first seconds' burst, the rate the
# outage scenarios compare against is the steady one.
WARM_UP = 8.0
# The seconds before the kill whose median rate is the throughput to come back to.
BASELINE_SECONDS = 4
# The consumers' session timeout in consumer-crash (librdkafka's session.timeout.ms).
SESSION_TIMEOUT_MS = 6000
PROCESSED = re.compile(r"\[CONSUMER\] Topic: (\S+), Partition: (\d+), Offset: (\d+)")


@dataclass
class Outcome:
    name: str
    tally: Tally | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, what: str, ok: bool, detail: str = ""):
        self.checks.append((what, bool(ok), detail))

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)


@dataclass
class Lab:
    """What the scenarios share: the binary, a scratch directory, the run's id and its length."""
    binary: Path
    work: Path
    run: str
    full: bool
    broker: Broker | None = None
    # What the current scenario started, so that whatever it leaves running is stopped.
    services: list[Service] = field(default_factory=list)
    loads: list[Traffic] = field(default_factory=list)

    def service(self, scenario: str, kafka: Broker, log_name: str = "", **env) -> Service:
        env = {"KAFKA_BROKERS": kafka.bootstrap, "KAFKA_TOPIC_PREFIX": f"{scenario}-{self.run}.",
               "KAFKA_GROUP_ID": f"{scenario}-{self.run}",
               **{k: str(v) for k, v in env.items()}}
        # health="live": start() returns once it serves HTTP; each scenario waits for readiness.
        service = Service(env, binary=self.binary, health="live",
                          log=self.work / f"{log_name or scenario}.log")
        self.services.append(service)
        return service

    def traffic(self, *args, **kwargs) -> Traffic:
        load = Traffic(*args, **kwargs)
        self.loads.append(load)
        return load.start()

    def reap(self) -> list[str]:
        """Stops the load and kills the services a scenario left running (one that failed half
        way); returns what it had to stop."""
        left = []
        for load in self.loads:
            try:
                load.stop()
            except Failure as error:
                left.append(f"load: {error}")
        for service in self.services:
            if service.alive():
                service.kill()
                left.append(f"service pid {service.pid} ({service.log.name})")
        self.loads, self.services = [], []
        return left

    def tag(self, scenario: str) -> str:
        return f"{scenario}-{self.run}"

    def topic(self, scenario: str) -> str:
        return f"{scenario}-{self.run}.{MOVIE_TOPIC}"


def healthy(service: Service, traffic: Traffic | None = None, since: float = 0.0):
    """The latest health answer, if it came after `since`, was 200."""
    if traffic is None:
        try:
            with urllib.request.urlopen(f"{service.url}/api/events/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
    recent = [s for s in traffic.samples[-5:] if s.at >= since]
    return bool(recent) and recent[-1].health == 200


def health_was(traffic: Traffic, status: int, since: float) -> bool:
    return any(s.health == status for s in traffic.samples if s.at >= since)


def finish(outcome: Outcome, answers: list[Answer], crashes: list[str], kafka: Broker,
           topic: str, tag: str, faults: list[tuple[float, float]] = (),
           failover_copies: bool = False) -> Tally:
    """Reads `topic` back, holds `answers` against it and adds a check for every column."""
    outcome.check("every load worker ran to its end", not crashes,
                  "; ".join(crashes[:3]) + (f" (and {len(crashes) - 3} more)"
                                            if len(crashes) > 3 else ""))
    t = tally(answers, read_topic(kafka.bootstrap, topic, tag), topic, faults,
              failover_copies=failover_copies)
    outcome.tally = t
    for what, ok, detail in t.checks():
        outcome.check(what, ok, detail)
    if t.statuses:
        outcome.notes.append("not 201: " + ", ".join(
            f"{status if status is not None else 'no answer'} ×{n}"
            for status, n in sorted(t.statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))))
    if t.stored_unacked:
        outcome.notes.append(f"{t.stored_unacked} stored without a 201 (allowed)")
    return t


def exits_zero(outcome: Outcome, service: Service, **stop) -> tuple[int, float]:
    """SIGTERM `service` and check that it exits 0."""
    code, took = service.stop(**stop)
    outcome.check(f"the service ({service.log.stem}) exits 0 on SIGTERM", code == 0,
                  f"status {code} after {took:.2f} s")
    if code != 0:  # the shutdown's own lines say what it waited on
        print(f"faults: the end of {service.log}:\n{tail(service.log, 25)}", flush=True)
    return code, took


@dataclass
class Outage:
    """One broker outage under load (broker_outage), as the client saw it: the times are the
    traffic's clock (time.monotonic)."""
    service: Service
    traffic: Traffic
    request_ms: int
    killed: float  # the kill was sent
    down: float  # the broker's process was gone
    reviving: float  # its restart began
    revived: float  # it listened again


def broker_outage(lab: Lab, name: str, outage: float, workers: int, delivery_ms: int) -> Outage:
    """Load, then the broker is killed for `outage` seconds and restarted on its data."""
    request_ms = delivery_ms + 2000
    kafka = lab.broker
    service = lab.service(name, kafka, KAFKA_DELIVERY_TIMEOUT_MS=delivery_ms,
                          HTTP_REQUEST_TIMEOUT_MS=request_ms).start()
    wait_until("the service to be healthy", lambda: healthy(service), 60)
    traffic = lab.traffic(service.url, lab.tag(name), workers, timeout=request_ms / 1000 + 5,
                          rss=service.memory_mib)
    began = time.monotonic()
    wait_until("steady load",
               lambda: time.monotonic() - began > WARM_UP and traffic.acked_since(0) > 0, 30)
    killed = time.monotonic()
    kafka.kill()  # returns once the process is gone
    down = time.monotonic()
    time.sleep(outage)  # the outage itself: load keeps running against a service without Kafka
    # The broker cannot serve before it is started, but may serve a while before node.sh sees
    # it listen: the outage, for the "no 201" checks, ends here; recovery counts from `revived`.
    reviving = time.monotonic()
    kafka.revive()
    return Outage(service, traffic, request_ms, killed, down, reviving, time.monotonic())


def outage_checks(outcome: Outcome, outage: Outage, bound: float):
    # Sent once the broker was gone and answered before it was started again: nothing can have
    # stored these. Taken by when they were sent, not answered, because on a loaded machine the
    # client reads a 201 that left the service before the kill a while after it (one CI run read
    # 198 more than half a second after).
    traffic = outage.traffic
    during = [a for a in traffic.answers if outage.down < a.sent and a.done < outage.reviving]
    acked = sum(a.acked for a in during)
    not_5xx = [a.status for a in during if a.status is None or a.status < 500]
    outcome.check("no 201 while the broker was down", acked == 0 and during,
                  f"{len(during)} sent and answered in the outage, {acked} of them 201")
    outcome.check("every answer in the outage a 5xx", not not_5xx,
                  f"others: {not_5xx[:5]}" if not_5xx else "")
    slowest = max(a.done - a.sent for a in traffic.answers)
    outcome.check(f"no request took longer than {bound:.1f} s", slowest <= bound,
                  f"slowest {slowest:.2f} s")


def broker_crash(lab: Lab) -> Outcome:
    """1. One broker, kill -9 under load, restarted on the same data."""
    name, outcome = "broker-crash", Outcome("1. broker kill -9 and restart")
    # The outage outlasts twice the delivery timeout and librdkafka's 1 s timeout scan, so that
    # requests sent once the broker is gone are answered (500) in it, however slow the machine:
    # a worker's request in flight at the kill times out first, then the one it sends next.
    delivery_ms = 3000
    outage = broker_outage(lab, name, outage=10 if lab.full else 2 * delivery_ms / 1000 + 2,
                           workers=32, delivery_ms=delivery_ms)
    service, traffic = outage.service, outage.traffic
    wait_until("health 200 after the restart",
               lambda: healthy(service, traffic, outage.revived), 60)
    wait_until("201s after the restart", lambda: traffic.acked_since(outage.revived) >= 200, 60)
    recovered = time.monotonic()
    pid_before = service.pid
    traffic.stop()
    outcome.check("health went 503 in the outage", health_was(traffic, 503, outage.killed))
    outcome.check("recovered without a restart", service.alive() and service.pid == pid_before)
    outage_checks(outcome, outage, bound=outage.request_ms / 1000 + 0.5)
    exits_zero(outcome, service)
    finish(outcome, traffic.answers, traffic.crashes, lab.broker, lab.topic(name), lab.tag(name),
           faults=[(outage.killed, recovered)])
    return outcome


def long_outage(lab: Lab) -> Outcome:
    """5. The broker is away for several delivery timeouts; throughput must come back."""
    name, outcome = "long-outage", Outcome("5. broker away longer than the delivery timeout")
    delivery_ms = 5000 if lab.full else 2000
    outage = broker_outage(lab, name, outage=60 if lab.full else 10, workers=128,
                           delivery_ms=delivery_ms)
    service, traffic = outage.service, outage.traffic
    killed, revived = outage.killed, outage.revived
    rate = steady_rate(traffic, killed)
    window = 2.0

    def recent_rate():
        now = time.monotonic()
        return (now - revived >= window and
                (traffic.acked_since(now - window) / window) >= 0.9 * rate)

    try:
        wait_until("throughput back to 90%", recent_rate, 35, interval=0.25)
        recovered_at = time.monotonic()
    except Failure:
        recovered_at = FOREVER  # the check below fails; the fault lasted to the end
    stopped = time.monotonic()
    traffic.stop()
    exits_zero(outcome, service)
    recovered = recovery_time(traffic, revived, rate, window)
    outage_rss = [s.rss_mib for s in traffic.samples if killed < s.at < revived and s.rss_mib]
    before_rss = [s.rss_mib for s in traffic.samples if s.at < killed and s.rss_mib]
    outage_checks(outcome, outage, bound=delivery_ms / 1000 + 1.5)
    peak, peak_before = max(outage_rss, default=None), max(before_rss, default=0)
    outcome.check("memory bounded in the outage (< 256 MiB)", peak is not None and peak < 256,
                  f"peak {peak:.0f} MiB (before: {peak_before:.0f} MiB)" if peak is not None
                  else "no memory sample in the outage")
    outcome.check("throughput back to 90% within 30 s", recovered is not None and recovered <= 30,
                  f"after {recovered:.1f} s" if recovered is not None
                  else f"not within {stopped - revived:.0f} s")
    outcome.notes.append(f"baseline {rate:.0f} 201/s; outage {revived - killed:.0f} s, "
                         f"delivery timeout {delivery_ms / 1000:.0f} s; 201/s in each second "
                         f"after the restart: {per_second(traffic, revived, min(stopped, revived + 12))}")
    finish(outcome, traffic.answers, traffic.crashes, lab.broker, lab.topic(name), lab.tag(name),
           faults=[(killed, recovered_at)])
    return outcome


def steady_rate(traffic: Traffic, before: float) -> float:
    """The median of the 201s per second in the BASELINE_SECONDS whole seconds before `before`."""
    return statistics.median(per_second(traffic, before - BASELINE_SECONDS, before))


def per_second(traffic: Traffic, since: float, until: float) -> list[int]:
    """The 201s answered in each whole second from `since` to `until`."""
    counts = [0] * max(1, int(until - since))
    for a in traffic.answers:
        if a.acked and 0 <= a.done - since < len(counts):
            counts[int(a.done - since)] += 1
    return counts


def recovery_time(traffic: Traffic, revived: float, rate: float, window: float) -> float | None:
    """Seconds from the restart to the end of the first window running at 90% of `rate`."""
    done = sorted(a.done for a in traffic.answers if a.acked and a.done >= revived)
    start = 0
    for end, t in enumerate(done):
        while done[start] < t - window:
            start += 1
        if t - revived >= window and (end - start + 1) / window >= 0.9 * rate:
            return t - revived
    return None


def leader_kills(lab: Lab) -> Outcome:
    """2. Three brokers; the leader of each partition in turn is killed under load: three times
    (every partition's, each node once at least) in CI, five times in a full run."""
    rounds = 5 if lab.full else 3
    name, outcome = "leader-kills", Outcome(f"2. 3 brokers, partition leader kill -9 ×{rounds}")
    cluster = Broker(lab.work / "cluster", nodes=3)
    try:
        starting = time.monotonic()
        cluster.start()
        outcome.notes.append(f"cluster started in {time.monotonic() - starting:.0f} s")
        # A delivery timeout above the cluster's failover time (KRaft fences a dead broker after
        # broker.session.timeout.ms, 9 s), as README says to set with several brokers: with the
        # 5 s default, produce requests to a leader waiting for a dead follower time out in
        # flight, librdkafka bumps the producer's epoch, and a record in flight then can be
        # stored twice (one CI run stored 5 records twice).
        service = lab.service(name, cluster, KAFKA_TOPIC_PARTITIONS=3,
                              KAFKA_TOPIC_REPLICATION_FACTOR=3, KAFKA_DELIVERY_TIMEOUT_MS=12000,
                              HTTP_REQUEST_TIMEOUT_MS=14500, SHUTDOWN_TIMEOUT_MS=20000).start()
        wait_until("the service to be healthy", lambda: healthy(service), 60)
        topic = lab.topic(name)
        # Its brokers die on purpose: only librdkafka's critical lines are worth printing.
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 2})
        # A cluster in its first seconds is still electing the new topics' leaders: one CI run's
        # first requests met metadata timeouts there, before any kill, and one 201 named no
        # offset (RELIABILITY.md). The kills are the faults under test, so the load starts on a
        # settled cluster.
        wait_until("every replica in sync before the load", lambda: in_sync(admin, topic), 60,
                   0.5)
        traffic = lab.traffic(service.url, lab.tag(name), 24, timeout=20)
        wait_until("steady load", lambda: traffic.acked_since(0) > 500, 30)
        kills, faults = [], []
        for round_ in range(rounds):
            partition = round_ % 3
            leader = partitions(admin, topic)[partition].leader
            killed = time.monotonic()
            cluster.kill(leader)
            time.sleep(3 if lab.full else 1.5)  # the cluster runs without that node for a while
            cluster.revive(leader)
            wait_until("every replica back in sync", lambda: in_sync(admin, topic), 120, 0.5)
            wait_until("201s after the restart",
                       lambda: traffic.acked_since(time.monotonic() - 1) > 50, 60)
            faults.append((killed, time.monotonic()))
            kills.append(f"p{partition}: node {leader}, back in sync after "
                         f"{time.monotonic() - killed:.0f} s")
        traffic.stop()
        exits_zero(outcome, service)
        finish(outcome, traffic.answers, traffic.crashes, cluster, topic, lab.tag(name), faults,
               failover_copies=True)
        outcome.notes.append("; ".join(kills))
    finally:
        cluster.stop()
    return outcome


def partitions(admin: AdminClient, topic: str):
    return admin.list_topics(topic, timeout=10).topics[topic].partitions


def in_sync(admin: AdminClient, topic: str) -> bool:
    try:
        return all(len(p.isrs) == 3 and p.leader >= 0 for p in partitions(admin, topic).values())
    except Exception:  # metadata unavailable while brokers come and go; ask again
        return False


def sigterm(lab: Lab) -> Outcome:
    """3. SIGTERM under load: every 201 stored, exit within SHUTDOWN_TIMEOUT_MS."""
    name, outcome = "sigterm", Outcome("3. SIGTERM the service under load")
    bound_ms = 20000
    service = lab.service(name, lab.broker, SHUTDOWN_TIMEOUT_MS=bound_ms).start()
    wait_until("the service to be healthy", lambda: healthy(service), 60)
    traffic = lab.traffic(service.url, lab.tag(name), 64, timeout=20)
    wait_until("steady load", lambda: traffic.acked_since(0) > (5000 if lab.full else 2000), 60)
    signalled = time.monotonic()
    code, took = service.stop(within=bound_ms / 1000 + 10)
    traffic.stop()
    outcome.check("exit status 0", code == 0, f"status {code}")
    outcome.check(f"exit within {bound_ms / 1000:.0f} s", took <= bound_ms / 1000,
                  f"exited after {took:.2f} s")
    late = sum(a.acked for a in traffic.answers if a.done > signalled)
    outcome.notes.append(f"{late} requests in flight at SIGTERM were answered 201")
    # From the signal on, the service may refuse or drop what it has not accepted yet.
    finish(outcome, traffic.answers, traffic.crashes, lab.broker, lab.topic(name), lab.tag(name),
           faults=[(signalled, FOREVER)])
    return outcome


def consumer_crash(lab: Lab) -> Outcome:
    """4. kill -9 the service while its consumers work through a backlog, then restart it."""
    name, outcome = "consumer-crash", Outcome("4. kill -9 the service mid-processing")
    events = 300_000 if lab.full else 120_000
    env = {"KAFKA_TOPIC_PARTITIONS": 3}
    producer = lab.service(name, lab.broker, "consumer-crash-producer",
                           KAFKA_CONSUMERS_ENABLED="false", **env).start()
    # The killed service's consumers stay members of the group until their session times out,
    # and the restarted service gets no partition before then: 45 s at librdkafka's default,
    # most of this scenario's time. 6 s is the broker's minimum (group.min.session.timeout.ms).
    env["RDKAFKA_CONSUMER_SESSION_TIMEOUT_MS"] = SESSION_TIMEOUT_MS
    wait_until("the service to be healthy", lambda: healthy(producer), 60)
    answers, crashes = post_batches(producer.url, lab.tag(name), events)
    acked = sum(a.acked for a in answers)
    exits_zero(outcome, producer)

    first = lab.service(name, lab.broker, "consumer-crash-first", **env).start()
    topic = lab.topic(name)
    log = LogTail(first.log, topic)
    wait_until("a third of the backlog processed", lambda: log.count() >= events // 3, 60, 0.01)
    outcome.check("the first service ran until it was killed", first.alive(),
                  "" if first.alive() else f"it had exited with {first.proc.returncode}")
    first.kill()
    before = processed(first.log, topic)

    second = lab.service(name, lab.broker, "consumer-crash-second", **env).start()
    wait_until("the group to commit everything",
               lambda: committed_everything(lab.broker.bootstrap, f"{name}-{lab.run}", topic),
               120, 0.5)
    exits_zero(outcome, second)
    after = processed(second.log, topic)

    expected = set(range_of(lab.broker.bootstrap, topic))
    seen = set(before) | set(after)
    skipped = len(expected - seen)
    twice = (len(before) + len(after)) - len(seen)
    outcome.check("every event acknowledged", acked == events, f"{acked} of {events}")
    outcome.check("killed mid-processing", 0 < len(set(before)) < len(expected),
                  f"{len(set(before))} of {len(expected)} processed before the kill")
    outcome.check("no event skipped by the consumers", skipped == 0, f"{skipped} skipped")
    outcome.notes.append(f"{len(set(before))} processed before the kill; {twice} processed "
                         f"twice (at least once allows it)")
    # The backlog was posted while nothing was broken: every request had to be stored, once,
    # where its answer said, in its key's order.
    finish(outcome, answers, crashes, lab.broker, topic, lab.tag(name))
    return outcome


class LogTail:
    """Counts a service's processed-record lines as its log grows, reading each byte once."""

    def __init__(self, path: Path, topic: str):
        self.path, self.needle, self.seen, self.offset = path, f"Topic: {topic},".encode(), 0, 0

    def count(self) -> int:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk.rfind(b"\n") + 1
        self.seen += chunk[:complete].count(self.needle)
        self.offset += complete
        return self.seen


def processed(log: Path, topic: str) -> list[tuple[int, int]]:
    return [(int(m[2]), int(m[3])) for m in PROCESSED.finditer(log.read_text(errors="replace"))
            if m[1] == topic]


def range_of(bootstrap: str, topic: str):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-range"})
    try:
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            yield from ((p, o) for o in range(low, high))
    finally:
        consumer.close()


ALL = {"broker-crash": broker_crash, "leader-kills": leader_kills, "sigterm": sigterm,
       "consumer-crash": consumer_crash, "long-outage": long_outage}
