"""Load with bookkeeping: every request the workers send is recorded with its answer, and a
monitor samples the service's health and memory while the load runs.

Each worker owns one movie id (the record key) and sends its events one after another, so the
order of a key's events in Kafka must be the order the worker sent them. Every event's title
carries the run's tag and a sequence number, which is how the ledger recognises it when it reads
the topic back, acknowledged or not."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass

import aiohttp

# After a refused connection (the service is down), a worker pauses this long rather than spin.
RECONNECT_PAUSE = 0.05


@dataclass
class Answer:
    seq: int
    key: int
    sent: float  # time.monotonic()
    done: float
    status: int | None  # None: no HTTP answer at all (refused, reset, client timeout)
    error: str = ""
    topic: str = ""
    partition: int = -1
    offset: int = -1
    id: str = ""

    @property
    def acked(self) -> bool:
        return self.status == 201


@dataclass
class Sample:
    at: float
    health: int | None
    rss_mib: float | None


class Traffic:
    """Closed-loop load from `workers` concurrent clients on an event loop of its own thread."""

    def __init__(self, url: str, tag: str, workers: int, timeout: float, first_key: int = 1000,
                 rss=None):
        self.url = url
        self.tag = tag
        self.workers = workers
        self.timeout = timeout
        self.first_key = first_key
        self.rss = rss or (lambda: None)
        self.answers: list[Answer] = []
        self.samples: list[Sample] = []
        self._seq = itertools.count()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> "Traffic":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> list[Answer]:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.timeout + 10)
        if self._thread.is_alive():
            raise RuntimeError("the load did not stop: a request outlived the client timeout")
        return self.answers

    def acked_since(self, since: float) -> int:
        return sum(1 for a in list(self.answers) if a.acked and a.done >= since)

    async def _run(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.workers + 1)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self._ready.set()
            tasks = [asyncio.create_task(self._worker(session, self.first_key + w))
                     for w in range(self.workers)]
            tasks.append(asyncio.create_task(self._monitor(session)))
            await self._stop.wait()
            await asyncio.gather(*tasks)

    async def _worker(self, session: aiohttp.ClientSession, key: int):
        while not self._stop.is_set():
            seq = next(self._seq)
            body = {"movie_id": key, "title": f"{self.tag}#{seq}", "action": "viewed"}
            sent = time.monotonic()
            answer = Answer(seq, key, sent, sent, None)
            try:
                async with session.post(f"{self.url}/api/events/movie", json=body) as response:
                    answer.status = response.status
                    data = await response.json(content_type=None)
                    if response.status == 201:
                        answer.topic, answer.partition = data["topic"], data["partition"]
                        answer.offset, answer.id = data["offset"], data["event"]["id"]
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
                answer.error = type(error).__name__
            answer.done = time.monotonic()
            self.answers.append(answer)
            if answer.status is None and not self._stop.is_set():
                await asyncio.sleep(RECONNECT_PAUSE)

    async def _monitor(self, session: aiohttp.ClientSession):
        while not self._stop.is_set():
            health = None
            try:
                async with session.get(f"{self.url}/api/events/health",
                                       timeout=aiohttp.ClientTimeout(total=2)) as response:
                    health = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            self.samples.append(Sample(time.monotonic(), health, self.rss()))
            try:
                await asyncio.wait_for(self._stop.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
