#!/usr/bin/env python3
"""Writes the request bodies the benchmark sends.

    bodies.py single OUT        one movie event (the README's example, all fields set)
    bodies.py batch N OUT       a batch of N typed movie events, movie_id 1..N

Every event carries every optional field, so the record is of a realistic size (~280 bytes)
and validation has all of them to check. Batch items differ in movie_id (the record key), so
a batch spreads over partitions when the topic has several.
"""
import json
import sys

MOVIE = {
    "movie_id": 1,
    "title": "The Matrix",
    "action": "viewed",
    "user_id": 123,
    "rating": 9.5,
    "genres": ["Sci-Fi", "Action"],
    "description": "A computer hacker learns about the true nature of reality",
}


def main(argv):
    if len(argv) == 3 and argv[1] == "single":
        body = MOVIE
        out = argv[2]
    elif len(argv) == 4 and argv[1] == "batch" and argv[2].isdigit() and int(argv[2]) > 0:
        n = int(argv[2])
        body = [{"type": "movie", **MOVIE, "movie_id": i + 1} for i in range(n)]
        out = argv[3]
    else:
        sys.exit(__doc__)
    with open(out, "w", encoding="utf-8") as f:
        # Compact, as a client library would send it.
        json.dump(body, f, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv)
