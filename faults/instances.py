"""6. Several instances of the service, one Redis: an instance is cut off from the broker's
answers (its Kafka traffic goes through faults/proxy.py, which stops forwarding them) and killed
with kill -9 under keyed load, and its clients retry on the others (README, "Idempotent
retries" and "Several instances"). The promise under test: for one key, on any instance, an
event is stored at most once. A retry of a request the dead instance had claimed meets its
claim (409) until the lease lapses, then looks in Kafka for what the dead instance stored and
answers that, marked replayed; only what is missing is published. So every event must end with
a 201 naming its one record, and no record may be there twice."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from pathlib import Path

from ledger import FOREVER
from processes import Failure, wait_until
from proxy import Proxy
from scenarios import WARM_UP, Lab, Outcome, exits_zero, finish, healthy

REDIS = Path(__file__).resolve().parent.parent / "redis"
INSTANCES = 3
# How much longer than the request timeout a claim outlives an instance that died holding it
# (the service's CLAIM_GRACE, src/http/state.rs): until then a retry of its request gets 409.
CLAIM_GRACE = 5.0
# The least time the instance is cut off before the kill -9, for what it sends the broker to be
# stored; it stays cut off until every one of its clients waits on it. Well short of the
# delivery timeout, after which it would answer its requests itself.
HOLD = 0.5


class Redis:
    """A private redis-server (redis/start.sh --dir), nothing persisted; `stop()` removes it."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.url = ""

    def start(self) -> str:
        out = subprocess.run([REDIS / "start.sh", "--dir", self.dir], stdout=subprocess.PIPE,
                             text=True)
        if out.returncode != 0:
            raise Failure(f"redis/start.sh --dir {self.dir} failed with status {out.returncode}")
        self.url = out.stdout.strip()
        return self.url

    def stop(self):
        subprocess.run([REDIS / "stop.sh", "--dir", self.dir], check=False)


def instance_kill(lab: Lab) -> Outcome:
    """6. Three instances sharing Redis; one is cut off from the broker's answers and killed
    under keyed load, its clients retrying on the others with the same key and body until a
    201."""
    name = "instance-kill"
    outcome = Outcome("6. an instance kill -9 under keyed load, retries on another")
    delivery_ms = 2000
    request_ms = delivery_ms + 1500
    lease = request_ms / 1000 + CLAIM_GRACE
    # A retry of a claimed request waits out the lease (409s), then searches Kafka and may
    # publish, within one request timeout. An instance runs one search at a time, so retries
    # that reach it together wait their turn: the deadline leaves 10 s more for that.
    retry_for = lease + request_ms / 1000 + 10
    redis = Redis(lab.work / "redis")
    # The victim reaches the broker through the proxy (one node: the suite's broker).
    [(proxied, upstream)] = lab.broker.proxied()
    proxy = Proxy(proxied, upstream).start()
    try:
        env = {"REDIS_URL": redis.start(), "KAFKA_TOPIC_PARTITIONS": INSTANCES,
               "KAFKA_DELIVERY_TIMEOUT_MS": delivery_ms, "HTTP_REQUEST_TIMEOUT_MS": request_ms}
        services = [lab.service(name, lab.broker, f"{name}-{i}", **env,
                                **({"KAFKA_BROKERS": proxied} if i == 0 else {})).start()
                    for i in range(INSTANCES)]
        for service in services:
            wait_until("the instances to be healthy", lambda: healthy(service), 60)
        workers = 8 * INSTANCES
        traffic = lab.traffic([s.url for s in services], lab.tag(name), workers,
                              timeout=request_ms / 1000 + 2, retry_for=retry_for)
        began = time.monotonic()
        wait_until("steady load",
                   lambda: time.monotonic() - began > WARM_UP and traffic.acked_since(0) > 0, 30)
        # Instance 0: its clients' retries go to instance 1 first, then 2, and the monitor
        # samples the last one, which lives. Cut off, it still sends what it holds and the
        # broker stores it, but it never learns so and answers none of it: each of its clients
        # is soon waiting on a request whose event is stored, unanswered, when the kill comes.
        victim, survivors = services[0], services[1:]
        clients = len(range(0, workers, INSTANCES))
        cut = time.monotonic()
        proxy.hold()
        stuck = False
        try:
            wait_until("every client of the cut-off instance waiting on it, the broker's answers "
                       "to it held",
                       lambda: (time.monotonic() - cut >= HOLD and proxy.held_bytes() > 0
                                and traffic.waiting_on(victim.url) >= clients), 5, 0.01)
            stuck = True
        except Failure:
            pass
        outcome.check("the cut caught every client of the instance waiting on it", stuck,
                      f"{traffic.waiting_on(victim.url)} of {clients} waiting; "
                      f"{proxy.held_bytes()} bytes of the broker's answers held")
        died, died_at = time.monotonic(), time.time()
        victim.kill()
        time.sleep(10 if lab.full else 2)  # its clients meet a dead instance, and move on
        traffic.stop()
        for service in survivors:
            exits_zero(outcome, service)
        outcome.notes.append(f"cut off from the broker's answers {died - cut:.1f} s before the "
                             f"kill ({proxy.held_bytes()} bytes held)")
        retry_checks(outcome, traffic.answers, cut, died, died_at, workers, retry_for)
        finish(outcome, traffic.answers, traffic.crashes, lab.broker, lab.topic(name),
               lab.tag(name), faults=[(cut, FOREVER)])
    finally:
        proxy.stop()
        redis.stop()
    return outcome


