"""Load with bookkeeping: every request the workers send is recorded with its answer, and a
monitor samples the service's health and memory while the load runs.

Each worker owns one movie id (the record key) and sends its events one after another, so the
order of a key's events in Kafka must be the order the worker sent them. Every event's title
carries the run's tag and a sequence number (ledger.marker), which is how the ledger recognises
it when it reads the topic back, acknowledged or not. Nothing a worker gets back can stop it: an
answer it cannot read is recorded as such, and anything it did not expect (a bug in this client)
is recorded in `crashes`, naming the request and what came back, which fails the scenario.

By default each event is sent once, to one service. With `retry_for`, the load is a client
retrying the way README's "Idempotent retries" asks: every event carries an `Idempotency-Key`
of its own (`<tag>-<seq>`); a worker's first attempt goes to its own instance (urls[w % n]),
and after no answer, a 5xx, a 408, a 409 (still in progress) or a 429 the same body and key
goes to the next instance in turn, after RETRY_PAUSE, until a 201 or until `retry_for` seconds
have passed since the first attempt. The event's Answer is its last attempt's, timed from the
first attempt to the last answer, with the attempts counted."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass

import aiohttp

from processes import Failure
from ledger import EVENT_TYPE, Answer, marker

# After a refused connection (the service is down), a worker pauses this long rather than spin.
RECONNECT_PAUSE = 0.05
# A retrying worker pauses this long before each retry: a 409 says the first attempt's claim is
# still held (until its lease lapses, when its instance died), and asking again at once only
# spins.
RETRY_PAUSE = 0.2
# The answers after which a retrying worker sends the event again (and every 5xx, and none):
# 408 too, the request timeout, which a retry may meet while it waits for the instance's one
# search for earlier records at a time (a run of scenario 6 met one, 7 searches queued).
RETRIED = frozenset({408, 409, 429})


@dataclass
class Sample:
    at: float
    health: int | None
    rss_mib: float | None


def take_body(answer: Answer, raw: bytes):
    """Records what a 201's body says; a body that is not a 201's goes to `answer.problem`."""
    if answer.status != 201:
        return
    try:
        data = json.loads(raw)
    except ValueError as error:
        answer.problem = f"not JSON ({error})"
        answer.body = raw[:300].decode(errors="replace")
        return
    answer.read_created(data)


class Traffic:
    """Closed-loop load from `workers` concurrent clients on an event loop of its own thread.

    url        the service, or a list of instances of it (the monitor samples the last one)
    timeout    the client's timeout for one attempt
    retry_for  None: each event is sent once. Seconds: each event is retried with its own
               Idempotency-Key, on the next instance each time, until a 201 or this deadline
               (see the module's docstring)."""

    def __init__(self, url: str | list[str], tag: str, workers: int, timeout: float,
                 first_key: int = 1000, rss=None, retry_for: float | None = None):
        self.urls = [url] if isinstance(url, str) else list(url)
        self.url = self.urls[-1]
        self.retry_for = retry_for
        self.tag = tag
        self.workers = workers
        self.timeout = timeout
        self.first_key = first_key
        self.rss = rss or (lambda: None)
        self.answers: list[Answer] = []
        self.samples: list[Sample] = []
        self.crashes: list[str] = []  # what went wrong in this client, request by request
        # The attempts awaiting an answer: sequence number -> the url it went to.
        self.in_flight: dict[int, str] = {}
        self._seq = itertools.count()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = False

    def start(self) -> "Traffic":
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            self.crashes.append("the load did not start within 10 s")
            raise Failure(f"the load did not start: {'; '.join(self.crashes)}")
        return self

    def _main(self):
        try:
            asyncio.run(self._run())
        except BaseException as error:  # the loop itself failed: no request can be trusted
            self.crashes.append(f"the load's event loop failed: {type(error).__name__}: {error}")
        finally:
            self._ready.set()

    def stop(self) -> list[Answer]:
        if self._stopped:
            return self.answers
        self._stopped = True
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop has just ended on its own
                pass
        # A retrying worker finishes its event: until a 201, or its deadline and one attempt.
        self._thread.join(self.timeout + (self.retry_for or 0) + 10)
        if self._thread.is_alive():
            raise Failure("the load did not stop: a request outlived the client timeout")
        return self.answers

    def acked_since(self, since: float) -> int:
        return sum(1 for a in list(self.answers) if a.acked and a.done >= since)

    def waiting_on(self, url: str) -> int:
        """How many attempts sent to `url` await an answer."""
        return list(self.in_flight.values()).count(url)

    async def _run(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.workers + 1)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self._ready.set()
            tasks = [asyncio.create_task(self._worker(session, w)) for w in range(self.workers)]
            tasks.append(asyncio.create_task(self._monitor(session)))
            await self._stop.wait()
            for task, result in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True)):
                if isinstance(result, BaseException):
                    self.crashes.append(f"{task.get_coro().__name__} ended with "
                                        f"{type(result).__name__}: {result}")

    async def _worker(self, session: aiohttp.ClientSession, w: int):
        key = self.first_key + w
        while not self._stop.is_set():
            seq = next(self._seq)
            body = {"movie_id": key, "title": marker(self.tag, seq), "action": "viewed"}
            sent = time.monotonic()
            if self.retry_for is None:
                answer = await self._attempt(session, self.urls[w % len(self.urls)], seq, key,
                                             sent, body)
            else:
                answer = await self._until_created(session, w, seq, key, sent, body)
            answer.done = time.monotonic()
            self.answers.append(answer)
            if answer.status is None and not self._stop.is_set():
                await asyncio.sleep(RECONNECT_PAUSE)

    async def _until_created(self, session: aiohttp.ClientSession, w: int, seq: int, key: int,
                             sent: float, body: dict) -> Answer:
        """Request #seq with its own Idempotency-Key, retried on the next instance each time
        until a 201 or the deadline, even once the load is told to stop: an event left
        unanswered would be just what this load is there to rule out."""
        headers = {"Idempotency-Key": f"{self.tag}-{seq}"}
        for attempt in itertools.count(1):
            url = self.urls[(w + attempt - 1) % len(self.urls)]
            crashes = len(self.crashes)
            answer = await self._attempt(session, url, seq, key, sent, body, headers)
            answer.attempts = attempt
            retry = answer.status is None or answer.status >= 500 or answer.status in RETRIED
            if (not retry or time.monotonic() - sent > self.retry_for
                    or len(self.crashes) > crashes):  # a bug in this client: no use going on
                return answer
            await asyncio.sleep(RETRY_PAUSE)

    async def _attempt(self, session: aiohttp.ClientSession, url: str, seq: int, key: int,
                       sent: float, body: dict, headers: dict | None = None) -> Answer:
        """One POST of request #seq: its answer, or why there was none."""
        answer = Answer(seq, key, sent, sent, None, payload=body)
        raw = b""
        self.in_flight[seq] = url
        try:
            try:
                async with session.post(f"{url}/api/events/{EVENT_TYPE}", json=body,
                                        headers=headers) as response:
                    answer.status = response.status
                    answer.replayed = response.headers.get("Idempotent-Replayed") == "true"
                    raw = await response.read()
                take_body(answer, raw)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                answer.error = f"{type(error).__name__}: {error}"[:200]
                if answer.status is not None:  # the head came, the body did not
                    answer.problem = f"its body could not be read ({answer.error})"
        except Exception as error:  # a bug in this client: it fails the run, named
            frame = traceback.extract_tb(error.__traceback__)[-1]
            self.crashes.append(
                f"{answer.describe()}: {type(error).__name__}: {error} (body {raw[:200]!r}) "
                f"at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}")
            answer.problem = answer.problem or f"the client failed on it: {error!r}"
        finally:
            del self.in_flight[seq]
        return answer

    async def _monitor(self, session: aiohttp.ClientSession):
        while not self._stop.is_set():
            health = None
            try:
                async with session.get(f"{self.url}/api/events/health",
                                       timeout=aiohttp.ClientTimeout(total=2)) as response:
                    health = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            self.samples.append(Sample(time.monotonic(), health, self.rss()))
            try:
                await asyncio.wait_for(self._stop.wait(), 0.1)
            except asyncio.TimeoutError:
                pass


