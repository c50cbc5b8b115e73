#!/usr/bin/env python3
"""Posts one event to the CinemaAbyss Events Service with an Idempotency-Key, retrying as the
service's answers ask: the same key on every attempt of one event, so that a retry never
publishes twice; a retry after connection errors, 5xx, 409 (the same key still in progress) and
429, waiting Retry-After when the answer has one; never after any other 4xx, which the same
request would get again. Python 3.8 or newer, standard library only.

    post_event.py [--url http://localhost:8082] [--type movie|user|payment] [--body JSON]
                  [--key KEY] [--again]

--again sends the event once more with the same key after it was stored, as a retry whose first
answer was lost would: the service answers with the first answer, replayed.
"""

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid

MAX_ATTEMPTS = 6  # the waits between them add up to about 15 s at most, plus Retry-After
# Longer than the service's own request timeout (HTTP_REQUEST_TIMEOUT_MS, 15 s).
TIMEOUT_SECONDS = 20


def retryable(status):
    """Whether a status may change on a retry of the same request."""
    # 5xx: 500 not known to be stored, 503 at capacity (the key keeps it to one event);
    # 409: the first attempt with this key is still being served; 429: over the rate limit.
    # 2xx is done, and any other 4xx would be answered the same again.
    return status >= 500 or status in (409, 429)


def post_event(url, event, key):
    """Posts `event` (a dict) with `key`; returns (status, body, replayed) of the last answer."""
    body = json.dumps(event).encode()
    backoff = 0.2
    for attempt in range(1, MAX_ATTEMPTS + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        wait = None
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return response.status, response.read(), replayed(response)
        except urllib.error.HTTPError as answer:  # 4xx and 5xx
            status, text = answer.code, answer.read()
            if not retryable(status) or attempt == MAX_ATTEMPTS:
                return status, text, replayed(answer)
            wait = retry_after(answer)
            what = str(status)
        except (urllib.error.URLError, OSError) as error:  # refused, reset, timed out
            if attempt == MAX_ATTEMPTS:
                raise
            what = str(getattr(error, "reason", error))
        if wait is None:
            wait = backoff / 2 + random.uniform(0, backoff / 2)  # jitter
            backoff = min(2 * backoff, 5.0)
        else:
            what += " (Retry-After)"
        print(f"client: attempt {attempt}: {what}; retrying in {wait:.3f}s", file=sys.stderr)
        time.sleep(wait)
    raise AssertionError("unreachable")


def replayed(response):
    return response.headers.get("Idempotent-Replayed") == "true"


def retry_after(response):
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:8082")
    parser.add_argument("--type", default="movie", choices=["movie", "user", "payment"])
    parser.add_argument("--body", default='{"movie_id": 1, "title": "Test Movie", "action": "viewed"}')
    parser.add_argument("--key", help="the Idempotency-Key (default: a new random one)")
    parser.add_argument("--again", action="store_true",
                        help="once stored, send the same event with the same key again")
    args = parser.parse_args()
    key = args.key or str(uuid.uuid4())  # one key per event, made once, before the first attempt
    url = f"{args.url}/api/events/{args.type}"
    for _ in range(2 if args.again else 1):
        try:
            status, body, was_replayed = post_event(url, json.loads(args.body), key)
        except OSError as error:
            print(f"client: gave up after {MAX_ATTEMPTS} attempts: {error}", file=sys.stderr)
            return 1
        print(status, f"Idempotent-Replayed: {str(was_replayed).lower()}", body.decode().strip())
        if status // 100 != 2:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