def retry_checks(outcome: Outcome, answers, cut: float, died: float, died_at: float,
                 workers: int, retry_for: float):
    """`cut` is when the victim was cut off from the broker's answers (time.monotonic()),
    `died` when it was killed (`died_at` the same in time.time())."""
    answers = list(answers)
    first_key = min((a.key for a in answers), default=0)
    retried = [a for a in answers if a.attempts > 1]
    # Sent to the victim first (worker w's first attempt goes to instance w % INSTANCES).
    theirs = [a for a in retried if (a.key - first_key) % INSTANCES == 0]
    caught = [a for a in theirs if a.sent < died < a.done]  # unanswered when it died
    not_created = [a for a in answers if not a.acked]
    outcome.check("every event eventually 201", not not_created,
                  f"{len(answers) - len(not_created)} of {len(answers)}" + (
                      f"; e.g. {' | '.join(describe(a) for a in not_created[:3])}"
                      if not_created else ""))
    outcome.check("the kill caught requests in flight on the killed instance", caught,
                  f"{len(caught)}, retried on the others")
    # The event a 201 names was made by the instance that received its attempt, timed then
    # (its `timestamp`; the ledger holds the echo to the record): before the kill, the victim,
    # since its clients' retries came after it and another instance publishes a retry's event
    # only once the victim's claim has lapsed.
    kept = [a for a in theirs if a.acked and received(a) < died_at]
    # The scenario's point: without such an event it proves only that clients fail over.
    outcome.check("the kill caught events the killed instance had stored, unanswered", kept,
                  f"{len(kept)}, each answered by another")
    outcome.check("every event the killed instance stored is answered replayed",
                  all(a.replayed for a in kept),
                  "; ".join(describe(a) + ", not replayed" for a in kept if not a.replayed))
    early = [a for a in retried if a.done < cut]
    outcome.check("no event retried before the cut", not early,
                  "; ".join(describe(a) for a in early[:3]))
    replayed = [a for a in retried if a.replayed]
    slowest = max((a.done - a.sent for a in retried if a.acked), default=0.0)
    outcome.notes.append(
        f"{len(retried)} events retried ({sum(a.attempts - 1 for a in retried)} retries; "
        f"{len(caught)} in flight at the kill; {len(kept)} answered with the record the killed "
        f"instance stored), {len(replayed)} answered with Idempotent-Replayed: true; "
        f"longest time to a 201 for a retried event {slowest:.1f} s "
        f"(deadline {retry_for:.1f} s); {workers} clients")


def received(a) -> float:
    """When the instance that made the event a 201 echoes received its request (time.time());
    infinity when the answer does not say (the ledger counts such a 201 as wrong)."""
    try:
        return datetime.fromisoformat(a.event["timestamp"]).timestamp()
    except (TypeError, KeyError, ValueError):
        return float("inf")


def describe(a) -> str:
    return f"{a.describe()} after {a.attempts} attempts in {a.done - a.sent:.1f} s"