def post_batches(url: str, tag: str, events: int, batch: int = 1000, keys: int = 97,
                 first_key: int = 1) -> tuple[list[Answer], list[str]]:
    """Posts `events` movie events in batches of `batch`, one batch after another, and returns an
    Answer per item (an item's status is 201 when its result says it was stored, else the
    batch's status) and what went wrong in this client. Item n is request #n with key
    first_key + n % keys, so a key's items are sent in the order of their sequence numbers."""
    answers: list[Answer] = []
    crashes: list[str] = []
    for start in range(0, events, batch):
        seqs = range(start, min(start + batch, events))
        mine = [Answer(seq, first_key + seq % keys, 0.0, 0.0, None,
                       payload={"movie_id": first_key + seq % keys, "title": marker(tag, seq),
                                "action": "viewed"}) for seq in seqs]
        items = [{"type": EVENT_TYPE, **a.payload} for a in mine]
        request = urllib.request.Request(f"{url}/api/events/batch", json.dumps(items).encode(),
                                         {"content-type": "application/json"})
        sent = time.monotonic()
        status, raw, error = None, b"", ""
        try:
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, raw = response.status, response.read()
            except urllib.error.HTTPError as answer:
                status, raw = answer.code, answer.read()
            except OSError as failure:
                error = f"{type(failure).__name__}: {failure}"[:200]
            done = time.monotonic()
            results = None
            if status is not None:
                try:
                    data = json.loads(raw)
                    results = data.get("results") if isinstance(data, dict) else None
                except ValueError:
                    pass
            for i, a in enumerate(mine):
                a.sent, a.done, a.error = sent, done, error
                a.status = status
                result = results[i] if isinstance(results, list) and i < len(results) else None
                if status == 201 or (isinstance(result, dict) and result.get("status") == "success"):
                    a.status = 201
                    if result is None:
                        a.problem = f"the batch's answer has no result for item {i}"
                        a.body = raw[:300].decode(errors="replace")
                    else:
                        a.read_created(result)
        except Exception as failure:  # a bug in this client: it fails the run, named
            crashes.append(f"batch of requests #{seqs[0]}..#{seqs[-1]} answered {status}: "
                           f"{type(failure).__name__}: {failure} (body {raw[:200]!r})")
        answers.extend(mine)
    return answers, crashes
