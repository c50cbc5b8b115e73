"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

README.md promises: every error is JSON, `{"error": "<message>"}` (plus `fields` or `items`).
Schemathesis' own checks test a body against the schema the document declares for its status,
and only for the statuses it declares; this check holds every error answer to the promise,
whatever its status (404, 405, 408, 413, 415 and any other the document does not list).
"""

import json
import re
import uuid

import schemathesis


@schemathesis.check
def error_is_json(ctx, response, case):
    """Every 4xx and 5xx answer is a JSON object with a non-empty string `error`."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):  # schemathesis keeps each header's values in a list
        content_type = content_type[0] if content_type else ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise AssertionError(
            f"{response.status_code} answered with Content-Type {content_type or '(none)'!r}, "
            f"not application/json; body: {response.text_lossy()[:200]!r}"
        )
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(
            f"{response.status_code} answered with a body that is not JSON ({error}): "
            f"{response.text_lossy()[:200]!r}"
        ) from None
    if not isinstance(body, dict):
        raise AssertionError(f"{response.status_code} answered with JSON that is not an object: {body!r}")
    message = body.get("error")
    if not isinstance(message, str) or not message.strip():
        raise AssertionError(
            f"{response.status_code} answered without a non-empty string `error`: {response.text_lossy()[:200]!r}"
        )
    return None


# serde_json reads a number into an i64, a u64 or else an f64; an integer literal beyond the f64
# range (about 1.8e308, or exactly f64::MAX written out as 309 digits) is "number out of range",
# and the service answers 400 "malformed JSON" even in a field it ignores. RFC 8259 lets a parser
# limit the range of numbers, so such answers are right; but a schema cannot say it, and schemathesis
# writes such integers into the unknown fields it adds to valid bodies.
_LARGEST_INTEGER = 10**308


def _normalise(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, int) and abs(value) > _LARGEST_INTEGER:
        return _LARGEST_INTEGER if value > 0 else -_LARGEST_INTEGER
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    return value


@schemathesis.hook
def map_body(ctx, body):
    """Sends whole numbers of the id range as integers (`1`, never `1.0`) and clamps integers
    beyond the f64 range to 1e308.

    JSON Schema counts `1.0` as an `integer`, so schemathesis deliberately sends ids such as
    `"movie_id": 2366051991.0` as valid data. The service refuses them on purpose (README: wrong
    JSON types are errors) and no keyword of the document can say "no fraction syntax", so each
    such case would be a schema-valid request rejected (ST202), burying every other finding.
    Fractional values (`1.5`) are left alone and must still be refused. Neither change turns a
    valid body invalid or an invalid one valid for this document: the integer fields are bounded
    by 2^63-1, and 1e308 lies on the same side of every bound as the integer it replaces.
    """
    return _normalise(body)


_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Makes every valid `Idempotency-Key` unique to the request that carries it.

    The service remembers a key with the request it first came with and refuses the same key
    with another body (422, README: Idempotent retries). Schemathesis draws keys from a small
    pool and sends them with new bodies, so each reuse would be a schema-valid request rejected
    (ST202), though it is exactly the documented behaviour; tests/idempotency.rs tests that.
    Invalid keys are left as they are and must still be refused with 400. (A `before_call` hook
    because, unlike `map_headers`, it runs in every phase.)
    """
    headers = case.headers
    if headers and isinstance(headers.get("Idempotency-Key"), str):
        if _KEY.fullmatch(headers["Idempotency-Key"]):
            headers["Idempotency-Key"] = uuid.uuid4().hex
