#!/usr/bin/env python3
"""Keeps the benchmark's measurements in one JSON file and renders them as one markdown table.

    results.py FILE oha NAME OHA_JSON [EVENTS_PER_REQUEST]   summarise an oha run (--output-format json)
    results.py FILE set KEY VALUE                            store a fact (a number or JSON object when it parses as one)
    results.py FILE note TEXT                                add a line under the table
    results.py FILE get KEY[.FIELD]                          print a stored value ("" when absent)
    results.py FILE record-size RESPONSE_JSON                byte size of the "event" in a POST answer
    results.py FILE perf NAME PERF_OUTPUT                    summarise ProducerPerformance's last line
    results.py FILE table                                    the markdown table

run.sh calls these; nothing here talks to the service.
"""
import json
import os
import re
import statistics
import sys

# oha's name for the requests it cancels when -z runs out (without -w). Not the server's fault.
DEADLINE = "aborted due to deadline"


def load(path):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def save(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def num(s):
    if s.startswith("{"):
        return json.loads(s)
    for t in (int, float):
        try:
            return t(s)
        except ValueError:
            pass
    return s


def summarise_oha(path, per_request):
    """What the table needs from one oha JSON report.

    oha's own requestsPerSec counts every attempt, errors and deadline-aborted ones included;
    here throughput is 2xx answers per second of the run, so errors never count as work done.
    Latency percentiles are oha's over every answer (latencyPercentiles, in seconds); with -q and
    --latency-correction they are measured from when each request was due, not when it was sent.
    """
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    secs = r["summary"]["total"]
    statuses = {k: int(v) for k, v in r.get("statusCodeDistribution", {}).items()}
    errors = {k: int(v) for k, v in r.get("errorDistribution", {}).items()}
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    deadline = errors.pop(DEADLINE, 0)
    non2xx = sum(v for k, v in statuses.items() if not k.startswith("2"))
    p = r.get("latencyPercentiles", {})
    ms = lambda k: None if p.get(k) is None else p[k] * 1000.0  # noqa: E731
    return {
        "secs": secs,
        "ok": ok,
        "ok_rps": ok / secs if secs else 0.0,
        "events_per_s": ok * per_request / secs if secs else 0.0,
        "per_request": per_request,
        "p50_ms": ms("p50"),
        "p99_ms": ms("p99"),
        "max_ms": None if r["summary"].get("slowest") is None else r["summary"]["slowest"] * 1000.0,
        "statuses": statuses,
        "non2xx": non2xx,
        "conn_errors": sum(errors.values()),
        "errors": errors,
        "deadline_aborted": deadline,
    }


# ProducerPerformance's summary line, e.g.
# "1000000 records sent, 250000.0 records/sec (66.52 MB/sec), 80.12 ms avg latency, 300.00 ms max latency,
#  75 ms 50th, 150 ms 95th, 200 ms 99th, 290 ms 99.9th."
PERF = re.compile(
    r"(?P<n>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


def summarise_perf(path):
    with open(path, encoding="utf-8") as f:
        matches = [PERF.search(line) for line in f]
    matches = [m for m in matches if m]
    if not matches:
        sys.exit(f"results.py: no ProducerPerformance summary line in {path}")
    m = matches[-1]
    return {
        "records": int(m["n"]),
        "records_per_s": float(m["rps"]),
        "mb_per_s": float(m["mbps"]),
        "p50_ms": float(m["p50"]),
        "p99_ms": float(m["p99"]),
        "max_ms": float(m["max"]),
    }


def record_size(path):
    """Byte size of the "event" value exactly as the service wrote it (= the Kafka record's value).

    Re-serialising the parsed JSON could differ in spacing or number formatting, so the bytes are
    cut out of the raw answer with the decoder's end offset instead.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    doc = json.loads(text)
    dec = json.JSONDecoder()
    i = 0
    while True:
        i = text.index('"event"', i)
        j = text.index(":", i) + 1
        while text[j].isspace():
            j += 1
        try:
            value, end = dec.raw_decode(text, j)
        except json.JSONDecodeError:
            i += 1
            continue
        if value == doc["event"]:
            return len(text[j:end].encode("utf-8"))
        i += 1


# ---------------------------------------------------------------- table


def fmt_int(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def fmt_mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def problems(run):
    """The non-2xx answers and client-side errors of an oha run, e.g. '503: 12; connection closed: 3'."""
    if not run:
        return ""
    parts = [f"{k}: {v:,}" for k, v in sorted(run["statuses"].items()) if not k.startswith("2")]
    parts += [f"{k}: {v:,}" for k, v in sorted(run["errors"].items())]
    return "; ".join(parts) if parts else "0"


def verdict(ok):
    return "" if ok is None else (" ✅" if ok else " ❌")


def spread_rows(d):
    """The runs of concurrency 1 and 64: medians, with the range over the runs, and the targets
    held in every run (issue 12: c1 median ≤ 0.3 ms, c64 p99 ≤ 20 ms); then the floor's c1 runs,
    each beside one of the service's, and the ratio of the two medians run by run."""
    n = d.get("runs") or 0
    rows = []

    def spread(runs, field, fmt):
        values = sorted(r[field] for r in runs if r[field] is not None)
        if not values:
            return "n/a"
        return f"{fmt(statistics.median(values))} ({fmt(values[0])}–{fmt(values[-1])})"

    def row(what, runs, target):
        return [
            f"{what}, {len(runs)} runs",
            f"closed loop, {d.get('run_secs')} s each; median (min–max) over the runs",
            spread(runs, "ok_rps", lambda x: f"{fmt_int(x)} req/s"),
            spread(runs, "p50_ms", fmt_ms), spread(runs, "p99_ms", fmt_ms),
            "; ".join(p for p in (problems(r) for r in runs) if p != "0") or "0",
            target,
        ]

    for c, key, bound, what in ((1, "p50_ms", 0.3, "p50 ≤ 0.3 ms"), (64, "p99_ms", 20, "p99 ≤ 20 ms")):
        runs = [r for r in (d.get(f"run{i}_c{c}") for i in range(1, n + 1)) if r]
        if not runs:
            continue
        held = sum(1 for r in runs if r[key] is not None and r[key] <= bound)
        target = f"{what} in {held} of {len(runs)}" + verdict(held == len(runs))
        rows.append(row(f"POST /movie, concurrency {c}", runs, target))
    pairs = [(d.get(f"run{i}_c1"), d.get(f"run{i}_floor")) for i in range(1, n + 1)]
    pairs = [(s, f) for s, f in pairs if s and f]
    if pairs:
        ratios = sorted(s["p50_ms"] / f["p50_ms"] for s, f in pairs if s["p50_ms"] and f["p50_ms"])
        ratio = (f"service ÷ floor p50: {statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})"
                 if ratios else "")
        rows.append(row("The floor (examples/floor.rs), concurrency 1", [f for _, f in pairs], ratio))
    return rows


def table(d):
    g = d.get
    rows = []
    head = ["Measurement", "Load", "Throughput", "p50 ms", "p99 ms", "Non-2xx / errors", "Target"]
    secs = g("secs", "?")

    for c in (1, 16, 64, 256):
        r = g(f"single_c{c}")
        target = ""
        if c == 64:
            target = "≥ 10,000 req/s, no errors"
            if r:
                target += verdict(r["ok_rps"] >= 10000 and r["non2xx"] + r["conn_errors"] == 0)
        rows.append([
            f"POST /movie, concurrency {c}",
            f"closed loop, {secs} s",
            f"{fmt_int(r['ok_rps'])} req/s" if r else "n/a",
            fmt_ms(r and r["p50_ms"]), fmt_ms(r and r["p99_ms"]), problems(r) or "n/a", target,
        ])

    rows += spread_rows(d)

    r = g("open_loop")
    target = "p50 ≤ 5 ms, p99 ≤ 20 ms"
    if r:
        target += verdict(r["p50_ms"] is not None and r["p50_ms"] <= 5 and r["p99_ms"] <= 20)
    rows.append([
        "POST /movie, half the max rate",
        f"open loop at {fmt_int(g('open_loop_rate'))} req/s, ≤ {g('open_loop_conns', '?')} connections, "
        f"latency-corrected, {secs} s",
        f"{fmt_int(r['ok_rps'])} req/s" if r else "n/a",
        fmt_ms(r and r["p50_ms"]), fmt_ms(r and r["p99_ms"]), problems(r) or "n/a", target,
    ])

    raw = g("raw")
    raw_rps = raw["records_per_s"] if raw else None
    batch_missing = g("batch_missing")
    for n in (10, 100, 1000):
        r = g(f"batch_{n}")
        if r:
            thr = f"{fmt_int(r['events_per_s'])} events/s ({fmt_int(r['ok_rps'])} req/s)"
            load_ = f"closed loop, concurrency {g(f'batch_{n}_conns')}, {secs} s"
        else:
            thr = "n/a"
            load_ = batch_missing or "not run"
        rows.append([
            f"POST /batch, {n} events", load_, thr,
            fmt_ms(r and r["p50_ms"]), fmt_ms(r and r["p99_ms"]), problems(r) or "n/a", "",
        ])
    r = g("batch_100_gzip")
    if r:
        rows.append([
            "POST /batch, 100 events, gzip",
            f"closed loop, concurrency {g('batch_100_gzip_conns')}, {secs} s, "
            f"{fmt_int(g('batch_100_gzip_bytes'))} B per request (Content-Encoding: gzip)",
            f"{fmt_int(r['events_per_s'])} events/s ({fmt_int(r['ok_rps'])} req/s)",
            fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"]), problems(r) or "n/a", "",
        ])

    if raw:
        rows.append([
            "Kafka ProducerPerformance (Java)",
            f"{raw['records']:,} records of {g('record_size')} B, acks=all, enable.idempotence=true, "
            f"linger.ms and batch.size at their defaults, same broker",
            f"{fmt_int(raw_rps)} records/s ({raw['mb_per_s']:.1f} MB/s)",
            fmt_ms(raw["p50_ms"]), fmt_ms(raw["p99_ms"]), "", "",
        ])
    else:
        rows.append(["Kafka ProducerPerformance (Java)", "not run", "n/a", "n/a", "n/a", "", ""])

    b1000 = g("batch_1000")
    ratio = b1000["events_per_s"] / raw_rps if b1000 and raw_rps else None
    rows.append([
        "Ratio: batch-1000 events/s ÷ raw records/s", "", "n/a" if ratio is None else f"{ratio:.2f}",
        "", "", "", "≥ 0.50" + ("" if ratio is None else verdict(ratio >= 0.5)),
    ])
    c64 = g("single_c64")
    ratio = c64["ok_rps"] / raw_rps if c64 and raw_rps else None
    rows.append([
        "Ratio: single POST c64 req/s ÷ raw records/s", "", "n/a" if ratio is None else f"{ratio:.2f}",
        "", "", "", "",
    ])

    lag = g("lag")
    burst = g("burst")
    if lag:
        how = (
            f"{fmt_int(g('burst_events'))} events stored by {g('burst_how')} in {g('burst_secs'):.1f} s; "
            f"the consumers commit every {g('auto_commit_ms')} ms (auto.commit.interval.ms); "
            f"lag = committed offsets vs high watermarks, polled every 100 ms"
        )
        if lag.get("caught_up_secs") is None:
            thr = f"still {fmt_int(lag.get('last_lag'))} behind 60 s after the burst (max lag {fmt_int(lag.get('max_lag'))})"
        else:
            thr = f"lag 0 {lag['caught_up_secs']:.2f} s after the burst's end (max lag during it {lag['max_lag']:,})"
        rows.append(["Consumer catch-up", how, thr, "", "", problems(burst) or "", "a few seconds"])
    else:
        rows.append(["Consumer catch-up", g("lag_note", "not run"), "n/a", "", "", "", "a few seconds"])

    idle = g("rss_idle_kib")
    rows.append([
        "Memory, idle", "VmRSS after a warm-up, 2 s without load", fmt_mib(idle), "", "", "",
        "≤ 30 MiB" + ("" if idle is None else verdict(idle <= 30 * 1024)),
    ])
    r = g("overload")
    peak = g("rss_overload_hwm_kib")
    if r:
        st = r["statuses"]
        n201 = st.get("201", 0)
        n503 = st.get("503", 0)
        other = sum(r["statuses"].values()) - n201 - n503 + r["conn_errors"]
        thr = f"peak {fmt_mib(peak)}; answers 201: {n201:,}, 503: {n503:,}, other/errors: {other:,}"
        # Bounded memory, and the excess shed with 503 rather than queued or failed otherwise.
        ok = peak is not None and peak <= 200 * 1024 and n503 > 0 and other == 0
        rows.append([
            "Memory, twice the saturating load",
            f"open loop at {fmt_int(g('overload_rate'))} req/s (2 × max), ≤ {g('overload_conns')} connections, "
            f"{secs} s; peak = VmHWM reset just before",
            thr, fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"]), problems(r),
            "≤ 200 MiB, excess answered 503" + verdict(ok),
        ])
    else:
        rows.append(["Memory, twice the saturating load", "not run", "n/a", "", "", "", "≤ 200 MiB"])
    rows.append([
        "Memory, whole run", "VmHWM over the run up to the overload; VmRSS idle again after it",
        f"peak {fmt_mib(g('rss_run_hwm_kib'))}; idle after {fmt_mib(g('rss_idle_after_kib'))}",
        "", "", "", "",
    ])
    drain = g("drain")
    if isinstance(drain, dict) and drain.get("caught_up_secs") is not None:
        rows.append([
            "Consumer backlog after the load phases",
            "time from the end of the last load phase to lag 0 (first poll after the lag tool's start-up)",
            f"{drain['caught_up_secs']:.2f} s", "", "", "", "",
        ])
    rows.append(["Machine", g("machine", "?"), "", "", "", "", ""])
    rows.append(["Software", g("software", "?"), "", "", "", "", ""])
    rows.append(["Commit, date", f"{g('commit', '?')}, {g('date', '?')}", "", "", "", "",
                 f"wall time {g('wall_secs', '?')} s"])

    def esc(cell):
        return str(cell).replace("|", "\\|")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    notes = g("notes", [])
    if notes:
        out.append("")
        out += [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    path, cmd, args = argv[1], argv[2], argv[3:]
    d = load(path)
    if cmd == "oha" and len(args) in (2, 3):
        d[args[0]] = s = summarise_oha(args[1], int(args[2]) if len(args) == 3 else 1)
        save(path, d)
        print(
            f"{args[0]}: {s['ok_rps']:,.0f} 2xx/s ({s['events_per_s']:,.0f} events/s), p50 {fmt_ms(s['p50_ms'])} ms, "
            f"p99 {fmt_ms(s['p99_ms'])} ms, non-2xx/errors {problems(s)}",
            file=sys.stderr,
        )
    elif cmd == "perf" and len(args) == 2:
        d[args[0]] = s = summarise_perf(args[1])
        save(path, d)
        print(f"{args[0]}: {s['records_per_s']:,.0f} records/s, p50 {s['p50_ms']} ms", file=sys.stderr)
    elif cmd == "set" and len(args) == 2:
        d[args[0]] = num(args[1])
        save(path, d)
    elif cmd == "note" and len(args) == 1:
        d.setdefault("notes", []).append(args[0])
        save(path, d)
    elif cmd == "get" and len(args) == 1:
        v = d
        for k in args[0].split("."):
            v = v.get(k) if isinstance(v, dict) else None
        print("" if v is None else v)
    elif cmd == "record-size" and len(args) == 1:
        print(record_size(args[0]))
    elif cmd == "table" and not args:
        sys.stdout.write(table(d))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
