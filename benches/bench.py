#!/usr/bin/env python3
"""Helpers of scripts/bench.sh (`make bench`); Python standard library only.

  snapshot [PID]                 CPU counters now: the process's utime+stime and every core's busy ticks
  window ...                     the same counters (and conversation reads) at two points inside a run
  settle ...                     waits until the servers and PostgreSQL are idle
  check ...                      the servers answer 200 with the same body for a few ids
  server-info ...                a server's actix worker threads (and pingback's read connections)
  pgbench-script ...             the pgbench transaction from the baseline's statement
  record ...                     one measured run (wrk or pgbench) -> one JSON line
  peak ...                       a server's peak RSS (VmHWM) -> one JSON line
  write-bodies ...               the write scenario's message bodies (JSON lines for wrk, CSV for pgbench)
  write-check ...                the write scenario's conversations accept a message; an idempotent replay
  list-prepare ...               the list scenario's pages (first, deep cursor by paging), checks, pgbench binds
  webhook-register ...           registers the webhook sink as an endpoint (POST /api/v1/webhooks)
  webhook-wait ...               waits until every event is delivered and stored, sampling CPU meanwhile
  webhook-record ...             the webhook run: received, lost, order, throughput, CPU, statements
  rss PID                        a process's VmRSS and VmHWM now
  stream-record ...              the event-stream run: fan-out latency, memory, CPU, errors
  (report --citus 1)             the Citus scenario: single-node PostgreSQL vs a Citus cluster, read and write
  report ...                     medians, ratios -> results.json and docs/benchmarks.md
"""

import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The read scenario's systems, in the order of their rows; the first four are HTTP
# servers (scripts/bench.sh READ_HTTP_SYSTEMS), pgbench the database ceiling.
SYSTEMS = ("pingback", "pingback-warn", "baseline", "handwritten", "pgbench")
LABELS = {"pingback": "pingback (shipped)", "pingback-warn": "pingback, log warn", "baseline": "baseline (same SQL)",
          "handwritten": "hand-written", "pgbench": "pgbench"}
# The systems running pingback's own statement (their SELECTs must share a queryid).
SAME_SQL_SYSTEMS = ("pingback", "pingback-warn", "baseline", "pgbench")


# --- counters -------------------------------------------------------------------


def process_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def core_busy_ticks():
    """Busy (not idle, not iowait) ticks of each core: {"cpu0": n, ...}."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if re.fullmatch(r"cpu\d+", name):
                v = [int(x) for x in values]
                busy[name] = sum(v[:8]) - v[3] - v[4]  # user..steal minus idle, iowait
    return busy


def family_ticks(parent):
    """utime+stime of a process and its children (PostgreSQL: the postmaster and its backends)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(entry) == parent or int(fields[1]) == parent:
            total += int(fields[11]) + int(fields[12])
    return total


def cmd_snapshot(args):
    snap = {"time": time.monotonic(), "cores": core_busy_ticks(), "process_ticks": None}
    if args.pid:
        snap["process_ticks"] = process_ticks(args.pid)
    if args.postmaster:
        by = {str(postmaster): family_ticks(postmaster) for postmaster in args.postmaster}
        snap["postgres_ticks"] = sum(by.values())
        snap["postgres_ticks_by"] = by
        snap["unix"] = time.time()
    json.dump(snap, sys.stdout)
    print()


def conversation_reads(psql, url):
    """Executions of the conversation statement (the one joining customers) so far."""
    sql = ("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
           "WHERE query ILIKE '%customers%' AND query NOT ILIKE '%pg_stat_statements%'")
    out = subprocess.run([psql, "-X", "-At", "-c", sql, url], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def cmd_window(args):
    """Counters at `skip` seconds into a run and `skip` seconds before its end: the
    steady state, without the ramp-up and the requests cut off at the end."""
    start = time.monotonic()
    snaps = []
    for at in (args.skip, args.duration - args.skip):
        time.sleep(max(0.0, start + at - time.monotonic()))
        reads = conversation_reads(args.psql, args.db)
        snap = {"time": time.monotonic(), "cores": core_busy_ticks(), "process_ticks": None, "reads": reads,
                "postgres_ticks": family_ticks(args.postmaster) if args.postmaster else None}
        if args.pid:
            snap["process_ticks"] = process_ticks(args.pid)
        snaps.append(snap)
    with open(args.out, "w") as f:
        json.dump(snaps, f)


def cmd_settle(args):
    """Waits until the servers and PostgreSQL are idle: requests cut off by the end of
    the last run may still be running, and must not be billed to the next one. (Their
    CPU, not the core's: other work on the machine must not stall the benchmark.)"""

    def ours():
        total = sum(family_ticks(postmaster) for postmaster in args.postmaster)
        for pid in args.pid or []:
            try:
                total += process_ticks(pid)
            except OSError:
                pass
        return total

    deadline = time.monotonic() + args.max
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = ours()
        time.sleep(0.25)
        quiet = quiet + 1 if ours() - before <= 2 else 0  # at most 8 % of a core
    if quiet < 2:
        print(f"bench: the server or PostgreSQL still busy after {args.max} s", file=sys.stderr)


def cmd_server_info(args):
    """What a server process runs with: its actix worker threads and, for pingback, the
    read connections its /metrics reports configured. One JSON line on stdout. In an
    actix System (all three servers) each worker is an arbiter thread named
    `actix-rt|system:0|arbiter:N` (`actix-rt|system` in /proc, 15 characters; the
    System's own arbiter is the main thread, named after the program); without one,
    `actix-server worker N`."""
    workers, deadline = None, time.monotonic() + 3
    while time.monotonic() < deadline:
        names = []
        for task in glob.glob(f"/proc/{args.pid}/task/*/comm"):
            try:
                with open(task) as f:
                    names.append(f.read().strip())
            except OSError:
                pass
        count = sum(1 for name in names if name.startswith(("actix-rt|system", "actix-server wo")))
        if count and count == workers:
            break  # two equal counts in a row: all started
        workers = count or None
        time.sleep(0.2)
    with open(f"/proc/{args.pid}/status") as f:
        allowed = next((line.split(":", 1)[1].strip() for line in f if line.startswith("Cpus_allowed_list:")), None)
    info = {"name": args.name, "size": args.size, "pid": args.pid, "workers": workers, "cpus_allowed": allowed}
    if args.metrics:
        try:
            with urllib.request.urlopen(args.metrics, timeout=10) as response:
                text = response.read().decode()
            match = re.search(r'^pingback_db_read_connections\{state="configured"\} (\d+)', text, re.M)
            info["read_connections"] = int(match.group(1)) if match else None
        except (OSError, urllib.error.URLError):
            info["read_connections"] = None
    json.dump(info, sys.stdout)
    print()


def cmd_peak(args):
    peak = None
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    with open(args.out, "a") as f:
        f.write(json.dumps({"system": args.system, "size": args.size, "vmhwm_kib": peak}) + "\n")


# --- correctness ----------------------------------------------------------------


def fetch(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def cmd_check(args):
    """pingback and each reference (`--baseline`, and `--handwritten`, `--warn` when
    given): 200, `size` messages, the same JSON (and bytes, and ETag) for a few ids. The
    top-level `identical_*` flags compare pingback with `--baseline`; `references` has
    them per reference."""
    with open(args.ids) as f:
        ids = [line.strip() for line in f if line.strip()]
    others = [(name, url) for name, url in (("baseline", args.baseline), ("handwritten", args.handwritten),
                                            ("pingback-warn", args.warn)) if url]
    result = {"size": args.size, "ids_checked": 0, "identical_json": True, "identical_bytes": True,
              "identical_etag": True, "body_bytes": None, "problems": [],
              "references": {name: {"identical_json": True, "identical_bytes": True, "identical_etag": True,
                                    "body_bytes": None} for name, _ in others}}
    for conversation in ids[: args.count]:
        bodies = {}
        for name, base in (("pingback", args.pingback), *others):
            status, body, headers = fetch(f"{base}/api/v1/conversations/{conversation}", args.token)
            if status != 200:
                result["problems"].append(f"{name}: {conversation}: HTTP {status}: {body[:300]!r}")
                continue
            document = json.loads(body)
            if len(document.get("messages", [])) != args.size:
                result["problems"].append(
                    f"{name}: {conversation}: {len(document.get('messages', []))} messages, expected {args.size}")
            bodies[name] = (body, document, headers.get("ETag") or headers.get("Etag"))
            if name == "pingback":
                # What the compared bytes held: the characters JSON escapes, attachments.
                cover = result.setdefault("covered", {"messages": 0, "attachments": 0, "quotes": 0, "newlines": 0,
                                                      "backslashes": 0, "non_ascii": 0})
                for message in document.get("messages", []):
                    text = message.get("content") or ""
                    cover["messages"] += 1
                    cover["attachments"] += len(message.get("attachments") or [])
                    cover["quotes"] += '"' in text
                    cover["newlines"] += "\n" in text
                    cover["backslashes"] += "\\" in text
                    cover["non_ascii"] += not text.isascii()
        for name, _ in others:
            if "pingback" not in bodies or name not in bodies:
                continue
            (pb, pd, pe), (bb, bd, be) = bodies["pingback"], bodies[name]
            ref = result["references"][name]
            ref["identical_json"] &= pd == bd
            ref["identical_bytes"] &= pb == bb
            ref["identical_etag"] &= pe == be
            ref["body_bytes"] = len(pb)
            if pd != bd:
                result["problems"].append(f"bodies differ for {conversation} ({name}): {first_difference(pd, bd)}")
            elif pb != bb:
                at = next((i for i, (x, y) in enumerate(zip(pb, bb)) if x != y), min(len(pb), len(bb)))
                result["problems"].append(f"bytes differ for {conversation} ({name}) at byte {at}: "
                                          f"{pb[max(0, at - 40):at + 40]!r} vs {bb[max(0, at - 40):at + 40]!r}")
        if "baseline" in result["references"]:
            result.update({k: v for k, v in result["references"]["baseline"].items()})
        result["ids_checked"] += 1
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    for problem in result["problems"]:
        print(f"bench: check: {problem}", file=sys.stderr)
    # A server that does not answer 200 with the full history makes the numbers meaningless.
    fatal = [p for p in result["problems"] if not p.startswith(("bodies differ", "bytes differ"))]
    return 1 if fatal else 0


def first_difference(a, b, path="$"):
    if type(a) is not type(b):
        return f"{path}: {a!r:.80} vs {b!r:.80}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key} present in only one"
            if a[key] != b[key]:
                return first_difference(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r:.80} vs {b!r:.80}"


# --- writes ---------------------------------------------------------------------

AGENTS = ("a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002",
          "a0000000-0000-4000-8000-000000000003", "a0000000-0000-4000-8000-000000000004")
WORDS = ("thanks", "for", "your", "message", "we", "have", "checked", "the", "order", "and", "refund",
         "will", "arrive", "in", "three", "days", "please", "let", "us", "know", "if", "anything",
         "else", "comes", "up", "tracking", "number", "invoice", "account", "password", "reset")
NON_ASCII = ("café", "Grüße", "naïve", "déjà", "straße", "añadir", "Zürich", "€10", "日本語", "ありがとう",
             "спасибо", "привет", "שלום", "مرحبا", "😀", "👍", "—", "“quoted”")


def cmd_write_bodies(args):
    """The POST bodies of the write scenario (an agent message, 20–400 characters, a
    third of them with non-ASCII text), as JSON lines for wrk and as CSV
    (n, sender_id, content) for pgbench: the same messages for both."""
    import csv
    import random

    rng = random.Random(args.seed)
    rows = []
    for n in range(1, args.count + 1):
        length = rng.randint(20, 400)
        words = []
        while len(" ".join(words)) < length:
            pool = NON_ASCII if (n % 3 == 0 and rng.random() < 0.3) else WORDS
            words.append(rng.choice(pool))
        content = " ".join(words)[:length].rstrip() or "ok"
        content = content[0].upper() + content[1:] + ("." if len(content) < length else "")
        content = content[:400]
        if len(content) < 20:
            content = (content + " thanks for waiting")[:20]
        rows.append((n, AGENTS[n % len(AGENTS)], content))
    with open(args.bodies, "w", encoding="utf-8") as f:
        for _, sender, content in rows:
            f.write(json.dumps({"sender_type": "agent", "sender_id": sender, "content": content},
                               ensure_ascii=False) + "\n")
    with open(args.csv, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


def post(url, token, body, key=None):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            # Header names are case-insensitive: keep the message object, not a dict.
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def cmd_write_check(args):
    """Posts one message to every conversation of the write scenario: 201, a Location
    naming the new message, the content given back. Then one POST with an
    Idempotency-Key sent twice: the same answer, replayed, and nothing written twice."""
    with open(args.ids) as f:
        ids = [line.strip() for line in f if line.strip()]
    with open(args.bodies, encoding="utf-8") as f:
        bodies = [line.rstrip("\n") for line in f if line.strip()]
    result = {"conversations": len(ids), "posted": 0, "problems": [], "idempotent_replay": None}
    for i, conversation in enumerate(ids):
        body = bodies[i % len(bodies)].encode()
        url = f"{args.url}/api/v1/conversations/{conversation}/messages"
        status, answer, headers = post(url, args.token, body)
        if status != 201:
            result["problems"].append(f"{conversation}: HTTP {status}: {answer[:300]!r}")
            continue
        message = json.loads(answer)
        location = headers.get("Location") or ""
        if message.get("content") != json.loads(body)["content"]:
            result["problems"].append(f"{conversation}: content not given back")
        if not location.endswith(f"/{message.get('id')}"):
            result["problems"].append(f"{conversation}: Location {location!r} does not name message {message.get('id')}")
        result["posted"] += 1
    if ids:
        url = f"{args.url}/api/v1/conversations/{ids[0]}/messages"
        key = f"bench-check-{time.time_ns()}"
        body = bodies[0].encode()
        first = post(url, args.token, body, key)
        again = post(url, args.token, body, key)
        replayed = (first[0] == 201 and again[0] == 201 and again[1] == first[1]
                    and (again[2].get("Idempotent-Replayed") or "").lower() == "true")
        result["idempotent_replay"] = replayed
        if not replayed:
            result["problems"].append(f"idempotent retry: HTTP {first[0]} then {again[0]}, "
                                      f"replayed header {again[2].get('Idempotent-Replayed')!r}")
    with open(args.out, "w") as f:
        json.dump(result, f)
    for problem in result["problems"]:
        print(f"bench: write check: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


# --- list -----------------------------------------------------------------------


def psql_at(psql, url, sql):
    out = subprocess.run([psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql, url],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def cmd_list_prepare(args):
    """The list scenario: the first page (limit), then paging with `page` items per
    request `depth / page` times following next_cursor, which gives the cursor at
    position `depth`; the deep page at that cursor. Checks: 200s, full pages, no item
    twice, the deep page holds the items PostgreSQL orders at depth+1.. (updated_at DESC,
    id DESC). Writes the two request paths for wrk, the pgbench binds (-D options) of
    the deep page, and list-check.json."""
    from urllib.parse import quote

    base = f"{args.url}/api/v1/conversations"
    problems = []
    result = {"limit": args.limit, "page": args.page, "depth": args.depth, "problems": problems}

    def get(path):
        status, body, _ = fetch(args.url + path, args.token)
        if status != 200:
            problems.append(f"{path[:120]}: HTTP {status}: {body[:300]!r}")
            return None
        return json.loads(body)

    first_path = f"/api/v1/conversations?limit={args.limit}"
    first = get(first_path)
    if first is not None:
        result["first_items"] = len(first["data"])
        result["first_has_next"] = first.get("next_cursor") is not None
        result["first_bytes"] = len(json.dumps(first))
        if len(first["data"]) != args.limit or not first.get("next_cursor"):
            problems.append(f"first page: {len(first['data'])} items, next_cursor {first.get('next_cursor')!r}")
    seen, cursor = [], None
    for i in range(args.depth // args.page):
        path = f"/api/v1/conversations?limit={args.page}" + (f"&cursor={quote(cursor, safe='')}" if cursor else "")
        page = get(path)
        if page is None:
            break
        seen.extend(item["id"] for item in page["data"])
        cursor = page.get("next_cursor")
        if len(page["data"]) != args.page or not cursor:
            problems.append(f"paging: page {i + 1}: {len(page['data'])} items, next_cursor {cursor!r}")
            break
    if len(set(seen)) != len(seen):
        problems.append(f"paging: {len(seen) - len(set(seen))} items listed twice")
    result["paged_items"] = len(seen)
    deep_path = f"/api/v1/conversations?limit={args.limit}&cursor={quote(cursor or '', safe='')}"
    deep = get(deep_path) if cursor and not problems else None
    binds = None
    if deep is not None:
        ids = [item["id"] for item in deep["data"]]
        result["deep_items"] = len(ids)
        result["deep_has_next"] = deep.get("next_cursor") is not None
        result["deep_bytes"] = len(json.dumps(deep))
        result["deep_last_event_id"] = deep.get("last_event_id")
        expected = psql_at(args.psql, args.db,
                           f"SELECT id FROM conversations WHERE business_id = '{args.business}' "
                           f"ORDER BY updated_at DESC, id DESC OFFSET {args.depth} LIMIT {args.limit}").split()
        result["deep_matches_sql_order"] = ids == expected
        if ids != expected:
            problems.append("deep page: not the items at positions "
                            f"{args.depth + 1}..{args.depth + args.limit} of (updated_at DESC, id DESC)")
        if len(ids) != args.limit or set(ids) & set(seen):
            problems.append(f"deep page: {len(ids)} items, {len(set(ids) & set(seen))} seen before")
        # The keyset position of the cursor: the last item before the deep page.
        last = seen[-1]
        ts = psql_at(args.psql, args.db,
                     "SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                     f"FROM conversations WHERE business_id = '{args.business}' AND id = '{last}'")
        binds = {"bid": args.business, "cid": last, "ts": ts, "lim": str(args.limit + 1)}
        result["binds"] = binds
        result["deep_attachments"] = sum(len(item["last_message"].get("attachments") or [])
                                         for item in deep["data"] if item.get("last_message"))
    with open(os.path.join(args.work, "list-path-first.txt"), "w") as f:
        f.write(first_path + "\n")
    with open(os.path.join(args.work, "list-path-deep.txt"), "w") as f:
        f.write(deep_path + "\n")
    if binds:
        with open(os.path.join(args.work, "list-pgbench-vars.txt"), "w") as f:
            f.write(" ".join(f"-D {k}={v}" for k, v in binds.items()) + "\n")
    with open(os.path.join(args.work, "list-check.json"), "w") as f:
        json.dump(result, f)
    for problem in problems:
        print(f"bench: list check: {problem}", file=sys.stderr)
    return 1 if problems or not binds else 0


# --- webhooks -------------------------------------------------------------------


def cmd_webhook_register(args):
    """Registers the sink as an endpoint of the token's business (POST /api/v1/webhooks):
    201 expected. Writes the answer (without its secret) and prints the endpoint's id."""
    status, answer, _ = post(f"{args.url}/api/v1/webhooks", args.token, json.dumps({"url": args.sink}).encode())
    if status != 201:
        print(f"bench: webhooks: registering {args.sink}: HTTP {status}: {answer[:300]!r}", file=sys.stderr)
        return 1
    endpoint = json.loads(answer)
    endpoint["secret"] = "(shown once; not kept)" if endpoint.get("secret") else None
    with open(args.out, "w") as f:
        json.dump(endpoint, f)
    print(endpoint["id"])
    return 0


def sink_summaries(path):
    """The JSON summary lines the sink printed so far (the last one is the latest)."""
    summaries = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        summaries.append(json.loads(line))
                    except ValueError:
                        pass  # being written
    except OSError:
        pass
    return summaries


def cmd_webhook_wait(args):
    """Waits until the sink has seen every event (its `--expect` summary) and the
    endpoint's `delivered_through` (GET /api/v1/webhooks/{id}) has reached the last
    event, or until `started + timeout`. Samples pingback's and PostgreSQL's CPU and
    the cores' busy ticks meanwhile (the timeline the delivery window is cut from)."""
    deadline = args.started + args.timeout
    timeline, endpoint, summary = [], None, None
    last_get = last_log = 0.0
    done = False
    while True:
        now = time.time()
        try:
            pticks = process_ticks(args.pid)
        except OSError:
            print("bench: webhooks: pingback exited while delivering", file=sys.stderr)
            break
        try:
            sink_ticks = process_ticks(args.sink_pid)
        except OSError:
            sink_ticks = None
        timeline.append({"unix": now, "process_ticks": pticks, "postgres_ticks": family_ticks(args.postmaster),
                         "sink_ticks": sink_ticks, "harness_ticks": process_ticks(os.getpid()),
                         "cores": core_busy_ticks()})
        summaries = sink_summaries(args.sink_out)
        summary = summaries[-1] if summaries else None
        if summary or now - last_get >= 1.0:
            last_get = now
            status, body, _ = fetch(f"{args.url}/api/v1/webhooks/{args.webhook}", args.token)
            if status == 200:
                endpoint = json.loads(body)
            else:
                print(f"bench: webhooks: GET endpoint: HTTP {status}: {body[:200]!r}", file=sys.stderr)
        through = (endpoint or {}).get("delivered_through") or 0
        if summary and through >= args.last:
            done = True
            break
        if now >= deadline:
            print(f"bench: webhooks: timed out after {args.timeout:g} s: delivered_through {through} of "
                  f"{args.last}, last_error {(endpoint or {}).get('last_error')!r}", file=sys.stderr)
            break
        if now - last_log >= 10:
            last_log = now
            print(f"bench: webhooks:   delivered_through {through:,} of {args.last:,}"
                  + (f" (last_error {endpoint['last_error']!r})" if (endpoint or {}).get("last_error") else ""),
                  file=sys.stderr)
        time.sleep(0.1 if summary else 0.2)
    with open(args.out, "w") as f:
        json.dump({"done": done, "timed_out": not done, "done_unix": time.time(), "endpoint": endpoint,
                   "timeline": timeline}, f)
    return 0


def read_arrivals(path):
    """The sink's arrivals file: (event id or None, started, read, answered or None, connection)."""
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) != 5:
                continue
            rows.append((None if fields[0] == "-" else int(fields[0]), float(fields[1]), float(fields[2]),
                         None if fields[3] == "-" else float(fields[3]), int(fields[4])))
    return rows


def statements_diff(before, after):
    """pg_stat_statements entries of `after` minus those of `before` (by queryid)."""
    old = {s["queryid"]: s for s in before}
    out = []
    for s in after:
        o = old.get(s["queryid"], {"calls": 0, "rows": 0, "total_ms": 0.0})
        calls = s["calls"] - o["calls"]
        if calls > 0:
            out.append({"queryid": s["queryid"], "query": s["query"], "calls": calls, "rows": s["rows"] - o["rows"],
                        "total_ms": (s.get("total_ms") or 0.0) - (o.get("total_ms") or 0.0)})
    return sorted(out, key=lambda x: -x["calls"])


def cmd_webhook_record(args):
    """One webhook run -> webhook-run.json: what the sink received (count, distinct,
    order, lost against the events written), throughput over the sink's first→last
    arrival, end to end from the start of generation, and where the time went: pingback's
    and PostgreSQL's CPU over the delivery window after generation (sampled by
    webhook-wait) and the statements PostgreSQL ran per delivery meanwhile."""
    summaries = sink_summaries(args.sink_out)
    sink = summaries[-1] if summaries else {}
    wait = read_json(args.wait)
    before = read_json(args.before)
    arrivals = read_arrivals(args.arrivals)
    delivered = [a for a in arrivals if a[0] is not None]
    first_id, last_id = args.base + 1, args.base + args.events
    with open(args.events_check) as f:
        count, lo, hi = (int(x) for x in f.read().strip().split("|"))
    distinct_in_range = len({a[0] for a in delivered if first_id <= a[0] <= last_id})
    outside = sorted({a[0] for a in delivered if not first_id <= a[0] <= last_id})
    lost = args.events - distinct_in_range
    in_order = bool(sink.get("in_order")) and not outside and (sink.get("first_id") == first_id or not delivered)
    endpoint = wait.get("endpoint") or {}
    run = {
        "events": args.events,
        "events_written": count,
        "event_ids": [lo, hi],
        "expected_ids": [first_id, last_id],
        "received": sink.get("received"),
        "distinct": sink.get("distinct"),
        "lost": lost,
        "in_order": in_order,
        "order_violations": sink.get("order_violations"),
        "first_violation": sink.get("first_violation"),
        "ids_outside_range": outside[:20],
        "repeats": (sink.get("received") or 0) - (sink.get("distinct") or 0),
        "immediate_resends": sink.get("immediate_resends"),
        "deliveries_per_second": sink.get("deliveries_per_second"),
        "delivery_seconds": sink.get("seconds"),
        "timed_out": wait.get("timed_out"),
        "delivered_through": endpoint.get("delivered_through"),
        "delivered_through_reached": endpoint.get("delivered_through") == last_id,
        "last_error": endpoint.get("last_error"),
        "generation_seconds": args.gen_end - args.gen_start,
        "first_delivery_after_start_s": sink["first_arrival_unix"] - args.gen_start if sink.get("first_arrival_unix") else None,
        "end_to_end_seconds": sink["last_arrival_unix"] - args.gen_start if sink.get("last_arrival_unix") else None,
        "stored_end_to_end_seconds": wait["done_unix"] - args.gen_start if wait.get("done") else None,
        "delivered_during_generation": sum(1 for a in delivered if a[2] <= args.gen_end),
        "connections": sink.get("connections"),
        "max_connections_open": sink.get("max_connections_open"),
        "max_in_flight": sink.get("max_in_flight"),
        "sender_gap_ms": sink.get("sender_gap_ms"),
        "sink_ms": sink.get("sink_ms"),
        "stalls_over_10ms": sink.get("stalls_over_10ms"),
        "stalled_ms": sink.get("stalled_ms"),
        "per_second": sink.get("per_second"),
        "body_bytes_mean": sink["body_bytes"] / sink["received"] if sink.get("received") else None,
        "sink": {k: v for k, v in sink.items() if k != "per_second"},
    }
    # CPU over the delivery window after generation (the generator writes through
    # PostgreSQL too): from the first sample at or after max(first arrival, end of
    # generation) to the last at or before the last arrival.
    ms_per_tick = 1000 / CLK_TCK
    timeline = wait.get("timeline") or []
    cpu = None
    if sink.get("first_arrival_unix") and timeline:
        start = max(sink["first_arrival_unix"], args.gen_end)
        inside = [s for s in timeline if start <= s["unix"] <= sink["last_arrival_unix"]]
        if len(inside) >= 2 and inside[-1]["unix"] - inside[0]["unix"] >= 0.5:
            a, b = inside[0], inside[-1]
            n = sum(1 for d in delivered if a["unix"] < d[2] <= b["unix"])
            seconds = b["unix"] - a["unix"]
            core, load = f"cpu{args.server_cpu}", f"cpu{args.load_cpu}"
            share = lambda key: (b[key] - a[key]) * ms_per_tick / 1000 / seconds  # noqa: E731
            per = lambda key: (b[key] - a[key]) * ms_per_tick / n if n else None  # noqa: E731
            cpu = {
                "seconds": seconds,
                "deliveries": n,
                "deliveries_per_second": n / seconds,
                "pingback_core_share": share("process_ticks"),
                "postgres_core_share": share("postgres_ticks"),
                "server_core_busy": (b["cores"][core] - a["cores"][core]) * ms_per_tick / 1000 / seconds,
                "first_unix": a["unix"],
                "last_unix": b["unix"],
                "load_core_busy": (b["cores"][load] - a["cores"][load]) * ms_per_tick / 1000 / seconds,
                "pingback_cpu_ms_per_delivery": per("process_ticks"),
                "postgres_cpu_ms_per_delivery": per("postgres_ticks"),
            }
    if cpu:
        # What else ran on the two cores (this machine is shared): the server core less
        # pingback and PostgreSQL; the load core less the sink and this harness.
        cpu["others_core_share"] = max(0.0, cpu["server_core_busy"] - cpu["pingback_core_share"]
                                       - cpu["postgres_core_share"])
        if a.get("sink_ticks") is not None and b.get("sink_ticks") is not None:
            cpu["sink_core_share"] = share("sink_ticks")
            cpu["harness_core_share"] = share("harness_ticks")
            cpu["load_others_core_share"] = max(0.0, cpu["load_core_busy"] - cpu["sink_core_share"]
                                                - cpu["harness_core_share"])
    run["window"] = cpu
    # PostgreSQL's own maintenance between the start of generation and the end (the
    # last autovacuum / autoanalyze of each table).
    maintenance = []
    if args.autovacuum and os.path.exists(args.autovacuum):
        end = wait.get("done_unix") or time.time()
        for t in read_json(args.autovacuum) or []:
            for kind in ("autovacuum", "autoanalyze"):
                at = t.get(kind)
                if at is not None and args.gen_start <= at <= end:
                    maintenance.append({"table": t["table"], "kind": kind, "after_start_s": at - args.gen_start,
                                        "after_first_delivery_s": at - sink["first_arrival_unix"]
                                        if sink.get("first_arrival_unix") else None})
    run["maintenance"] = sorted(maintenance, key=lambda m: m["after_start_s"])
    if timeline and before.get("process_ticks") is not None:
        end = timeline[-1]
        run["whole"] = {
            "seconds": end["unix"] - before["unix"],
            "pingback_cpu_s": (end["process_ticks"] - before["process_ticks"]) / CLK_TCK,
            "postgres_cpu_s": (end["postgres_ticks"] - before["postgres_ticks"]) / CLK_TCK,
            "pingback_cpu_ms_per_delivery": (end["process_ticks"] - before["process_ticks"]) * ms_per_tick / args.events,
        }
    # Statements after generation (deliveries, the few GETs of the wait), per delivery
    # made after generation.
    after_gen = sum(1 for a in delivered if a[2] > args.gen_end)
    statements = statements_diff(read_json(args.pgss_gen) or [], read_json(args.pgss) or [])
    for st in statements:
        st["calls_per_delivery"] = st["calls"] / after_gen if after_gen else None
        st["rows_per_call"] = st["rows"] / st["calls"] if st["calls"] else None
        st["ms_per_call"] = st["total_ms"] / st["calls"] if st["calls"] else None
    run["deliveries_after_generation"] = after_gen
    run["statements"] = statements
    run["statements_per_delivery"] = sum(st["calls"] for st in statements) / after_gen if after_gen else None
    run["db_exec_ms_per_delivery"] = sum(st["total_ms"] for st in statements) / after_gen if after_gen else None
    with open(args.out, "w") as f:
        json.dump(run, f)
    print(f"bench: webhooks: {run['received'] or 0:,} received, {run['distinct'] or 0:,} distinct of "
          f"{args.events:,}, lost {lost}, in order {in_order}, {fmt(run['deliveries_per_second'])} deliveries/s, "
          f"end to end {fmt(run['end_to_end_seconds'], 2)} s", file=sys.stderr)
    return 0


# --- pgbench --------------------------------------------------------------------


def cmd_pgbench_script(args):
    """The read statement after a random pick from bench_ids. It binds the business id
    at odd positions ($1, $3, …) and the conversation id at even ones."""
    with open(args.sql) as f:
        statements = [line.strip().rstrip(";") for line in f if line.strip()]
    if len(statements) != 1:
        sys.exit(f"expected one statement in {args.sql}, got {len(statements)}")
    lines = [
        "\\set n random(1, :count)",
        "SELECT business_id AS bid, id AS cid FROM bench_ids WHERE size = :size AND n = :n \\gset",
    ]
    bind = lambda m: ":bid" if int(m.group(1)) % 2 else ":cid"
    lines.append(re.sub(r"\$(\d+)\b", bind, statements[0]) + ";")
    sys.stdout.write("\n".join(lines) + "\n")


def pgbench_latencies_us(prefix):
    """Per-transaction latencies from pgbench -l logs (`client tx latency_us script epoch us`)."""
    latencies = []
    for path in glob.glob(glob.escape(prefix) + ".*"):
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies.append(int(fields[2]))
    latencies.sort()
    return latencies


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


# --- streams --------------------------------------------------------------------


def cmd_rss(args):
    """A process's resident memory now and at its peak: {"vmrss_kib", "vmhwm_kib"}."""
    out = {}
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0].lower() + "_kib"] = int(line.split()[1])
    json.dump(out, sys.stdout)
    print()


def cmd_stream_record(args):
    """The event-stream run -> stream-run.json: the client's result (pingback-stream-client),
    fan-out latency percentiles, memory, CPU while posting."""
    with open(args.client) as f:
        lines = [line for line in f if line.startswith("{")]
    if not lines:
        sys.exit(f"bench: streams: no result line in {args.client}")
    client = json.loads(lines[-1])
    per_post = client.pop("per_post")
    last = sorted(p["last_ms"] for p in per_post if p["last_ms"] is not None)
    first = sorted(p["first_ms"] for p in per_post if p["first_ms"] is not None)
    post = sorted(p["post_ms"] for p in per_post)
    idle, opened, end = read_json(args.idle), read_json(args.open), read_json(args.end)
    before, at_open, after = read_json(args.before), read_json(args.opened), read_json(args.after)
    ms_per_tick = 1000 / CLK_TCK
    posted = client["posted"] or 1
    seconds = after["time"] - at_open["time"]
    run = client | {
        "fan_out_ms": {"p50": percentile(last, 50), "p99": percentile(last, 99), "max": last[-1] if last else None,
                       "mean": statistics.fmean(last) if last else None, "over_1s": sum(1 for v in last if v > 1000)},
        "first_stream_ms": {"p50": percentile(first, 50), "p99": percentile(first, 99),
                            "max": first[-1] if first else None},
        "post_ms": {"p50": percentile(post, 50), "p99": percentile(post, 99), "max": post[-1] if post else None},
        "events_timed": len(last),
        "rss_idle_mib": idle["vmrss_kib"] / 1024,
        "rss_open_mib": opened["vmrss_kib"] / 1024,
        "rss_peak_mib": end["vmhwm_kib"] / 1024,
        "rss_end_mib": end["vmrss_kib"] / 1024,
        "opening": {"pingback_cpu_s": (at_open["process_ticks"] - before["process_ticks"]) * ms_per_tick / 1000,
                    "postgres_cpu_s": (at_open["postgres_ticks"] - before["postgres_ticks"]) * ms_per_tick / 1000},
        "posting": {"seconds": seconds,
                    "pingback_cpu_ms_per_event": (after["process_ticks"] - at_open["process_ticks"]) * ms_per_tick / posted,
                    "postgres_cpu_ms_per_event": (after["postgres_ticks"] - at_open["postgres_ticks"]) * ms_per_tick / posted,
                    "pingback_core_share": (after["process_ticks"] - at_open["process_ticks"]) * ms_per_tick / 1000 / seconds,
                    "postgres_core_share": (after["postgres_ticks"] - at_open["postgres_ticks"]) * ms_per_tick / 1000 / seconds},
    }
    run["errors"] = (client["open_errors"] + client["dropped"] + client["post_errors"]
                     + client["events_missing_on_some_stream"])
    with open(args.out, "w") as f:
        json.dump(run, f)
    fo = run["fan_out_ms"]
    print(f"bench: streams: {client['opened']:,} of {client['streams']:,} open, {client['posted']} posts: fan-out "
          f"p50 {fmt(fo['p50'], 1)} ms p99 {fmt(fo['p99'], 1)} ms max {fmt(fo['max'], 1)} ms; RSS idle "
          f"{run['rss_idle_mib']:.1f} MiB, {run['rss_open_mib']:.1f} MiB with the streams open, peak "
          f"{run['rss_peak_mib']:.1f} MiB; errors {run['errors']}", file=sys.stderr)


# --- one run --------------------------------------------------------------------


def read_json(path):
    with open(path) as f:
        return json.load(f)


def cmd_record(args):
    before, after = read_json(args.before), read_json(args.after)
    with open(args.output) as f:
        output = f.read()
    run = {"system": args.system, "size": args.size, "repeat": args.repeat}
    if args.kind == "wrk":
        match = re.search(r"^BENCH_JSON (\{.*\})$", output, re.M)
        if not match:
            sys.exit(f"bench: no BENCH_JSON line in {args.output}:\n{output}")
        w = json.loads(match.group(1))
        requests = w["requests"]
        seconds = w["duration_us"] / 1e6
        socket_errors = w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
        run.update(
            requests=requests,
            seconds=seconds,
            rps=requests / seconds if seconds else 0.0,
            p50_ms=w["p50_us"] / 1000,
            p99_ms=w["p99_us"] / 1000,
            mean_ms=w["latency_mean_us"] / 1000,
            errors=w["non_2xx"] + socket_errors,
            non_2xx=w["non_2xx"],
            socket_errors=socket_errors,
            first_error_status=w["first_error_status"],
            bytes_per_request=w["bytes"] / requests if requests else None,
        )
    else:
        processed = re.search(r"number of transactions actually processed: (\d+)", output)
        failed = re.search(r"number of failed transactions: (\d+)", output)
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
        if not processed or not tps:
            sys.exit(f"bench: cannot parse pgbench output {args.output}:\n{output}")
        requests = int(processed.group(1))
        latencies = pgbench_latencies_us(args.pgbench_log_prefix)
        run.update(
            requests=requests,
            seconds=requests / float(tps.group(1)) if float(tps.group(1)) else 0.0,
            rps=float(tps.group(1)),
            p50_ms=(percentile(latencies, 50) or 0) / 1000,
            p99_ms=(percentile(latencies, 99) or 0) / 1000,
            mean_ms=statistics.fmean(latencies) / 1000 if latencies else None,
            errors=(int(failed.group(1)) if failed else 0) + (0 if args.exit_code == 0 else 1),
            non_2xx=None,
            socket_errors=None,
            bytes_per_request=None,
        )
        for path in glob.glob(glob.escape(args.pgbench_log_prefix) + ".*"):
            os.remove(path)  # large; the percentiles are what we keep

    ms_per_tick = 1000 / CLK_TCK
    core, load = f"cpu{args.server_cpu}", f"cpu{args.load_cpu}"

    # Whole run (as wrk counts it): includes the ramp-up and the work on requests still
    # in flight when the run stops.
    elapsed = after["time"] - before["time"]
    whole = {
        "server_cpu_ms_per_request": (after["process_ticks"] - before["process_ticks"]) * ms_per_tick / requests
        if before["process_ticks"] is not None and requests else None,
        "server_core_cpu_ms_per_request": (after["cores"][core] - before["cores"][core]) * ms_per_tick / requests
        if requests else None,
    }
    run["whole_run"] = whole
    run["load_core_utilisation"] = (after["cores"][load] - before["cores"][load]) * ms_per_tick / 1000 / elapsed

    # Steady state: CPU between two points inside the run / conversation reads between them.
    window = read_json(args.window) if args.window and os.path.exists(args.window) else None
    if window and window[1]["reads"] > window[0]["reads"]:
        a, b = window
        reads = b["reads"] - a["reads"]
        seconds = b["time"] - a["time"]
        run["window"] = {"seconds": seconds, "reads": reads, "reads_per_second": reads / seconds}
        run["server_cpu_ms_per_request"] = (
            (b["process_ticks"] - a["process_ticks"]) * ms_per_tick / reads if a["process_ticks"] is not None else None
        )
        run["server_core_cpu_ms_per_request"] = (b["cores"][core] - a["cores"][core]) * ms_per_tick / reads
        run["server_core_utilisation"] = (b["cores"][core] - a["cores"][core]) * ms_per_tick / 1000 / seconds
        # CPU on the server core used by neither the server nor PostgreSQL: other work on
        # this machine stealing from the system under test.
        core_ticks = b["cores"][core] - a["cores"][core]
        if a.get("postgres_ticks") is not None and core_ticks > 0:
            ours = (b["postgres_ticks"] - a["postgres_ticks"]) + (
                b["process_ticks"] - a["process_ticks"] if a["process_ticks"] is not None else 0)
            run["server_core_foreign_share"] = max(0.0, (core_ticks - ours) / core_ticks)
    else:
        run["window"] = None
        run["server_cpu_ms_per_request"] = whole["server_cpu_ms_per_request"]
        run["server_core_cpu_ms_per_request"] = whole["server_core_cpu_ms_per_request"]
        run["server_core_utilisation"] = (after["cores"][core] - before["cores"][core]) * ms_per_tick / 1000 / elapsed

    statements = read_json(args.pgss) or []
    # pgbench's random pick in bench_ids is harness overhead, not the endpoint's work.
    endpoint = [s for s in statements if "bench_ids" not in s["query"]]
    run["statements"] = sorted(endpoint, key=lambda s: -s["calls"])
    # Per conversation read (executions of the statement joining customers), not per
    # completed request: requests cut off at the end of the run also ran statements.
    reads = sum(s["calls"] for s in endpoint if "customers" in s["query"]) or requests
    run["conversation_reads"] = reads
    run["statements_per_request"] = sum(s["calls"] for s in endpoint) / reads if reads else None
    run["db_exec_ms_per_request"] = sum(s["total_ms"] for s in endpoint) / reads if reads else None
    with open(args.out, "a") as f:
        f.write(json.dumps(run) + "\n")
    errs = run["errors"]
    print(
        f"bench: {args.system:>8} size {args.size:>5} run {args.repeat}: {run['rps']:9.1f} req/s  "
        f"p50 {run['p50_ms']:8.2f} ms  p99 {run['p99_ms']:8.2f} ms  errors {errs}  "
        + (f"server CPU/req {run['server_cpu_ms_per_request']:.3f} ms  " if run["server_cpu_ms_per_request"] else "")
        + f"core {args.server_cpu} CPU/req {run['server_core_cpu_ms_per_request'] or 0:.3f} ms  "
        f"stmts/req {run['statements_per_request'] or 0:.2f}",
        file=sys.stderr,
    )


# --- report ---------------------------------------------------------------------


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def command_output(command):
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine():
    info = {"cores": os.cpu_count()}
    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    info["cpu"] = models[0] if models else platform.processor()
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    info["os"] = platform.platform()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info["kernel"] = platform.release()
    info["rustc"] = command_output(["rustc", "--version"])
    info["wrk"] = command_output(["wrk", "-v"]).split(" Copyright")[0]
    return info


def fmt(value, digits=1, unit=""):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def ratio(a, b, digits=2):
    if a is None or not b:
        return "–"
    return f"{a / b:.{digits}f}×"


def cmd_report(args):
    meta = read_json(args.meta)
    # What pingback ran with, as counted when each server started (bench.py
    # server-info): every scenario's renderer says "N actix worker".
    servers = read_lines(os.path.join(args.work, "servers.jsonl"))
    counted = sorted({v["workers"] for v in servers if v["name"].startswith("pingback") and v.get("workers")})
    lanes = sorted({v["read_connections"] for v in servers
                    if v["name"].startswith("pingback") and v.get("read_connections")})
    meta["workers"] = (counted[0] if len(counted) == 1 else f"{counted[0]}–{counted[-1]}") if counted \
        else "its default number of"
    meta["pingback_workers"] = meta["workers"] if counted else None
    meta["pingback_read_connections"] = (lanes[0] if len(lanes) == 1 else f"{lanes[0]}–{lanes[-1]}") if lanes else None
    meta["servers"] = servers
    writes = write_results(args.work, meta) if args.writes else None
    listing = list_results(args.work, meta) if args.list else None
    webhooks = webhook_results(args.work, meta) if args.webhooks else None
    citus = citus_results(args.work, meta) if args.citus else None
    streams = stream_results(args.work, meta) if args.streams else None
    previous = read_json(args.json) if os.path.exists(args.json) else {}
    old_doc = None
    if args.doc and os.path.exists(args.doc):
        with open(args.doc) as f:
            old_doc = f.read()
    if not args.reads:
        # Writes, list and/or webhooks only: the read results and their page stay as they are.
        document = previous
        if writes:
            document["writes"] = writes
        if listing:
            document["list"] = listing
        if webhooks:
            document["webhooks"] = webhooks
        if citus:
            document["citus"] = citus
        if streams:
            document["streams"] = streams
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        if args.doc and (writes or listing or webhooks or citus or streams):
            markdown = old_doc if old_doc is not None else "# Benchmarks\n"
            if writes:
                markdown = splice_writes(markdown, render_writes(writes))
            if listing:
                markdown = splice_writes(markdown, render_list(listing), "## List")
            if webhooks:
                markdown = splice_writes(markdown, render_webhooks(webhooks), "## Webhooks")
            if citus:
                markdown = splice_writes(markdown, render_citus(citus), "## Citus")
            if streams:
                markdown = splice_writes(markdown, render_streams(streams), "## Event streams")
            with open(args.doc, "w") as f:
                f.write(markdown)
        if writes:
            print(write_summary(writes))
        if listing:
            print(list_summary(listing))
        if webhooks:
            print(webhook_summary(webhooks))
        if citus:
            print(citus_summary(citus))
        if streams:
            print(stream_summary(streams))
        return 0
    runs = read_lines(os.path.join(args.work, "runs.jsonl"))
    peaks = {(p["system"], p["size"]): p["vmhwm_kib"] for p in read_lines(os.path.join(args.work, "peaks.jsonl"))}
    checks = {c["size"]: c for c in read_lines(os.path.join(args.work, "checks.jsonl"))}
    sizes = sorted({r["size"] for r in runs})

    results = []
    for size in sizes:
        row = {"messages": size, "conversations": meta["conversations"].get(str(size)), "systems": {}}
        for system in SYSTEMS:
            rs = [r for r in runs if r["size"] == size and r["system"] == system]
            if not rs:
                continue
            key_statements = {}
            for r in rs:
                for s in r["statements"]:
                    key = s.get("queryid") or s["query"]
                    entry = key_statements.setdefault(
                        key, {"queryid": s.get("queryid"), "query": s["query"], "calls": 0, "rows": 0})
                    entry["calls"] += s["calls"]
                    entry["rows"] += s["rows"]
            total_requests = sum(r["requests"] for r in rs)
            total_reads = sum(r.get("conversation_reads") or r["requests"] for r in rs)
            statements = sorted(key_statements.values(), key=lambda s: -s["calls"])
            for s in statements:
                s["calls_per_request"] = s["calls"] / total_reads if total_reads else None
                s["rows_per_call"] = s["rows"] / s["calls"] if s["calls"] else None
            row["systems"][system] = {
                "runs": len(rs),
                "requests_per_second": median([r["rps"] for r in rs]),
                "p50_ms": median([r["p50_ms"] for r in rs]),
                "p99_ms": median([r["p99_ms"] for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "requests": total_requests,
                "peak_rss_mib": peaks[(system, size)] / 1024 if peaks.get((system, size)) else None,
                "server_cpu_ms_per_request": median([r["server_cpu_ms_per_request"] for r in rs]),
                "server_core_cpu_ms_per_request": median([r["server_core_cpu_ms_per_request"] for r in rs]),
                "server_core_utilisation": median([r["server_core_utilisation"] for r in rs]),
                "load_core_utilisation": median([r["load_core_utilisation"] for r in rs]),
                "server_core_foreign_share_max": max(
                    [r["server_core_foreign_share"] for r in rs if r.get("server_core_foreign_share") is not None],
                    default=None),
                "statements_per_request": median([r["statements_per_request"] for r in rs]),
                "db_exec_ms_per_request": median([r["db_exec_ms_per_request"] for r in rs]),
                "bytes_per_request": median([r.get("bytes_per_request") for r in rs]),
                "statements": statements,
                "per_run": [
                    {k: r[k] for k in ("repeat", "rps", "p50_ms", "p99_ms", "errors", "requests",
                                       "server_cpu_ms_per_request", "server_core_cpu_ms_per_request")}
                    for r in rs
                ],
            }
        s = row["systems"]
        rps = {k: v["requests_per_second"] for k, v in s.items()}
        over = lambda a, b: rps[a] / rps[b] if rps.get(a) and rps.get(b) else None  # noqa: E731
        p99 = {k: v["p99_ms"] for k, v in s.items()}
        row["ratios"] = {
            "shipped_over_handwritten_rps": over("pingback", "handwritten"),
            "shipped_over_handwritten_p99": p99["pingback"] / p99["handwritten"]
            if p99.get("pingback") is not None and p99.get("handwritten") else None,
            # 1 − shipped ÷ warn: the share of throughput the shipped log level costs.
            "logging_cost": 1 - over("pingback", "pingback-warn") if over("pingback", "pingback-warn") else None,
            "pingback_over_baseline_rps": over("pingback", "baseline"),
            "warn_over_handwritten_rps": over("pingback-warn", "handwritten"),
            "pingback_over_pgbench_rps": over("pingback", "pgbench"),
            "baseline_over_pgbench_rps": over("baseline", "pgbench"),
            "handwritten_over_pgbench_rps": over("handwritten", "pgbench"),
        }
        row["check"] = checks.get(size)
        # The same SQL where it should be: pingback's statement has one queryid in every
        # system that runs it (the hand-written server runs its own).
        selects = {
            system: {st["queryid"] for st in v["statements"] if st["query"].lstrip().upper().startswith("SELECT")}
            for system, v in s.items() if system in SAME_SQL_SYSTEMS
        }
        row["same_select_statements"] = len({frozenset(v) for v in selects.values()}) == 1 and all(
            len(v) == 1 for v in selects.values())
        results.append(row)

    document = {
        "generated_at": meta["date"],
        "machine": machine() | {"postgresql": meta.get("postgresql")},
        "git": meta.get("git"),
        "settings": {k: v for k, v in meta.items() if k not in ("date", "git", "postgresql")},
        "results": results,
        "targets": [t | {"target": t["target"].replace("{connections}", str(meta.get("connections")))}
                    for t in read_targets(results)],
    }
    if writes or previous.get("writes"):
        document["writes"] = writes or previous["writes"]
    if listing or previous.get("list"):
        document["list"] = listing or previous["list"]
    if webhooks or previous.get("webhooks"):
        document["webhooks"] = webhooks or previous["webhooks"]
    if citus or previous.get("citus"):
        document["citus"] = citus or previous["citus"]
    if streams or previous.get("streams"):
        document["streams"] = streams or previous["streams"]
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    markdown = render_markdown(document)
    if writes:
        markdown = splice_writes(markdown, render_writes(writes))
    elif old_doc and "\n## Writes\n" in old_doc:
        # Reads only: keep the page's Writes section of the last write run.
        lines = old_doc.split("\n")
        start = lines.index("## Writes")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        markdown = splice_writes(markdown, lines[start:end])
    # The List section: this run's, else the page's of the last list run.
    list_section = render_list(listing) if listing else section_of(old_doc, "## List")
    if list_section:
        markdown = splice_writes(markdown, list_section, "## List")
    # The Webhooks section likewise.
    webhook_section = render_webhooks(webhooks) if webhooks else section_of(old_doc, "## Webhooks")
    if webhook_section:
        markdown = splice_writes(markdown, webhook_section, "## Webhooks")
    # The Citus section likewise.
    citus_section = render_citus(citus) if citus else section_of(old_doc, "## Citus")
    if citus_section:
        markdown = splice_writes(markdown, citus_section, "## Citus")
    # The Event streams section likewise.
    stream_section = render_streams(streams) if streams else section_of(old_doc, "## Event streams")
    if stream_section:
        markdown = splice_writes(markdown, stream_section, "## Event streams")
    if args.doc:
        with open(args.doc, "w") as f:
            f.write(markdown)
    print(summary_table(results))
    print()
    print(targets_table(results, meta.get("connections")))
    if writes:
        print(write_summary(writes))
    if listing:
        print(list_summary(listing))
    if webhooks:
        print(webhook_summary(webhooks))
    if citus:
        print(citus_summary(citus))
    if streams:
        print(stream_summary(streams))


READ_SIZES = (10, 100, 1000, 10000)
READ_TARGETS = {"shipped_over_handwritten_min": 1.0, "p99_over_handwritten_max": 1.0,
                "logging_cost_max": 0.03, "logging_cost_at": 10, "peak_rss_mib_max": 40.0, "peak_rss_at": 10000}


def read_targets(results):
    """Issue 18's targets on this run's medians: [{target, measured, met}] (met None when
    the size was not measured)."""
    by_size = {row["messages"]: row for row in results}
    rows = []
    for size in READ_SIZES:
        row = by_size.get(size)
        s = row["systems"] if row else {}
        pb, hw = s.get("pingback") or {}, s.get("handwritten") or {}
        r = (row or {}).get("ratios") or {}
        over = r.get("shipped_over_handwritten_rps")
        rows.append({
            "target": f"pingback (shipped) ≥ {READ_TARGETS['shipped_over_handwritten_min']:.1f}× hand-written "
                      f"throughput at {size:,} messages",
            "measured": (f"{over:.2f}× ({fmt(pb.get('requests_per_second'))} vs "
                         f"{fmt(hw.get('requests_per_second'))} req/s)") if over is not None else "not measured",
            "met": None if over is None else over >= READ_TARGETS["shipped_over_handwritten_min"],
        })
    for size in READ_SIZES:
        row = by_size.get(size)
        s = row["systems"] if row else {}
        pb, hw = (s.get("pingback") or {}).get("p99_ms"), (s.get("handwritten") or {}).get("p99_ms")
        known = pb is not None and hw is not None
        rows.append({
            "target": f"p99 ≤ hand-written's at {size:,} messages",
            "measured": f"{pb:,.2f} vs {hw:,.2f} ms ({pb / hw:.2f}×)" if known and hw else "not measured",
            "met": (pb <= hw * READ_TARGETS["p99_over_handwritten_max"]) if known else None,
        })
    at = READ_TARGETS["logging_cost_at"]
    row = by_size.get(at)
    cost = ((row or {}).get("ratios") or {}).get("logging_cost")
    s = row["systems"] if row else {}
    rows.append({
        "target": f"logging cost ≤ {READ_TARGETS['logging_cost_max'] * 100:.0f} % at {at:,} messages",
        "measured": (f"{cost * 100:.1f} % ({fmt((s.get('pingback') or {}).get('requests_per_second'))} req/s "
                     f"shipped vs {fmt((s.get('pingback-warn') or {}).get('requests_per_second'))} with the log "
                     "at warn)") if cost is not None else "not measured",
        "met": None if cost is None else cost <= READ_TARGETS["logging_cost_max"],
    })
    at = READ_TARGETS["peak_rss_at"]
    row = by_size.get(at)
    rss = (((row or {}).get("systems") or {}).get("pingback") or {}).get("peak_rss_mib")
    hw_rss = (((row or {}).get("systems") or {}).get("handwritten") or {}).get("peak_rss_mib")
    rows.append({
        "target": f"peak RSS at {at:,} messages × {{connections}} ≤ {READ_TARGETS['peak_rss_mib_max']:.0f} MiB",
        "measured": (f"{rss:.1f} MiB (hand-written {fmt(hw_rss)} MiB)") if rss is not None else "not measured",
        "met": None if rss is None else rss <= READ_TARGETS["peak_rss_mib_max"],
    })
    return rows


def met_text(met):
    return "not measured" if met is None else ("met" if met else "**not met**")


def summary_table(results):
    lines = [
        "| messages | " + " | ".join(f"{LABELS[system]} {'tx/s' if system == 'pgbench' else 'req/s'}"
                                     for system in SYSTEMS)
        + " | shipped ÷ hand-written | p99 ms shipped / hand-written | logging cost | peak RSS MiB shipped / "
        "hand-written | errors |",
        "|---:|" + "---:|" * len(SYSTEMS) + "---:|---:|---:|---:|---:|",
    ]
    for row in results:
        s, r = row["systems"], row["ratios"]
        get = lambda system, key: s.get(system, {}).get(key)  # noqa: E731
        errors = sum(v["errors"] for v in s.values())
        cost = r.get("logging_cost")
        lines.append(
            f"| {row['messages']:,} | "
            + " | ".join(fmt(get(system, "requests_per_second")) for system in SYSTEMS)
            + f" | **{fmt(r.get('shipped_over_handwritten_rps'), 2, '×')}** | "
            f"{fmt(get('pingback', 'p99_ms'), 2)} / {fmt(get('handwritten', 'p99_ms'), 2)} "
            f"({fmt(r.get('shipped_over_handwritten_p99'), 2, '×')}) | "
            f"{fmt(cost * 100 if cost is not None else None, 1, ' %')} | "
            f"{fmt(get('pingback', 'peak_rss_mib'))} / {fmt(get('handwritten', 'peak_rss_mib'))} | {errors} |"
        )
    return "\n".join(lines)


def targets_table(results, connections):
    lines = ["| target (issue 18) | measured (medians) | |", "|---|---|---|"]
    for t in read_targets(results):
        lines.append(f"| {t['target'].replace('{connections}', str(connections))} | {t['measured']} | "
                     f"{met_text(t['met'])} |")
    return "\n".join(lines)


def pct(value, digits=0):
    return fmt(value * 100 if value is not None else None, digits, " %")


def render_markdown(doc):
    m, st = doc["machine"], doc["settings"]
    quick = st.get("quick")
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("<!-- Generated by `make bench` (scripts/bench.sh, benches/bench.py). Do not edit by hand: run it again. -->")
    w("")
    if quick:
        w("> **Smoke run (`BENCH_QUICK=1`)**: one short run per size on small data. These numbers only show "
          "that the harness works; run `make bench` for real ones.")
        w("")
    workers = st.get("pingback_workers")
    lanes = st.get("pingback_read_connections")
    w("`GET /api/v1/conversations/{id}` — one conversation, its customer and its complete history — "
      "served by five systems from the same PostgreSQL database, under the same load, in the same run "
      "(issue 18, \"fast as shipped\"):")
    w("")
    w("- **pingback (shipped)** — `pingback serve` (release build) as shipped: only the database URL, the bind "
      "address and the JWT secret set; everything else is `config/default.toml`'s — the log level `info` (an "
      "access-log line per request, written off the request path by its background writer to stderr, here a "
      "file), the default worker count (one per core the process may run on: "
      + (f"{workers} actix worker thread{'s' if workers != 1 else ''} counted under `taskset`" if workers
         else "not counted") + "), "
      + (f"{lanes} pipelined read connection{'s' if lanes != 1 else ''} per worker" if lanes
         else "its default read connections per worker")
      + ". JWT authentication, the application service with its tenant re-check, the Diesel/diesel-async "
      "PostgreSQL adapter, the domain aggregate, the JSON representation, request ids, ETag.")
    w("- **pingback, log warn** — the same binary with only `PINGBACK__LOG__LEVEL=warn` added (no access-log "
      "line per request): **logging cost = 1 − shipped ÷ warn throughput**.")
    w("- **baseline (same SQL)** — `benches/baseline` (`pingback-baseline`): pingback's endpoint written by hand "
      "on the same stack (actix-web, tokio-postgres, jsonwebtoken, serde_json) running **pingback's own "
      "statement on pingback's own schema**: the same token check, the same statement prepared once on one "
      "connection per worker (concurrent reads pipelined on it), the same JSON body (checked byte for byte "
      "below) with an ETag made the same way (from the stored revisions), serialized straight from the rows. "
      "The lower bound of pingback's SQL and schema on this stack.")
    w("- **hand-written** — `pingback-handwritten` (`benches/baseline/src/handwritten.rs`): the endpoint as a "
      "user would write it by hand, on actix-web + tokio-postgres and **its own natural schema** (PostgreSQL "
      "schema `handwritten`, `benches/baseline/handwritten.sql`): conversations carrying what the endpoint "
      "needs, customers, and messages whose attachments are a JSONB array on the message row — loaded from "
      "pingback's tables after generation (`INSERT … SELECT`, the attachments aggregated with `jsonb_agg` in "
      "position order) and `VACUUM ANALYZE`d with them; keyed by the ids alone, the tenant checked on the "
      "conversation row. Two statements per request, pipelined on one "
      "connection per worker and prepared once: the conversation joined with its customer, and the messages "
      "with their attachments ordered by `created_at, id` (outside a transaction: each its own snapshot; "
      "PostgreSQL's default plan cache mode). The JSON body written by hand straight from the rows (the "
      "attachments decoded from the JSONB and written in the API's field order; the same bytes as pingback's, "
      "checked below), the same token check and ETag as the baseline, **no logging**. Issue 18's reference: "
      "pingback as shipped must be at least as fast.")
    w("- **pgbench** — PostgreSQL's own client running pingback's statement for random conversations "
      "(prepared protocol), no HTTP, no JSON: the database ceiling.")
    w("")
    w("## Machine and settings")
    w("")
    w(f"- Date: {doc['generated_at']}; commit `{doc.get('git') or 'unknown'}`")
    w(f"- CPU: {m.get('cpu')}, {m.get('cores')} cores; memory {m.get('memory_gib')} GiB; {m.get('os')}, "
      f"kernel {m.get('kernel')}")
    w(f"- {m.get('rustc')}; {m.get('postgresql')}; {m.get('wrk')}")
    w(f"- Load: `wrk -c {st['connections']} -t {st['threads']} -d {st['duration_s']}s` pinned to core "
      f"{st['load_cpu']}, picking conversation ids at random (`benches/wrk/conversations.lua`, a valid token, "
      f"every non-2xx response counted as an error); pgbench `-c {st['pgbench_clients']} -j 1 -M prepared` "
      f"on the same core.")
    w(f"- Server under test and PostgreSQL share core {st['server_cpu']} (`taskset`). pingback (both rows) runs "
      "its default worker count — "
      + (f"{workers} under `taskset`, counted from its threads" if workers else "not counted")
      + " — and its default read connections per worker"
      + (f" ({lanes}, from its `/metrics`)" if lanes else "")
      + f"; the two references run {st.get('reference_workers', 1)} actix worker with one connection each. "
      "pingback, the baseline and pgbench run with `plan_cache_mode = force_generic_plan` (pingback sets it on "
      "its connections); the hand-written server leaves PostgreSQL's default. PostgreSQL 15 with `fsync=off`, "
      "`shared_buffers=128MB`, `pg_stat_statements`; data `VACUUM ANALYZE`d before the runs.")
    w(f"- Each system: a {st['warmup_s']} s warm-up, then {st['repeats']} run(s) of {st['duration_s']} s, "
      "interleaved (pingback, pingback log warn, baseline, hand-written, pgbench, pingback, …); a fresh process "
      "of each server per size; the tables give medians.")
    conv = ", ".join(f"{int(k):,} messages × {v}" for k, v in sorted(st["conversations"].items(), key=lambda kv: int(kv[0])))
    w(f"- Data (`pingback generate --style long`, one business per size): {conv} conversations.")
    d = st.get("data")
    if d:
        w(f"- The messages (issue 18's histories: 20–400 characters of text with some non-ASCII, newlines and "
          f"quotes, attachments on 10 % of them): {fmt(d.get('messages'))} messages of "
          f"{fmt(d.get('min_chars'))}–{fmt(d.get('max_chars'))} characters (median {fmt(d.get('median_chars'), 0)}); "
          f"{pct(d.get('non_ascii'))} with non-ASCII text, {pct(d.get('newlines'))} with line breaks, "
          f"{pct(d.get('quotes'))} with double quotes; {pct(d.get('with_attachments'), 1)} with attachments "
          f"({fmt(d.get('attachments'))} in all).")
    foreign = [v["server_core_foreign_share_max"] for r in doc["results"] for v in r["systems"].values()
               if v.get("server_core_foreign_share_max") is not None]
    if foreign:
        worst = max(foreign)
        w(f"- Interference: other processes took at most {worst * 100:.1f} % of the server core during the "
          "measured windows" + (" — **this machine was not quiet: treat these numbers with care**." if worst > 0.05
                                 else "."))
    w("")
    w("## Summary")
    w("")
    w("Throughput, medians. **shipped ÷ hand-written** below 1 means pingback as shipped serves fewer requests per "
      "second than the hand-written server; **logging cost** = 1 − shipped ÷ log-warn throughput; peak RSS: "
      f"the server's `VmHWM` after its runs at that size ({st['connections']} concurrent reads).")
    w("")
    w(summary_table(doc["results"]))
    w("")
    w("### Targets")
    w("")
    w("Issue 18's targets, on this run's medians:")
    w("")
    w(targets_table(doc["results"], st["connections"]))
    w("")
    if any(t["met"] is False for t in read_targets(doc["results"])):
        w("What limits a target not met is in the read's profile: `docs/performance.md` (the steps tried, "
          "and \"Where the remaining time goes\").")
        w("")
    w("## Per size")
    w("")
    w("- **req/s**: completed requests (pgbench: executions of the statement) per second.")
    w("- **p50 / p99**: latency at the load above (wrk: per HTTP request over "
      f"{st['connections']} connections; pgbench: per transaction over {st['pgbench_clients']} clients).")
    w("- **peak RSS**: the server's `VmHWM` after its runs at this size (a fresh process per size).")
    w("- **server CPU/req**: the server process's user+system CPU (`/proc/PID/stat`) per request; "
      f"**core {st['server_cpu']} CPU/req**: everything on the server core (server + PostgreSQL) per request; "
      f"**core {st['server_cpu']} busy**: its utilisation (near 100 % means that core is the bottleneck). "
      f"All three over the steady state of each run — from {st.get('skip_s', 1)} s after its start to "
      f"{st.get('skip_s', 1)} s before its end, divided by the conversation reads PostgreSQL executed meanwhile "
      "(`pg_stat_statements`: executions of the statement joining the customers) — so neither the ramp-up nor "
      "the requests cut off when wrk stops skew them; the whole-run figures (CPU delta / completed requests) are "
      "in `results.json`. Before every run the harness waits until the servers and PostgreSQL are idle.")
    w("- **stmts/req**: statements executed per conversation read, from `pg_stat_statements` (pgbench's random "
      "id pick in `bench_ids` excluded): pingback and the baseline one statement (one round trip, one "
      "snapshot), the hand-written server two (pipelined).")
    w("")
    for row in doc["results"]:
        s = row["systems"]
        w(f"### {row['messages']:,} messages per conversation ({row['conversations']} conversations)")
        w("")
        w(f"| system | req/s | p50 ms | p99 ms | errors | peak RSS MiB | server CPU ms/req | "
          f"core {st['server_cpu']} CPU ms/req | core {st['server_cpu']} busy | stmts/req |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for system in SYSTEMS:
            v = s.get(system)
            if not v:
                continue
            util = v["server_core_utilisation"]
            w(f"| {LABELS[system]} | {fmt(v['requests_per_second'])} | {fmt(v['p50_ms'], 2)} | {fmt(v['p99_ms'], 2)} | "
              f"{v['errors']} | {fmt(v['peak_rss_mib'])} | {fmt(v['server_cpu_ms_per_request'], 3)} | "
              f"{fmt(v['server_core_cpu_ms_per_request'], 3)} | {fmt(util * 100 if util is not None else None, 0, ' %')} | "
              f"{fmt(v['statements_per_request'], 2)} |")
        r = row["ratios"]
        pb, hw, bl = s.get("pingback", {}), s.get("handwritten", {}), s.get("baseline", {})
        w("")
        w(f"- pingback (shipped) ÷ hand-written: **{fmt(r.get('shipped_over_handwritten_rps'), 2, '×')}** "
          f"throughput, {ratio(pb.get('p50_ms'), hw.get('p50_ms'))} p50 and "
          f"{ratio(pb.get('p99_ms'), hw.get('p99_ms'))} p99 latency, "
          f"{ratio(pb.get('server_cpu_ms_per_request'), hw.get('server_cpu_ms_per_request'))} server CPU and "
          f"{ratio(pb.get('server_core_cpu_ms_per_request'), hw.get('server_core_cpu_ms_per_request'))} core "
          f"{st['server_cpu']} CPU per request.")
        cost = r.get("logging_cost")
        w(f"- Logging cost: **{fmt(cost * 100 if cost is not None else None, 1, ' %')}** (1 − shipped ÷ log warn: "
          f"{fmt(pb.get('requests_per_second'))} vs {fmt(s.get('pingback-warn', {}).get('requests_per_second'))} "
          f"req/s; server CPU per request {fmt(pb.get('server_cpu_ms_per_request'), 3)} vs "
          f"{fmt(s.get('pingback-warn', {}).get('server_cpu_ms_per_request'), 3)} ms).")
        w(f"- pingback (shipped) ÷ baseline (same SQL): {fmt(r.get('pingback_over_baseline_rps'), 2, '×')} "
          f"throughput, {ratio(pb.get('server_cpu_ms_per_request'), bl.get('server_cpu_ms_per_request'))} server "
          "CPU per request; ÷ pgbench: "
          f"{fmt(r.get('pingback_over_pgbench_rps'), 2, '×')} (baseline {fmt(r.get('baseline_over_pgbench_rps'), 2, '×')}, "
          f"hand-written {fmt(r.get('handwritten_over_pgbench_rps'), 2, '×')}).")
        c = row.get("check")
        if c:
            refs = c.get("references") or {"baseline": c}
            parts = []
            for name in ("baseline", "handwritten", "pingback-warn"):
                ref = refs.get(name)
                if not ref:
                    continue
                same = ("identical bytes" if ref["identical_bytes"] else
                        ("the same JSON, **other bytes**" if ref["identical_json"] else "**different bodies**"))
                etag = "" if ref.get("identical_etag", True) else ", **another ETag**"
                parts.append(f"{LABELS.get(name, name)}: {same}{etag}")
            cover = c.get("covered")
            held = (f" Their {cover['messages']:,} messages held {cover['attachments']:,} attachments; "
                    f"{cover['quotes']:,} texts with double quotes, {cover['newlines']:,} with line breaks, "
                    f"{cover['backslashes']:,} with backslashes, {cover['non_ascii']:,} with non-ASCII "
                    "characters.") if cover else ""
            w(f"- Check before the runs: {c['ids_checked']} conversations answered 200 with {row['messages']:,} "
              f"messages by every server; compared with pingback's answer — " + "; ".join(parts)
              + (f" (the last one {c['body_bytes']:,} bytes)" if c.get("body_bytes") else "") + "." + held)
            for p in c["problems"][:3]:
                w(f"  - {p}")
        w("")
    w("## The SQL")
    w("")
    w("What each system executed per conversation read, from `pg_stat_statements` (largest size, "
      "all runs):")
    w("")
    if doc["results"]:
        same = all(r.get("same_select_statements") for r in doc["results"])
        w("The baseline's statement is the text pingback's adapter sends (`ConversationRead`); pgbench runs it "
          "with `:bid`/`:cid` for the business and conversation ids. " + (
              "At every size, the SELECT of pingback (both rows), the baseline and pgbench has the same "
              "`queryid`: PostgreSQL ran the same statement." if same else
              "**The SELECTs of pingback, the baseline and pgbench do not have the same `queryid` at every "
              "size** (pgbench sends the constant columns as parameters): see `results.json`.")
          + " The hand-written server runs its own two statements on its own schema.")
        w("")
    if doc["results"]:
        last = doc["results"][-1]
        for system in SYSTEMS:
            v = last["systems"].get(system)
            if not v:
                continue
            w(f"**{LABELS[system]}**")
            w("")
            for s in v["statements"]:
                if (s["calls_per_request"] or 0) < 0.001:
                    continue
                w(f"- {s['calls_per_request']:.3f} calls/request, {fmt(s['rows_per_call'], 1)} rows/call: "
                  f"`{' '.join(s['query'].split())}`")
            w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("make bench                 # release build, fresh PostgreSQL, data, all runs; rewrites this page")
    w("BENCH_QUICK=1 make bench   # smoke test: small data, one 3 s run per size")
    w("```")
    w("")
    w("Needs root or passwordless `apt-get` only when `wrk` or PostgreSQL are missing. Knobs (environment): "
      "`BENCH_DURATION` (s), `BENCH_REPEATS`, `BENCH_WARMUP` (s), `BENCH_CONNECTIONS`, `BENCH_THREADS`, "
      "`BENCH_PGBENCH_CLIENTS`, `BENCH_SIZES` (e.g. `10:200 100:100`), `BENCH_LOAD_CPU`, `BENCH_SERVER_CPU`. "
      "Raw per-run data, the machine-readable results (`results.json`) and the servers' logs are in "
      "`bench-results/` (not committed).")
    w("")
    w("Caveats: the load generator and the system under test share one machine (separate cores). The pgbench "
      "\"ceiling\" is PostgreSQL's cost under pgbench's protocol: one extra primary-key lookup per transaction "
      "(`bench_ids`, to pick a random conversation; excluded from stmts/req) and results in text format, where "
      "the servers read binary (PostgreSQL formats every uuid and timestamp as text for pgbench) — so on small "
      "conversations the servers can come close to it or pass it. pingback as shipped writes its access log to "
      "a file here; a slower log sink (a terminal, a pipe to a collector) costs more, or drops lines (counted in "
      "`/metrics`) rather than blocking requests. Medians of a few short runs are indicative, not precise to "
      "the percent; the interference line above says whether the machine was quiet.")
    w("")
    return "\n".join(out)


# --- report: writes --------------------------------------------------------------

WRITE_SYSTEMS = ("pingback", "pingback-key", "pgbench", "pgbench-events")
WRITE_LABELS = {"pingback": "pingback", "pingback-key": "pingback + Idempotency-Key",
                "pgbench": "pgbench, without events", "pgbench-events": "pgbench, with events"}
WRITE_TARGETS = {"pingback_over_pgbench_min": 0.7, "p99_ms_max": 25.0, "errors_max": 0, "event_log_cost_max": 0.15}


def write_results(work, meta):
    """The write scenario: medians per system, ratios, targets, statements per POST."""
    runs = read_lines(os.path.join(work, "write-runs.jsonl"))
    peaks = {p["system"]: p["vmhwm_kib"] for p in read_lines(os.path.join(work, "write-peaks.jsonl"))}
    check_path = os.path.join(work, "write-check.json")
    check = read_json(check_path) if os.path.exists(check_path) else None
    events_path = os.path.join(work, "write-events.json")
    event_data = read_json(events_path) if os.path.exists(events_path) else None
    after_path = os.path.join(work, "write-messages-after.txt")
    messages_after = None
    if os.path.exists(after_path):
        with open(after_path) as f:
            text = f.read().strip()
            messages_after = int(text) if text.isdigit() else None
    systems = {}
    for system in WRITE_SYSTEMS:
        rs = [r for r in runs if r["system"] == system]
        if not rs:
            continue
        key_statements = {}
        for r in rs:
            for s in r["statements"]:
                key = s.get("queryid") or s["query"]
                entry = key_statements.setdefault(
                    key, {"queryid": s.get("queryid"), "query": s["query"], "calls": 0, "rows": 0, "total_ms": 0.0})
                entry["calls"] += s["calls"]
                entry["rows"] += s["rows"]
                entry["total_ms"] += s.get("total_ms") or 0.0
        # Per transaction: executions of the head read (the statement joining customers).
        total_tx = sum(r.get("conversation_reads") or r["requests"] for r in rs)
        statements = sorted(key_statements.values(), key=lambda s: -s["calls"])
        for s in statements:
            s["calls_per_request"] = s["calls"] / total_tx if total_tx else None
            s["rows_per_call"] = s["rows"] / s["calls"] if s["calls"] else None
        systems[system] = {
            "runs": len(rs),
            "requests_per_second": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "first_error_status": next((r.get("first_error_status") for r in rs if r.get("first_error_status")), None),
            "requests": sum(r["requests"] for r in rs),
            # One pingback process serves both variants.
            "peak_rss_mib": peaks["pingback"] / 1024 if not system.startswith("pgbench") and peaks.get("pingback") else None,
            "server_cpu_ms_per_request": median([r["server_cpu_ms_per_request"] for r in rs]),
            "server_core_cpu_ms_per_request": median([r["server_core_cpu_ms_per_request"] for r in rs]),
            "server_core_utilisation": median([r["server_core_utilisation"] for r in rs]),
            "load_core_utilisation": median([r["load_core_utilisation"] for r in rs]),
            "server_core_foreign_share_max": max(
                [r["server_core_foreign_share"] for r in rs if r.get("server_core_foreign_share") is not None],
                default=None),
            "statements_per_request": median([r["statements_per_request"] for r in rs]),
            "db_exec_ms_per_request": median([r["db_exec_ms_per_request"] for r in rs]),
            "statements": statements,
            "per_run": [
                {k: r.get(k) for k in ("repeat", "rps", "p50_ms", "p99_ms", "errors", "requests",
                                       "server_cpu_ms_per_request", "server_core_cpu_ms_per_request")}
                for r in rs
            ],
        }
    rps = {k: v["requests_per_second"] for k, v in systems.items()}
    ratios = {
        "pingback_over_pgbench_rps": rps["pingback"] / rps["pgbench"] if rps.get("pingback") and rps.get("pgbench") else None,
        "pingback_key_over_pgbench_rps":
            rps["pingback-key"] / rps["pgbench"] if rps.get("pingback-key") and rps.get("pgbench") else None,
        "pingback_key_over_pingback_rps":
            rps["pingback-key"] / rps["pingback"] if rps.get("pingback-key") and rps.get("pingback") else None,
        # The event log's statements (counter bump, events row, pg_notify) in the same
        # transaction, on the database alone: pgbench with them over pgbench without.
        "pgbench_events_over_pgbench_rps":
            rps["pgbench-events"] / rps["pgbench"] if rps.get("pgbench-events") and rps.get("pgbench") else None,
        "pingback_over_pgbench_events_rps":
            rps["pingback"] / rps["pgbench-events"] if rps.get("pingback") and rps.get("pgbench-events") else None,
    }
    ratios["event_log_cost"] = (1 - ratios["pgbench_events_over_pgbench_rps"]
                                if ratios["pgbench_events_over_pgbench_rps"] is not None else None)
    # Per repeat (the two pgbench variants run back to back in each).
    pairs = []
    for r in (r for r in runs if r["system"] == "pgbench"):
        e = next((x for x in runs if x["system"] == "pgbench-events" and x["repeat"] == r["repeat"]), None)
        if e and r["rps"]:
            pairs.append({"repeat": r["repeat"], "without_tps": r["rps"], "with_tps": e["rps"],
                          "cost": 1 - e["rps"] / r["rps"]})
    ratios["event_log_cost_per_repeat"] = pairs
    pb = systems.get("pingback", {})
    met = {
        "pingback_over_pgbench": ratios["pingback_over_pgbench_rps"] is not None
        and ratios["pingback_over_pgbench_rps"] >= WRITE_TARGETS["pingback_over_pgbench_min"],
        "p99": pb.get("p99_ms") is not None and pb["p99_ms"] <= WRITE_TARGETS["p99_ms_max"],
        "errors": bool(pb) and pb["errors"] <= WRITE_TARGETS["errors_max"],
        "event_log_cost": ratios["event_log_cost"] is not None
        and ratios["event_log_cost"] <= WRITE_TARGETS["event_log_cost_max"],
    }
    # The same SQL: every statement pgbench runs once per transaction has the queryid of
    # one pingback runs once per POST (BEGIN and COMMIT included), and vice versa.
    def per_tx(system):
        v = systems.get(system)
        if not v:
            return None
        # BEGIN and COMMIT aside: pg_stat_statements counts pgbench's prepared ones only
        # when they are prepared, once per client.
        # The numbering of events runs in transactions of its own, shared by several
        # writes (pingback's inserts as many rows as it numbers, a statement text per
        # count; pgbench's numbering client does it in one statement): compared apart.
        return {s["queryid"] for s in v["statements"] if (s["calls_per_request"] or 0) >= 0.5
                and s["query"].strip().upper() not in ("BEGIN", "COMMIT")
                and not any(n in s["query"] for n in NUMBERING_STATEMENTS)}
    pingback_ids, pgbench_ids = per_tx("pingback"), per_tx("pgbench")
    events_ids = per_tx("pgbench-events")

    def queries(system, ids):
        return sorted({" ".join(q["query"].split()) for q in systems[system]["statements"] if q["queryid"] in ids})
    # What the event log changes in the transaction: the statements pgbench with events
    # runs and pgbench without does not (the three event statements, and the head read
    # with the whole customer row), and those only pgbench without events runs.
    event_diff = None
    if events_ids is not None and pgbench_ids is not None:
        event_diff = {"with_events_only": queries("pgbench-events", events_ids - pgbench_ids),
                      "without_events_only": queries("pgbench", pgbench_ids - events_ids)}
    return {
        "generated_at": meta["date"],
        "git": meta.get("git"),
        "quick": meta.get("quick"),
        "settings": {k: meta[k] for k in ("duration_s", "repeats", "warmup_s", "skip_s", "connections", "threads",
                                          "pgbench_clients", "load_cpu", "server_cpu", "workers") if k in meta}
        | ({"repeats": meta["write_repeats"]} if "write_repeats" in meta else {})
        | {"conversations": meta.get("write_conversations"), "messages_at_start": meta.get("write_messages"),
           "business_id": meta.get("write_business"), "messages_after_runs": messages_after,
           "pingback_write_pool": "database.max_connections (default 10) per worker"},
        "machine": machine() | {"postgresql": meta.get("postgresql")},
        "systems": systems,
        "ratios": ratios,
        "targets": WRITE_TARGETS,
        "targets_met": met,
        # pingback's statements per POST = pgbench-events' per transaction.
        "same_statements": (pingback_ids == events_ids) if pingback_ids is not None and events_ids is not None else None,
        "event_log_statements": event_diff,
        "event_data": event_data,
        "check": check,
    }


# Statements of the numbering of pending events (crates/persistence/src/sequencer.rs,
# benches/pgbench/number_events.sql).
NUMBERING_STATEMENTS = ("business_event_counters", "DELETE FROM pending_events", 'INSERT INTO "events"',
                        "INSERT INTO events", "pg_notify")


def render_writes(wr):
    st, s = wr["settings"], wr["systems"]
    out = []
    w = out.append
    w("## Writes")
    w("")
    w("<!-- Generated by `make bench` (the write scenario; `BENCH_SCENARIOS=writes make bench` redoes only "
      "this section). -->")
    w("")
    if wr.get("quick"):
        w("> **Smoke run (`BENCH_QUICK=1`)**: one short run. These numbers only show that the harness works.")
        w("")
    w(f"`POST /api/v1/conversations/{{id}}/messages` — an agent message (`{{\"sender_type\": \"agent\", "
      f"\"sender_id\": …, \"content\": …}}`, 20–400 characters, a third with non-ASCII text) posted to a "
      f"conversation picked at random among {st['conversations']} open conversations of one business "
      f"({st['messages_at_start']} messages each at the start), against the ceiling of the same SQL transaction "
      "run by pgbench:")
    w("")
    w("- **pingback** — `pingback serve` (release build), the same process settings as for reads: JWT with scope "
      "`conversations:write`, validation, the write transaction on a pooled connection "
      f"({st['pingback_write_pool']}), the message as the answer (201).")
    w("- **pingback + Idempotency-Key** — the same with a unique `Idempotency-Key` per request (its claim and "
      "its recorded answer are two more statements in the transaction).")
    w("- **pgbench, with events** — `benches/pgbench/post_message_events.sql`: `BEGIN`, the statements "
      "pingback's transaction runs (same texts, binds, order; without an Idempotency-Key), `COMMIT`, for a random "
      "conversation among the same ones and a random one of the same bodies (one extra primary-key lookup per "
      "transaction picks them and makes the message id and time: excluded from stmts/req); `-M prepared`, "
      "generic plans as pingback's connections. No HTTP, no JSON, no validation: the database ceiling of this "
      "transaction. The event log's part, as pingback issues it on plain PostgreSQL: the `message.created` "
      "event staged in `pending_events` by the head's `UPDATE` itself (a data-modifying `WITH \"staged\" AS "
      "(INSERT …)` in front of it; on Citus, which cannot route that to one shard, pingback stages it in an "
      "`INSERT` of its own). The event's `data` is a real one, picked at random "
      "per transaction among the `message.created` events pingback wrote in the check before the runs"
      + (f" ({fmt(wr['event_data'].get('events'))} events, {fmt(wr['event_data'].get('min_bytes'))}–"
         f"{fmt(wr['event_data'].get('max_bytes'))} bytes, median {fmt(wr['event_data'].get('median_bytes'), 0)})"
         if wr.get("event_data") else "") + ". Meanwhile one more pgbench client numbers the staged events back to "
      "back (`benches/pgbench/number_events.sql`, each a transaction: lock the business's counter row; one "
      "statement that moves its pending events into `events` with the next ids and raises the counter, a "
      "`DELETE … RETURNING` feeding the `INSERT` and the counter's `UPDATE` in a `WITH`; `pg_notify` when it moved "
      "any), as pingback's writers have it done after their commit, with the same statements; pingback, "
      "listening for the notifications, runs meanwhile.")
    w("- **pgbench, without events** — `benches/pgbench/post_message.sql`: the write's transaction as it was before "
      "the event log: the head's `UPDATE` without the staged event (the text pingback runs when it stages "
      "nothing), and the head read taking only the customer's `revision` "
      "(pingback's head read now takes the whole customer row, which the event's conversation carries as the "
      "inbox lists it). Both pgbench variants run interleaved (same clients, durations, repeats, conversations and "
      "bodies); **the event log's cost = 1 − with / without**: the whole difference the log makes to the "
      "transaction on the database.")
    w("")
    w(f"- Date: {wr['generated_at']}; commit `{wr.get('git') or 'unknown'}`; {wr['machine'].get('postgresql')}.")
    w(f"- Load: `wrk -c {st['connections']} -t {st['threads']} -d {st['duration_s']}s` pinned to core "
      f"{st['load_cpu']} (`benches/wrk/post_message.lua`, every non-2xx response an error); pgbench "
      f"`-c {st['pgbench_clients']} -j 1 -M prepared` on the same core; pingback ({st['workers']} actix worker) "
      f"and PostgreSQL on core {st['server_cpu']}. A {st['warmup_s']} s warm-up each, then {st['repeats']} "
      f"interleaved run(s) of {st['duration_s']} s; medians.")
    growth = ""
    if st.get("messages_after_runs") is not None:
        growth = (f" The {st['conversations']} conversations held {st['conversations'] * st['messages_at_start']:,} "
                  f"messages before the runs and {st['messages_after_runs']:,} after them (the warm-ups and runs "
                  "added the rest; the latest message is read through the history index, and the runs are short "
                  "enough for this growth not to show in the interleaved medians).")
    w("- Data: `pingback generate` (fresh, its own business); conversations that are not `closed` (they refuse "
      "messages) and have an assignee (pgbench cannot bind the NULL `assignee_id` of the UPDATE), each "
      "given one message by the check before the runs." + growth)
    foreign = [v["server_core_foreign_share_max"] for v in s.values() if v.get("server_core_foreign_share_max") is not None]
    if foreign:
        worst = max(foreign)
        w(f"- Interference: other processes took at most {worst * 100:.1f} % of the server core during the "
          "measured windows" + (" — **this machine was not quiet: treat these numbers with care**." if worst > 0.05
                                 else "."))
    w("")
    w(f"| system | req/s | p50 ms | p99 ms | errors | server CPU ms/req | core {st['server_cpu']} CPU ms/req | "
      f"core {st['server_cpu']} busy | stmts/req |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for system in WRITE_SYSTEMS:
        v = s.get(system)
        if not v:
            continue
        util = v["server_core_utilisation"]
        w(f"| {WRITE_LABELS[system]} | {fmt(v['requests_per_second'])} | {fmt(v['p50_ms'], 2)} | "
          f"{fmt(v['p99_ms'], 2)} | {v['errors']} | {fmt(v['server_cpu_ms_per_request'], 3)} | "
          f"{fmt(v['server_core_cpu_ms_per_request'], 3)} | {fmt(util * 100 if util is not None else None, 0, ' %')} | "
          f"{fmt(v['statements_per_request'], 2)} |")
    w("")
    r, t, met = wr["ratios"], wr["targets"], wr["targets_met"]
    pb = s.get("pingback", {})
    mark = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    w(f"- pingback / pgbench without events: **{fmt(r['pingback_over_pgbench_rps'], 2, '×')}** throughput "
      f"(target ≥ {t['pingback_over_pgbench_min']}: {mark(met['pingback_over_pgbench'])}); "
      f"pingback p99 {fmt(pb.get('p99_ms'), 2)} ms (target ≤ {t['p99_ms_max']:g} ms: {mark(met['p99'])}); "
      f"errors {pb.get('errors', '–')} (target {t['errors_max']}: {mark(met['errors'])}).")
    if r.get("event_log_cost") is not None:
        e = s.get("pgbench-events", {})
        per = ", ".join(f"{p['cost'] * 100:.1f} %" for p in r.get("event_log_cost_per_repeat") or [])
        w(f"- **Event log's cost**: pgbench {fmt(s['pgbench']['requests_per_second'])} tx/s without events, "
          f"{fmt(e.get('requests_per_second'))} tx/s with them: **{r['event_log_cost'] * 100:.1f} %** "
          f"(1 − with / without on the medians; target ≤ {t['event_log_cost_max'] * 100:g} %: "
          f"{mark(met['event_log_cost'])}; per repeat: {per or '–'}). pingback, which runs them, "
          f"{fmt(pb.get('requests_per_second'))} req/s: {fmt(r['pingback_over_pgbench_events_rps'], 2, '×')} of "
          "pgbench with events.")
        STAGING_UPDATE = 'WITH "staged"'  # noqa: N806
        HEAD_UPDATE = 'UPDATE "conversations"'  # noqa: N806

        def mean_ms(system, needle):
            q = [x for x in s.get(system, {}).get("statements", []) if needle in x["query"] and x["calls"]]
            return sum(x["total_ms"] for x in q) / sum(x["calls"] for x in q) if q else None
        def calls_per_tx(system, needle):
            q = [x for x in s.get(system, {}).get("statements", []) if needle in x["query"]]
            return sum(x["calls_per_request"] or 0 for x in q) if q else None
        w(f"- Where it goes (pgbench, `pg_stat_statements` mean execution time per call): the head's update with "
          f"the staged event {fmt(mean_ms('pgbench-events', STAGING_UPDATE), 3)} ms, without it "
          f"{fmt(mean_ms('pgbench', HEAD_UPDATE), 3)} ms; the numbering "
          f"ran {fmt(calls_per_tx('pgbench-events', 'DELETE FROM pending_events'), 2)} times per write (pingback: "
          f"{fmt(calls_per_tx('pingback', 'DELETE FROM pending_events'), 2)}), its counter-row lock "
          f"{fmt(mean_ms('pgbench-events', 'INSERT INTO business_event_counters'), 3)} ms, the move "
          f"{fmt(mean_ms('pgbench-events', 'DELETE FROM pending_events'), 3)} ms, `pg_notify` "
          f"{fmt(mean_ms('pgbench-events', 'pg_notify'), 3)} ms; core {st['server_cpu']} CPU per transaction "
          f"{fmt(s['pgbench'].get('server_core_cpu_ms_per_request'), 3)} ms without events, "
          f"{fmt(e.get('server_core_cpu_ms_per_request'), 3)} ms with them. Writers of one business no longer "
          "wait for each other's commits: only the numberings take the counter row, one at a time.")
    if r.get("pingback_key_over_pgbench_rps") is not None:
        w(f"- With an Idempotency-Key: {fmt(r['pingback_key_over_pgbench_rps'], 2, '×')} of pgbench without events "
          f"(which runs the transaction without the key's two statements), "
          f"{fmt(r['pingback_key_over_pingback_rps'], 2, '×')} of pingback without a key.")
    w("- **req/s**: 2xx answers per second (pgbench: committed transactions); **p50 / p99**: per request over "
      f"{st['connections']} connections (pgbench: per transaction over {st['pgbench_clients']} clients); CPU "
      "columns as for reads, over the steady state of each run, per write transaction (executions of the head "
      "read, `pg_stat_statements`); **stmts/req**: statements per transaction, `BEGIN` and `COMMIT` included "
      "(pgbench's random pick excluded; pg_stat_statements counts pgbench's prepared `BEGIN` and `COMMIT` only "
      "once per client, when they are prepared, so its count is 2 lower although it runs them too).")
    c = wr.get("check")
    if c:
        w(f"- Check before the runs: {c['posted']} of {c['conversations']} conversations answered 201 to a POST "
          f"with the message and its `Location`; an Idempotency-Key sent twice was "
          + ("replayed (same answer, `Idempotent-Replayed: true`)." if c.get("idempotent_replay") else "**not replayed**."))
        for p in c["problems"][:3]:
            w(f"  - {p}")
    w("")
    w("What each system executed per transaction, from `pg_stat_statements` (all runs):")
    w("")
    if wr.get("same_statements") is not None:
        w("pingback's statements per POST without a key and pgbench's with events per transaction have " + (
            "the same `queryid`s: PostgreSQL ran the same statements." if wr["same_statements"] else
            "**different `queryid`s**: `benches/pgbench/post_message_events.sql` no longer matches what pingback "
            "runs (see `results.json`)."))
        w("")
    diff = wr.get("event_log_statements")
    if diff:
        w(f"What the event log changes in the transaction (`queryid`s pgbench ran with events and not without: "
          f"{len(diff['with_events_only'])}; without events and not with: {len(diff['without_events_only'])}):")
        w("")
        for q in diff["with_events_only"]:
            w(f"- with events only: `{q}`")
        for q in diff["without_events_only"]:
            w(f"- without events only: `{q}`")
        w("")
    for system in WRITE_SYSTEMS:
        v = s.get(system)
        if not v:
            continue
        w(f"**{WRITE_LABELS[system]}**")
        w("")
        for q in v["statements"]:
            if (q["calls_per_request"] or 0) < 0.001:
                continue
            w(f"- {q['calls_per_request']:.3f} calls/request, {fmt(q['rows_per_call'], 1)} rows/call: "
              f"`{' '.join(q['query'].split())}`")
        w("")
    w("Reproduce: `make bench` runs all the scenarios; `BENCH_SCENARIOS=writes make bench` only this one (it "
      "rewrites only this section and the `writes` key of `results.json`); `BENCH_WRITE_IDEMPOTENT=0` skips the "
      "run with an Idempotency-Key; `BENCH_WRITE_CONVERSATIONS` (default 100); `BENCH_WRITE_REPEATS` (default 5, "
      "in place of `BENCH_REPEATS`: a repeat's event log cost varies by up to ±10 points); both pgbench variants "
      "always run. `BENCH_QUICK`, `BENCH_DURATION`, `BENCH_WARMUP`, `BENCH_CONNECTIONS`, `BENCH_PGBENCH_CLIENTS` "
      "apply as for reads.")
    w("")
    return out


def write_summary(wr):
    s, r = wr["systems"], wr["ratios"]
    get = lambda system, key: s.get(system, {}).get(key)  # noqa: E731
    return "\n".join([
        "| writes | pingback req/s | pingback + key req/s | pgbench tx/s | pgbench + events tx/s | event log cost "
        "| pingback / pgbench | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| POST message | {fmt(get('pingback', 'requests_per_second'))} | {fmt(get('pingback-key', 'requests_per_second'))} | "
        f"{fmt(get('pgbench', 'requests_per_second'))} | {fmt(get('pgbench-events', 'requests_per_second'))} | "
        f"{fmt(r['event_log_cost'] * 100 if r.get('event_log_cost') is not None else None, 1, ' %')} | "
        f"{fmt(r['pingback_over_pgbench_rps'], 2, '×')} | "
        f"{fmt(get('pingback', 'p50_ms'), 2)} | {fmt(get('pingback', 'p99_ms'), 2)} | "
        f"{sum(v['errors'] for v in s.values())} |",
    ])


def splice_writes(markdown, section, heading="## Writes"):
    """`markdown` with its `heading` section (Writes) replaced by `section` (or added
    before Reproduce, else at the end)."""
    lines = markdown.split("\n")
    start = next((i for i, line in enumerate(lines) if line == heading), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        return "\n".join(lines[:start] + section + lines[end:])
    at = next((i for i, line in enumerate(lines) if line == "## Reproduce"), None)
    if at is None:
        return markdown.rstrip("\n") + "\n\n" + "\n".join(section)
    return "\n".join(lines[:at] + section + lines[at:])


def section_of(markdown, heading):
    """The lines of `heading`'s section of `markdown`, or None."""
    if not markdown:
        return None
    lines = markdown.split("\n")
    if heading not in lines:
        return None
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


# --- report: list ----------------------------------------------------------------

LIST_SYSTEMS = ("pingback-first", "pingback-deep", "pgbench")
LIST_LABELS = {"pingback-first": "pingback, first page", "pingback-deep": "pingback, page 10,000 deep",
               "pgbench": "pgbench (deep page's statement)"}
LIST_TARGETS = {"deep_over_first_cost_max": 1.2, "deep_over_pgbench_min": 0.75, "errors_max": 0}


def list_results(work, meta):
    """The list scenario: medians per system, ratios, targets, statements per request."""
    runs = read_lines(os.path.join(work, "list-runs.jsonl"))
    peaks = {p["system"]: p["vmhwm_kib"] for p in read_lines(os.path.join(work, "list-peaks.jsonl"))}
    check_path = os.path.join(work, "list-check.json")
    check = read_json(check_path) if os.path.exists(check_path) else None
    systems = {}
    for system in LIST_SYSTEMS:
        rs = [r for r in runs if r["system"] == system]
        if not rs:
            continue
        key_statements = {}
        for r in rs:
            for st in r["statements"]:
                key = st.get("queryid") or st["query"]
                entry = key_statements.setdefault(
                    key, {"queryid": st.get("queryid"), "query": st["query"], "calls": 0, "rows": 0, "total_ms": 0.0})
                entry["calls"] += st["calls"]
                entry["rows"] += st["rows"]
                entry["total_ms"] += st.get("total_ms") or 0.0
        # Per request: executions of the page statement (the one joining customers).
        total = sum(r.get("conversation_reads") or r["requests"] for r in rs)
        statements = sorted(key_statements.values(), key=lambda x: -x["calls"])
        for st in statements:
            st["calls_per_request"] = st["calls"] / total if total else None
            st["rows_per_call"] = st["rows"] / st["calls"] if st["calls"] else None
            st["ms_per_call"] = st["total_ms"] / st["calls"] if st["calls"] else None
        systems[system] = {
            "runs": len(rs),
            "requests_per_second": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "first_error_status": next((r.get("first_error_status") for r in rs if r.get("first_error_status")), None),
            "requests": sum(r["requests"] for r in rs),
            "peak_rss_mib": peaks["pingback"] / 1024 if system != "pgbench" and peaks.get("pingback") else None,
            "server_cpu_ms_per_request": median([r["server_cpu_ms_per_request"] for r in rs]),
            "server_core_cpu_ms_per_request": median([r["server_core_cpu_ms_per_request"] for r in rs]),
            "server_core_utilisation": median([r["server_core_utilisation"] for r in rs]),
            "load_core_utilisation": median([r["load_core_utilisation"] for r in rs]),
            "server_core_foreign_share_max": max(
                [r["server_core_foreign_share"] for r in rs if r.get("server_core_foreign_share") is not None],
                default=None),
            "statements_per_request": median([r["statements_per_request"] for r in rs]),
            "db_exec_ms_per_request": median([r["db_exec_ms_per_request"] for r in rs]),
            "bytes_per_request": median([r.get("bytes_per_request") for r in rs]),
            "statements": statements,
            "per_run": [
                {k: r.get(k) for k in ("repeat", "rps", "p50_ms", "p99_ms", "errors", "requests",
                                       "server_cpu_ms_per_request", "server_core_cpu_ms_per_request")}
                for r in rs
            ],
        }
    rps = {k: v["requests_per_second"] for k, v in systems.items()}
    core = {k: v["server_core_cpu_ms_per_request"] for k, v in systems.items()}
    div = lambda a, b: a / b if a and b else None  # noqa: E731
    ratios = {
        # Cost per request at saturation (the server core is the bottleneck): 1 / req/s.
        "deep_over_first_cost": div(rps.get("pingback-first"), rps.get("pingback-deep")),
        "deep_over_first_core_cpu": div(core.get("pingback-deep"), core.get("pingback-first")),
        "deep_over_pgbench_rps": div(rps.get("pingback-deep"), rps.get("pgbench")),
        "first_over_pgbench_rps": div(rps.get("pingback-first"), rps.get("pgbench")),
    }
    errors = sum(v["errors"] for k, v in systems.items())
    met = {
        "deep_over_first_cost": ratios["deep_over_first_cost"] is not None
        and ratios["deep_over_first_cost"] <= LIST_TARGETS["deep_over_first_cost_max"],
        "deep_over_pgbench": ratios["deep_over_pgbench_rps"] is not None
        and ratios["deep_over_pgbench_rps"] >= LIST_TARGETS["deep_over_pgbench_min"],
        "errors": bool(systems) and errors <= LIST_TARGETS["errors_max"],
    }

    def per_tx(system):
        v = systems.get(system)
        if not v:
            return None
        return {x["queryid"] for x in v["statements"] if (x["calls_per_request"] or 0) >= 0.5
                and not x["query"].strip().upper().startswith(("BEGIN", "COMMIT", "START"))}
    deep_ids, pgbench_ids = per_tx("pingback-deep"), per_tx("pgbench")
    return {
        "generated_at": meta["date"],
        "git": meta.get("git"),
        "quick": meta.get("quick"),
        "settings": {k: meta[k] for k in ("duration_s", "repeats", "warmup_s", "skip_s", "connections", "threads",
                                          "pgbench_clients", "load_cpu", "server_cpu", "workers") if k in meta}
        | {"conversations": meta.get("list_conversations"), "messages_per_conversation": meta.get("list_messages"),
           "business_id": meta.get("list_business"), "depth": meta.get("list_depth"),
           "limit": meta.get("list_limit"), "paging_limit": meta.get("list_page")},
        "machine": machine() | {"postgresql": meta.get("postgresql")},
        "systems": systems,
        "ratios": ratios,
        "targets": LIST_TARGETS,
        "targets_met": met,
        "errors": errors,
        "same_statements": (deep_ids == pgbench_ids) if deep_ids is not None and pgbench_ids is not None else None,
        "check": check,
    }


def render_list(lr):
    st, s = lr["settings"], lr["systems"]
    out = []
    w = out.append
    depth, limit = st.get("depth") or 10000, st.get("limit") or 25
    w("## List")
    w("")
    w("<!-- Generated by `make bench` (the list scenario; `BENCH_SCENARIOS=list make bench` redoes only "
      "this section). -->")
    w("")
    if lr.get("quick"):
        w("> **Smoke run (`BENCH_QUICK=1`)**: one short run. These numbers only show that the harness works.")
        w("")
    w(f"`GET /api/v1/conversations?limit={limit}` — the inbox of one business with {st['conversations']:,} "
      f"conversations ({st['messages_per_conversation']} messages each): per request ONE statement "
      "(`crates/persistence/src/inbox_read.rs`), which is one snapshot without a transaction, on pingback's "
      "shared read connections: the page of conversation rows (keyset on `(updated_at, id)`), each row's "
      "customer, latest message and that message's attachments looked up by key, and the business's "
      "`last_event_id`.")
    w("")
    w(f"- **pingback, first page** — `?limit={limit}`.")
    w(f"- **pingback, page {depth:,} deep** — `?limit={limit}&cursor=…`, the cursor after position {depth:,}, "
      f"got before the runs by following `next_cursor` with `limit={st.get('paging_limit')}` "
      f"{depth // (st.get('paging_limit') or 100)} times.")
    w("- **pgbench** — `benches/pgbench/list.sql`: the statement pingback runs (text from `pg_stat_statements`) "
      "with the deep page's bound values, no transaction around it, as pingback sends it; "
      "`-M prepared`, generic plans as pingback's connections. No HTTP, no JSON, no cursor: the database ceiling.")
    w("")
    w(f"- Date: {lr['generated_at']}; commit `{lr.get('git') or 'unknown'}`; {lr['machine'].get('postgresql')}.")
    w(f"- Load: `wrk -c {st['connections']} -t {st['threads']} -d {st['duration_s']}s` pinned to core "
      f"{st['load_cpu']} (`benches/wrk/list.lua`, every non-2xx response an error); pgbench "
      f"`-c {st['pgbench_clients']} -j 1 -M prepared` on the same core; pingback ({st['workers']} actix worker) "
      f"and PostgreSQL on core {st['server_cpu']}. A {st['warmup_s']} s warm-up each, then {st['repeats']} "
      f"interleaved run(s) of {st['duration_s']} s; medians.")
    foreign = [v["server_core_foreign_share_max"] for v in s.values() if v.get("server_core_foreign_share_max") is not None]
    if foreign:
        worst = max(foreign)
        w(f"- Interference: other processes took at most {worst * 100:.1f} % of the server core during the "
          "measured windows" + (" — **this machine was not quiet: treat these numbers with care**." if worst > 0.05
                                 else "."))
    w("")
    w(f"| system | req/s | p50 ms | p99 ms | errors | server CPU ms/req | core {st['server_cpu']} CPU ms/req | "
      f"core {st['server_cpu']} busy | DB exec ms/req | stmts/req |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for system in LIST_SYSTEMS:
        v = s.get(system)
        if not v:
            continue
        util = v["server_core_utilisation"]
        w(f"| {LIST_LABELS[system].replace('10,000', f'{depth:,}')} | {fmt(v['requests_per_second'])} | "
          f"{fmt(v['p50_ms'], 2)} | {fmt(v['p99_ms'], 2)} | {v['errors']} | {fmt(v['server_cpu_ms_per_request'], 3)} | "
          f"{fmt(v['server_core_cpu_ms_per_request'], 3)} | {fmt(util * 100 if util is not None else None, 0, ' %')} | "
          f"{fmt(v['db_exec_ms_per_request'], 3)} | {fmt(v['statements_per_request'], 2)} |")
    w("")
    r, t, met = lr["ratios"], lr["targets"], lr["targets_met"]
    mark = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    w(f"- Deep page cost ÷ first page cost: **{fmt(r['deep_over_first_cost'], 2, '×')}** (first page req/s ÷ "
      f"deep page req/s; target ≤ {t['deep_over_first_cost_max']}: {mark(met['deep_over_first_cost'])}); "
      f"core {st['server_cpu']} CPU per request: {fmt(r['deep_over_first_core_cpu'], 2, '×')}.")
    w(f"- pingback deep page ÷ pgbench: **{fmt(r['deep_over_pgbench_rps'], 2, '×')}** throughput (target ≥ "
      f"{t['deep_over_pgbench_min']}: {mark(met['deep_over_pgbench'])}); first page ÷ pgbench: "
      f"{fmt(r['first_over_pgbench_rps'], 2, '×')}.")
    w(f"- Errors: {lr['errors']} (target {t['errors_max']}: {mark(met['errors'])}).")
    w("- **req/s**: 2xx answers per second (pgbench: committed transactions); **p50 / p99**: per request over "
      f"{st['connections']} connections (pgbench: per transaction over {st['pgbench_clients']} clients); CPU "
      "columns as for reads, over the steady state of each run, per request (executions of the page statement, "
      "`pg_stat_statements`); **DB exec ms/req**: PostgreSQL execution time of the statements per request; "
      "**stmts/req**: statements per request (`BEGIN` and `COMMIT` would count too; there are none).")
    c = lr.get("check")
    if c:
        w(f"- Check before the runs: the first page answered 200 with {c.get('first_items')} items; paging with "
          f"`limit={c.get('page')}` listed {c.get('paged_items'):,} conversations, none twice; the deep page "
          f"answered 200 with {c.get('deep_items')} items"
          + (", the ones PostgreSQL orders at positions "
             f"{c['depth'] + 1:,}–{c['depth'] + c['limit']:,} by `(updated_at DESC, id DESC)`"
             if c.get("deep_matches_sql_order") else ", **not the expected ones**")
          + ".")
        for p in c["problems"][:3]:
            w(f"  - {p}")
    w("")
    w("What each system executed per request, from `pg_stat_statements` (all runs):")
    w("")
    if lr.get("same_statements") is not None:
        w("pingback's statements per deep page and pgbench's per transaction (`BEGIN`/`COMMIT` aside) have " + (
            "the same `queryid`s: PostgreSQL ran the same statements." if lr["same_statements"] else
            "**different `queryid`s**: `benches/pgbench/list.sql` no longer matches what pingback runs "
            "(see `results.json`)."))
        w("")
    for system in LIST_SYSTEMS:
        v = s.get(system)
        if not v:
            continue
        w(f"**{LIST_LABELS[system].replace('10,000', f'{depth:,}')}**")
        w("")
        for q in v["statements"]:
            if (q["calls_per_request"] or 0) < 0.001:
                continue
            w(f"- {q['calls_per_request']:.3f} calls/request, {fmt(q['rows_per_call'], 1)} rows/call, "
              f"{fmt(q['ms_per_call'], 3)} ms/call: `{' '.join(q['query'].split())}`")
        w("")
    w("Reproduce: `BENCH_SCENARIOS=list make bench` (it rewrites only this section and the `list` key of "
      "`results.json`); `BENCH_LIST_CONVERSATIONS` (default 20000), `BENCH_LIST_DEPTH` (default 10000, a "
      "multiple of 100). `BENCH_QUICK`, `BENCH_DURATION`, `BENCH_REPEATS`, `BENCH_WARMUP`, `BENCH_CONNECTIONS`, "
      "`BENCH_PGBENCH_CLIENTS` apply as for reads.")
    w("")
    return out


def list_summary(lr):
    s, r = lr["systems"], lr["ratios"]
    get = lambda system, key: s.get(system, {}).get(key)  # noqa: E731
    return "\n".join([
        "| list | first page req/s | deep page req/s | pgbench tx/s | deep ÷ first cost | deep / pgbench | "
        "deep p50 ms | deep p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| limit 25 | {fmt(get('pingback-first', 'requests_per_second'))} | "
        f"{fmt(get('pingback-deep', 'requests_per_second'))} | {fmt(get('pgbench', 'requests_per_second'))} | "
        f"{fmt(r['deep_over_first_cost'], 2, '×')} | {fmt(r['deep_over_pgbench_rps'], 2, '×')} | "
        f"{fmt(get('pingback-deep', 'p50_ms'), 2)} | {fmt(get('pingback-deep', 'p99_ms'), 2)} | {lr['errors']} |",
    ])


# --- report: webhooks -------------------------------------------------------------

WEBHOOK_TARGETS = {"deliveries_per_second_min": 1000, "lost_max": 0}


def webhook_results(work, meta):
    """The webhook scenario: the run (benches/bench.py webhook-record) and its targets."""
    path = os.path.join(work, "webhook-run.json")
    if not os.path.exists(path):
        return None
    run = read_json(path)
    rate = run.get("deliveries_per_second")
    met = {
        "deliveries_per_second": rate is not None and rate >= WEBHOOK_TARGETS["deliveries_per_second_min"],
        "lost": run["lost"] <= WEBHOOK_TARGETS["lost_max"],
        "in_order": bool(run["in_order"]),
    }
    return {
        "generated_at": meta["date"],
        "git": meta.get("git"),
        "quick": meta.get("quick"),
        "settings": {k: meta[k] for k in ("load_cpu", "server_cpu", "workers") if k in meta}
        | {"events": meta.get("webhook_events"), "business_id": meta.get("webhook_business"),
           "timeout_s": meta.get("webhook_timeout"),
           "pingback_overrides": ["webhooks.allow_http = true", "webhooks.allow_private_networks = true"]},
        "machine": machine() | {"postgresql": meta.get("postgresql")},
        "run": run,
        "targets": WEBHOOK_TARGETS,
        "targets_met": met,
    }


def render_webhooks(wh):
    st, r = wh["settings"], wh["run"]
    met, t = wh["targets_met"], wh["targets"]
    win = r.get("window") or {}
    mark = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    out = []
    w = out.append
    w("## Webhooks")
    w("")
    w("<!-- Generated by `make bench` (the webhook scenario; `BENCH_SCENARIOS=webhooks make bench` redoes only "
      "this section). -->")
    w("")
    w(f"Delivery throughput to one local endpoint: {r['events']:,} events of one business, each POSTed by "
      "`pingback serve` (its delivery loop, one attempt in flight per endpoint, the position stored after each "
      "acknowledged event) to `pingback-webhook-sink` (`benches/baseline/src/webhook_sink.rs`: a hand-written "
      "HTTP/1.1 keep-alive responder that answers `204` at once and records each `webhook-id`).")
    w("")
    w(f"- Date: {wh['generated_at']}; commit `{wh.get('git') or 'unknown'}`; {wh['machine'].get('postgresql')}.")
    w(f"- pingback as shipped (release build, {st.get('workers')} actix worker, `config/default.toml`) except "
      "`PINGBACK__WEBHOOKS__ALLOW_HTTP=true` and `PINGBACK__WEBHOOKS__ALLOW_PRIVATE_NETWORKS=true` (the sink is "
      f"`http://127.0.0.1:…/hook`), with PostgreSQL on core {st['server_cpu']}; the sink, the generator and the "
      f"harness on core {st['load_cpu']}.")
    w(f"- Steps: a business of its own; the sink registered (`POST /api/v1/webhooks`); then `pingback generate "
      f"--conversations {r['events']} --messages 1` writes one `conversation.imported` event per conversation "
      f"({r['events_written']:,} events, ids {r['event_ids'][0]:,}–{r['event_ids'][1]:,}, in "
      f"{r['generation_seconds']:.2f} s); the harness waits until the sink has every event and "
      "`GET /api/v1/webhooks/{id}` shows `delivered_through` = the last event id "
      f"(timeout {st.get('timeout_s')} s).")
    w("")
    w("| events | deliveries/s | target | delivery window | end to end | in order | lost | repeats |")
    w("|---:|---:|---|---:|---:|---|---:|---:|")
    w(f"| {r['events']:,} | **{fmt(r['deliveries_per_second'], 0)}** | ≥ {t['deliveries_per_second_min']:,}: "
      f"{mark(met['deliveries_per_second'])} | {fmt(r['delivery_seconds'], 2, ' s')} | "
      f"{fmt(r['end_to_end_seconds'], 2, ' s')} | {yes(met['in_order'])} | {r['lost']} | {r['repeats']} |")
    w("")
    w("- **deliveries/s**: distinct events the sink received, over its first → last arrival (intervals: "
      "(n − 1) ÷ seconds). **end to end**: from the start of `pingback generate` to the last arrival "
      f"(the first arrived {fmt(r.get('first_delivery_after_start_s'), 2, ' s')} after the start; "
      f"`delivered_through` was seen stored {fmt(r.get('stored_end_to_end_seconds'), 2, ' s')} after it); "
      f"{r['delivered_during_generation']:,} events were delivered while generation was still writing.")
    disorder = "" if r["in_order"] else (f" — **{r.get('order_violations')} violations**, the first "
                                         f"{r.get('first_violation')}, ids outside the range {r.get('ids_outside_range')}")
    w(f"- **in order**: every `webhook-id` the previous one or the next (no gap; a repeat only as an immediate "
      f"resend){disorder}; "
      f"**lost**: events written but never received ({r['distinct']:,} distinct ids of {r['events']:,}); "
      f"**repeats**: requests beyond the distinct ids ({r['immediate_resends']} immediate resends). "
      f"Connections: {r['connections']} opened, at most {r['max_connections_open']} open and "
      f"{r['max_in_flight']} request(s) in flight at once. `delivered_through` "
      + (f"= {r['delivered_through']:,}, the last event." if r["delivered_through_reached"] else
         f"= {r['delivered_through']}, **not the last event** (last_error {r.get('last_error')!r})."))
    if r.get("timed_out"):
        w("- **Timed out** before every event was delivered and stored.")
    w("")
    gap, sink = r.get("sender_gap_ms") or {}, r.get("sink_ms") or {}
    w("Where the time goes (one delivery in flight, so throughput = 1 ÷ the time per delivery):")
    w("")
    if gap and sink:
        per = 1000 / r["deliveries_per_second"] if r.get("deliveries_per_second") else None
        w(f"- Time per delivery {fmt(per, 3, ' ms')}: pingback's part — from the sink's answer to the next request's "
          f"first byte (reading the answer, storing the position, signing, the next page of events every 100) — "
          f"p50 {fmt(gap.get('p50'), 3)} ms, p90 {fmt(gap.get('p90'), 3)} ms, p99 {fmt(gap.get('p99'), 3)} ms, "
          f"mean {fmt(gap.get('mean'), 3)} ms, max {fmt(gap.get('max'), 1)} ms; the sink's part — from the "
          f"request's first byte to its answer — mean {fmt(sink.get('mean'), 3)} ms. Pauses over 10 ms: "
          f"{r.get('stalls_over_10ms')}, {fmt(r.get('stalled_ms'), 0, ' ms')} in all.")
    if win:
        w(f"- CPU over {win['seconds']:.1f} s of the delivery window after generation ({win['deliveries']:,} "
          f"deliveries, {fmt(win['deliveries_per_second'], 0)}/s): pingback {fmt(win['pingback_core_share'] * 100, 0, ' %')} "
          f"of a core ({fmt(win['pingback_cpu_ms_per_delivery'], 3)} ms per delivery), PostgreSQL "
          f"{fmt(win['postgres_core_share'] * 100, 0, ' %')} ({fmt(win['postgres_cpu_ms_per_delivery'], 3)} ms per "
          f"delivery); core {st['server_cpu']} busy {fmt(win['server_core_busy'] * 100, 0, ' %')} (other processes "
          f"{fmt(win.get('others_core_share', 0) * 100, 0, ' %')}); core {st['load_cpu']} busy "
          f"{fmt(win['load_core_busy'] * 100, 0, ' %')}"
          + (f" (the sink {fmt(win['sink_core_share'] * 100, 0, ' %')}, the harness "
             f"{fmt(win['harness_core_share'] * 100, 0, ' %')}, other processes "
             f"{fmt(win['load_others_core_share'] * 100, 0, ' %')})" if win.get("sink_core_share") is not None else "")
          + ".")
    if r.get("per_second"):
        w("- Deliveries in each second from the first arrival: " + ", ".join(f"{n:,}" for n in r["per_second"]) + ".")
    if r.get("maintenance"):
        w("- PostgreSQL's autovacuum meanwhile (on core " + str(st["server_cpu"]) + "): " + "; ".join(
            f"{m['kind']} of `{m['table']}` {m['after_start_s']:.1f} s after the start of generation"
            + (f" ({m['after_first_delivery_s']:+.1f} s from the first delivery)"
               if m.get("after_first_delivery_s") is not None else "")
            for m in r["maintenance"]) + ".")
    if win and win.get("others_core_share") is not None:
        worst = max(win["others_core_share"], win.get("load_others_core_share") or 0.0)
        w(f"- Interference: other processes took {win['others_core_share'] * 100:.1f} % of the server core and "
          f"{fmt((win.get('load_others_core_share') or 0) * 100, 1, ' %')} of the load core during the delivery window"
          + (" — **this machine was not quiet: treat these numbers with care**." if worst > 0.05 else "."))
    whole = r.get("whole")
    if whole:
        w(f"- pingback's CPU time from the start of generation until `delivered_through` was stored: "
          f"{whole['pingback_cpu_s']:.2f} s ({whole['pingback_cpu_ms_per_delivery']:.3f} ms per event); "
          f"PostgreSQL's: {whole['postgres_cpu_s']:.2f} s (the generator's writes included).")
    if r.get("statements_per_delivery") is not None:
        w(f"- PostgreSQL ran {fmt(r['statements_per_delivery'], 2)} statements per delivery after generation "
          f"({fmt(r['db_exec_ms_per_delivery'], 3)} ms execution time per delivery), from `pg_stat_statements`:")
        w("")
        for q in r["statements"]:
            if (q["calls_per_delivery"] or 0) < 0.001:
                continue
            w(f"  - {q['calls_per_delivery']:.3f} calls/delivery, {fmt(q['rows_per_call'], 1)} rows/call, "
              f"{fmt(q['ms_per_call'], 3)} ms/call: `{shorten(' '.join(q['query'].split()), 400)}`")
    w("")
    w("Reproduce: `BENCH_SCENARIOS=webhooks make bench` (it rewrites only this section and the `webhooks` key of "
      "`results.json`); `BENCH_WEBHOOK_EVENTS` (default 10000), `BENCH_WEBHOOK_TIMEOUT` (s, default 300). The "
      "sink's summary, its arrivals (one line per request) and pingback's log are in `bench-results/work/`. "
      "The run fails if an event is lost or arrives out of order.")
    w("")
    return out


def shorten(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def webhook_summary(wh):
    r = wh["run"]
    return "\n".join([
        "| webhooks | events | deliveries/s | end to end s | in order | lost | repeats |",
        "|---|---:|---:|---:|---|---:|---:|",
        f"| one endpoint | {r['events']:,} | {fmt(r['deliveries_per_second'])} | {fmt(r['end_to_end_seconds'], 2)} | "
        f"{r['in_order']} | {r['lost']} | {r['repeats']} |",
    ])


# --- report: citus ----------------------------------------------------------------

CITUS_SYSTEMS = ("single-node", "citus")
CITUS_KINDS = {"read": "GET /api/v1/conversations/{id}", "write": "POST /api/v1/conversations/{id}/messages"}


def citus_results(work, meta):
    """The Citus scenario: per request kind, medians per database and the Citus ÷
    single-node ratios."""
    out = {
        "generated_at": meta["date"],
        "git": meta.get("git"),
        "quick": meta.get("quick"),
        "settings": {k: meta[k] for k in ("load_cpu", "server_cpu", "workers", "pingback_pool", "connections",
                                          "threads", "duration_s", "repeats", "warmup_s") if k in meta}
        | {"citus_version": meta.get("citus_version"), "shard_count": meta.get("citus_shard_count"),
           "workers_nodes": 2, "conversations": meta.get("citus_conversations"),
           "messages": meta.get("citus_messages"), "write_conversations": meta.get("citus_write_conversations"),
           "write_messages_at_start": meta.get("citus_write_messages"),
           "read_business": meta.get("citus_read_business"), "write_business": meta.get("citus_write_business")},
        "machine": machine() | {"postgresql": meta.get("postgresql")},
    }
    peaks = {p["system"]: p["vmhwm_kib"] for p in read_lines(os.path.join(work, "citus-peaks.jsonl"))}
    postmasters_path = os.path.join(work, "citus-postmasters.json")
    postmasters = read_json(postmasters_path) if os.path.exists(postmasters_path) else {}
    found = False
    for kind in CITUS_KINDS:
        runs = read_lines(os.path.join(work, f"citus-{kind}-runs.jsonl"))
        systems = {}
        for system in CITUS_SYSTEMS:
            rs = [r for r in runs if r["system"] == system]
            if not rs:
                continue
            found = True
            systems[system] = {
                "runs": len(rs),
                "requests_per_second": median([r["rps"] for r in rs]),
                "p50_ms": median([r["p50_ms"] for r in rs]),
                "p99_ms": median([r["p99_ms"] for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "requests": sum(r["requests"] for r in rs),
                "server_core_cpu_ms_per_request": median([r["server_core_cpu_ms_per_request"] for r in rs]),
                "server_cpu_ms_per_request": median([r["server_cpu_ms_per_request"] for r in rs]),
                "server_core_utilisation": median([r["server_core_utilisation"] for r in rs]),
                "peak_rss_mib": peaks[system] / 1024 if peaks.get(system) else None,
                "cpu_ms_per_request": citus_breakdown(work, kind, system, rs, postmasters, meta),
                "per_run": [{k: r[k] for k in ("repeat", "rps", "p50_ms", "p99_ms", "errors", "requests")} for r in rs],
            }
        single, cluster = systems.get("single-node", {}), systems.get("citus", {})

        def over(key):
            a, b = cluster.get(key), single.get(key)
            return a / b if a is not None and b else None

        out[kind] = {
            "request": CITUS_KINDS[kind],
            "systems": systems,
            "ratios": {"citus_over_single_rps": over("requests_per_second"), "citus_over_single_p50": over("p50_ms"),
                       "citus_over_single_p99": over("p99_ms"),
                       "citus_over_single_core_cpu": over("server_core_cpu_ms_per_request")},
        }
    if not found:
        return None
    checks = read_lines(os.path.join(work, "citus-check.jsonl"))
    out["check"] = checks[-1] if checks else None
    pgbench_path = os.path.join(work, "citus-pgbench.jsonl")
    if os.path.exists(pgbench_path):
        runs = read_lines(pgbench_path)
        tps = {system: median([r["tps"] for r in runs if r["system"] == system and r["tps"] is not None])
               for system in ("pgbench", "pgbench-events")}
        out["event_log"] = tps | {
            "per_repeat": {system: [r["tps"] for r in runs if r["system"] == system] for system in tps},
            "cost": (1 - tps["pgbench-events"] / tps["pgbench"]) if tps["pgbench"] and tps["pgbench-events"] else None,
        }
    explain_path = os.path.join(work, "citus-explain.txt")
    if os.path.exists(explain_path):
        with open(explain_path) as f:
            explain = f.read()
        task = re.search(r"Task Count: (\d+)", explain)
        out["read_plan_task_count"] = int(task.group(1)) if task else None
    return out


def citus_breakdown(work, kind, system, runs, postmasters, meta):
    """Median CPU ms per request over the runs: pingback, each PostgreSQL instance, and
    other processes on the server core (interference), from the runs' snapshots."""
    ms_per_tick = 1000 / CLK_TCK
    core = f"cpu{meta.get('server_cpu')}"
    parts = {}
    for r in runs:
        base = os.path.join(work, f"citus-{kind}-{system}-{r['repeat']}")
        try:
            before, after = read_json(base + ".before"), read_json(base + ".after")
        except OSError:
            continue
        if not r["requests"] or "postgres_ticks_by" not in before:
            continue
        per = lambda ticks: ticks * ms_per_tick / r["requests"]  # noqa: E731
        ours = after["process_ticks"] - before["process_ticks"]
        parts.setdefault("pingback", []).append(per(ours))
        for name, pid in postmasters.items():
            ticks = after["postgres_ticks_by"].get(str(pid), 0) - before["postgres_ticks_by"].get(str(pid), 0)
            parts.setdefault(name, []).append(per(ticks))
            ours += ticks
        core_ticks = after["cores"][core] - before["cores"][core]
        parts.setdefault("other processes", []).append(per(max(0, core_ticks - ours)))
        parts.setdefault("server_core_foreign_share", []).append(
            max(0.0, (core_ticks - ours) / core_ticks) if core_ticks else None)
    return {name: median(values) for name, values in parts.items()} or None


def render_citus(ct):
    st = ct["settings"]
    out = []
    w = out.append
    w("## Citus")
    w("")
    w("<!-- Generated by `make bench` (the Citus scenario; `BENCH_SCENARIOS=citus make bench` redoes only "
      "this section). -->")
    w("")
    w("The read and one write side by side on single-node PostgreSQL (the bench's own throw-away cluster) and "
      f"on a Citus cluster (Citus {st.get('citus_version') or '?'}, a coordinator and {st.get('workers_nodes')} "
      f"workers on this machine, {st.get('shard_count') or '?'} shards per table, `scripts/citus.sh`), on the "
      "same data, in the same run.")
    w("")
    w("**On one 2-core machine the cluster is expected to be slower**: every request goes from "
      "pingback to the coordinator, which plans it, routes it to the one worker holding the business's shard "
      "and relays the answer (one more hop and a second planning), and three PostgreSQL instances share the "
      "core one instance has in the single-node runs. A cluster pays off when the workers are machines of "
      "their own; the point here is that the routing is single-shard and that its cost is known.")
    w("")
    w(f"- Date: {ct['generated_at']}; commit `{ct.get('git') or 'unknown'}`; {ct['machine'].get('postgresql')}"
      f"{' (quick run)' if ct.get('quick') else ''}.")
    w(f"- Both databases made and migrated as `scripts/test-citus.sh` and `scripts/citus-measure.sh` do (the "
      "database on every node, `CREATE EXTENSION citus`, the workers added; `pingback migrate` distributes "
      "every per-business table by `business_id`, co-located); then `pingback generate` with the same "
      f"business, counts and seed into both (the same ids): {st.get('conversations')} conversations of "
      f"{st.get('messages')} messages for the read, and for the write {st.get('write_conversations')} open, "
      f"assigned conversations (of {3 * (st.get('write_conversations') or 0)} generated, "
      f"{st.get('write_messages_at_start')} messages each at the start) of another business.")
    w(f"- pingback as shipped (release build, `config/default.toml`; only the database URL, the bind address "
      f"and the JWT secret set; {st.get('workers')} actix worker as in the other scenarios), one per database; "
      f"it and every PostgreSQL instance (the single node; the coordinator and both workers) pinned to core "
      f"{st.get('server_cpu')}; wrk (`-c {st.get('connections')} -t {st.get('threads')}`) on core "
      f"{st.get('load_cpu')}. Runs of {st.get('duration_s')} s after {st.get('warmup_s')} s of warm-up each, "
      f"interleaved (read single-node, read Citus, write single-node, write Citus) × {st.get('repeats')}; "
      "medians.")
    w("- Requests: the read with `benches/wrk/conversations.lua` (a random conversation of the business), the "
      "write with `benches/wrk/post_message.lua` (a random conversation and body, no `Idempotency-Key`), as "
      "in the reads and writes scenarios.")
    w("")
    w("| request | single-node req/s | Citus req/s | Citus ÷ single-node | p50 single-node / Citus | "
      "p99 single-node / Citus | server core CPU/request single-node / Citus | errors |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in CITUS_KINDS:
        part = ct.get(kind)
        if not part:
            continue
        s, r = part["systems"], part["ratios"]
        get = lambda system, key: s.get(system, {}).get(key)  # noqa: E731
        errors = sum(v["errors"] for v in s.values())
        w(f"| `{part['request']}` | {fmt(get('single-node', 'requests_per_second'), 0)} | "
          f"{fmt(get('citus', 'requests_per_second'), 0)} | **{fmt(r['citus_over_single_rps'], 2, '×')}** | "
          f"{fmt(get('single-node', 'p50_ms'), 2)} / {fmt(get('citus', 'p50_ms'), 2)} ms "
          f"({fmt(r['citus_over_single_p50'], 2, '×')}) | "
          f"{fmt(get('single-node', 'p99_ms'), 2)} / {fmt(get('citus', 'p99_ms'), 2)} ms "
          f"({fmt(r['citus_over_single_p99'], 2, '×')}) | "
          f"{fmt(get('single-node', 'server_core_cpu_ms_per_request'), 3)} / "
          f"{fmt(get('citus', 'server_core_cpu_ms_per_request'), 3)} ms | {errors} |")
    w("")
    ev = ct.get("event_log")
    if ev:
        w(f"- **The event log's cost on the cluster**, under contention (one business, {st.get('repeats')} × "
          f"{st.get('duration_s')} s interleaved, pgbench `-c` as in the write scenario, on the coordinator): the "
          "write scenario's transaction without the event statement (`benches/pgbench/post_message.sql`) "
          f"{fmt(ev['pgbench'], 1)} tx/s; with it, while one more client numbers the staged events "
          f"(`post_message_events_citus.sql` + `number_events_citus.sql`: the event's `INSERT` and the numbering's "
          f"statements as pingback issues them on Citus), {fmt(ev['pgbench-events'], 1)} tx/s: "
          f"**{fmt(ev['cost'] * 100 if ev['cost'] is not None else None, 1, ' %')}** (per repeat, without / with: "
          f"{', '.join(fmt(v, 0) for v in ev['per_repeat']['pgbench'])} / "
          f"{', '.join(fmt(v, 0) for v in ev['per_repeat']['pgbench-events'])}). Writers stage their event on "
          "their own shard; only the numbering takes the business's counter row, one at a time.")
    w("- **Citus ÷ single-node**: the median req/s on the cluster over the median on the single node (below 1: "
      "slower). **server core CPU/request**: the busy time of the server core (pingback and every PostgreSQL "
      "instance on it) over each whole run ÷ the requests completed; the core is saturated in both, so the "
      "cost per request is what differs. Errors: non-2xx answers and socket errors (must be 0).")
    rows = []
    for kind in CITUS_KINDS:
        for system in CITUS_SYSTEMS:
            v = (ct.get(kind) or {}).get("systems", {}).get(system) or {}
            cpu = v.get("cpu_ms_per_request")
            if cpu:
                databases = ("single-node",) if system == "single-node" else ("coordinator", "worker1", "worker2")
                names = [n for n in ("pingback", *databases, "other processes") if cpu.get(n) is not None]
                rows.append(f"{kind} on {system}: " + ", ".join(f"{n} {cpu[n]:.3f}" for n in names))
    if rows:
        w("- Where the server core's time goes, CPU ms per request (medians; each PostgreSQL instance is its "
          "postmaster and its backends; `other processes`: the rest of that core's busy time — other work on this "
          "machine, and the kernel's interrupt work such as the loopback traffic between the nodes): "
          + "; ".join(rows) + ".")
        foreign = [((ct.get(k) or {}).get("systems", {}).get(s) or {}).get("cpu_ms_per_request") or {}
                   for k in CITUS_KINDS for s in CITUS_SYSTEMS]
        worst = max([f.get("server_core_foreign_share") or 0.0 for f in foreign], default=0.0)
        w(f"- Interference: other processes took up to {worst * 100:.1f} % of the server core in a run (median "
          "of the repeats)" + (" — **this machine was not quiet: the absolute figures are low; the runs are "
                               "interleaved, so the ratios are the figures to read**." if worst > 0.05 else "."))
    check = ct.get("check")
    if check:
        same = "the same JSON" if check.get("identical_json") else "**different JSON**"
        w(f"- Before the runs: both pingbacks answered {check.get('ids_checked')} conversations with "
          f"{same} ({fmt(check.get('body_bytes'))} bytes each); both accepted a message on each write "
          "conversation and replayed an idempotent retry.")
    if ct.get("read_plan_task_count") is not None:
        w(f"- The read's messages statement as the coordinator plans it: `Task Count: "
          f"{ct['read_plan_task_count']}` (a router plan to one shard; `tests/citus.rs` checks every hot-path "
          "statement — the read, the revision check, each write, the list, the event feed — the same way).")
    rows = []
    for kind in CITUS_KINDS:
        for system in CITUS_SYSTEMS:
            v = (ct.get(kind) or {}).get("systems", {}).get(system)
            if v:
                rows.append(f"{kind} {system}: " + ", ".join(f"{x['rps']:,.0f}" for x in v["per_run"]))
    if rows:
        w("- Per run, req/s: " + "; ".join(rows) + ".")
    w("")
    w("Reproduce: `BENCH_SCENARIOS=citus make bench` (not in the default list: it needs Citus, which "
      "`scripts/citus.sh` builds once into `target/citus` from the vendored source, or "
      "`PINGBACK_CITUS_PREINSTALLED=1`; it rewrites only this section and the `citus` key of `results.json`); "
      "`BENCH_CITUS_CONVERSATIONS` (default 100), `BENCH_CITUS_MESSAGES` (default 100), `BENCH_DURATION`, "
      "`BENCH_REPEATS`. wrk's output, both pingbacks' logs and the nodes' logs are in `bench-results/work/`.")
    w("")
    return out


def citus_summary(ct):
    lines = ["| citus | single-node req/s | Citus req/s | Citus ÷ single-node | p99 ms single / Citus | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind in CITUS_KINDS:
        part = ct.get(kind)
        if not part:
            continue
        s, r = part["systems"], part["ratios"]
        get = lambda system, key: s.get(system, {}).get(key)  # noqa: E731
        lines.append(f"| {kind} | {fmt(get('single-node', 'requests_per_second'))} | "
                     f"{fmt(get('citus', 'requests_per_second'))} | {fmt(r['citus_over_single_rps'], 2, '×')} | "
                     f"{fmt(get('single-node', 'p99_ms'), 2)} / {fmt(get('citus', 'p99_ms'), 2)} | "
                     f"{sum(v['errors'] for v in s.values())} |")
    return "\n".join(lines)


# --- report: event streams --------------------------------------------------------

STREAM_TARGETS = {"fan_out_max_ms": 1000, "rss_mib_max": 64, "errors_max": 0}


def stream_results(work, meta):
    """The event-stream scenario: the run (stream-record) and the contention table."""
    path = os.path.join(work, "stream-run.json")
    if not os.path.exists(path):
        return None
    run = read_json(path)
    fo = run["fan_out_ms"]
    met = {
        "fan_out": fo["max"] is not None and fo["max"] <= STREAM_TARGETS["fan_out_max_ms"]
        and run["events_timed"] == run["posted"],
        "rss": run["rss_peak_mib"] <= STREAM_TARGETS["rss_mib_max"],
        "errors": run["errors"] <= STREAM_TARGETS["errors_max"],
    }
    contention = None
    runs = read_lines(os.path.join(work, "contention-runs.jsonl"))
    if runs:
        systems = {}
        for which in ("one", "spread"):
            rs = [r for r in runs if r["system"] == which]
            if rs:
                systems[which] = {
                    "runs": len(rs),
                    "requests_per_second": median([r["rps"] for r in rs]),
                    "p50_ms": median([r["p50_ms"] for r in rs]),
                    "p99_ms": median([r["p99_ms"] for r in rs]),
                    "errors": sum(r["errors"] for r in rs),
                    "server_core_cpu_ms_per_request": median([r["server_core_cpu_ms_per_request"] for r in rs]),
                    "per_run": [r["rps"] for r in rs],
                }
        one, spread = systems.get("one", {}), systems.get("spread", {})
        contention = {
            "businesses": meta.get("contention_businesses"),
            "conversations": meta.get("contention_conversations"),
            "systems": systems,
            "one_over_spread_rps": one["requests_per_second"] / spread["requests_per_second"]
            if one.get("requests_per_second") and spread.get("requests_per_second") else None,
        }
    return {
        "generated_at": meta["date"],
        "git": meta.get("git"),
        "quick": meta.get("quick"),
        "settings": {k: meta[k] for k in ("load_cpu", "server_cpu", "workers", "connections", "threads",
                                          "duration_s", "repeats", "warmup_s") if k in meta}
        | {"streams": meta.get("streams"), "posts": meta.get("stream_posts"), "rate": meta.get("stream_rate"),
           "hold_s": meta.get("stream_hold"), "business_id": meta.get("stream_business")},
        "machine": machine() | {"postgresql": meta.get("postgresql")},
        "run": run,
        "targets": STREAM_TARGETS,
        "targets_met": met,
        "contention": contention,
    }


def render_streams(sr):
    st, r, met, t = sr["settings"], sr["run"], sr["targets_met"], sr["targets"]
    fo, first, post = r["fan_out_ms"], r["first_stream_ms"], r["post_ms"]
    mark = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    out = []
    w = out.append
    w("## Event streams")
    w("")
    w("<!-- Generated by `make bench` (the streams scenario; `BENCH_SCENARIOS=streams make bench` redoes only "
      "this section). -->")
    w("")
    w(f"{r['streams']:,} Server-Sent-Event streams (`GET /api/v1/events/stream`, the token in `Authorization`, "
      "`Accept: text/event-stream`) open on one business, held by `pingback-stream-client` "
      "(`benches/baseline/src/stream_client.rs`: hand-written HTTP/1.1 on tokio, one thread; it decodes the "
      "chunked bodies and notes when each stream receives each `id:`); then it posts "
      f"{r['posts']} messages, {fmt(r['rate'], 0)} a second whatever their answers take (`POST /api/v1/conversations/{{id}}/"
      "messages`), and times each one's `message.created` event (found by the message id in its `data:`) from the "
      "POST's answer to the last stream receiving it.")
    w("")
    w(f"- Date: {sr['generated_at']}; commit `{sr.get('git') or 'unknown'}`; {sr['machine'].get('postgresql')}"
      f"{' (quick run)' if sr.get('quick') else ''}.")
    w(f"- pingback as shipped (release build, `config/default.toml`: `events.max_streams = 1024`; "
      f"{st.get('workers')} actix worker as in the other scenarios) with PostgreSQL on core {st.get('server_cpu')}; "
      f"the client on core {st.get('load_cpu')}. The streams start after the business's last event "
      f"(`Last-Event-ID`); opening them took {r['open_seconds']:.2f} s; the client then holds them "
      f"{fmt(st.get('hold_s'))} s idle before posting.")
    w("")
    w("| streams | posts | fan-out p50 | p99 | max | target (every event on every stream ≤ 1 s after the POST's "
      "answer) | RSS idle | RSS, streams open | peak RSS | target ≤ 64 MiB | errors |")
    w("|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
    w(f"| {r['opened']:,} of {r['streams']:,} | {r['posted']} of {r['posts']} | {fmt(fo['p50'], 1, ' ms')} | "
      f"**{fmt(fo['p99'], 1, ' ms')}** | {fmt(fo['max'], 1, ' ms')} | {mark(met['fan_out'])} | "
      f"{fmt(r['rss_idle_mib'], 1, ' MiB')} | {fmt(r['rss_open_mib'], 1, ' MiB')} | "
      f"**{fmt(r['rss_peak_mib'], 1, ' MiB')}** | {mark(met['rss'])} | {r['errors']} |")
    w("")
    w(f"- **fan-out**: for each post, from the moment its answer was read to the moment the last of the "
      f"{r['opened']:,} streams received its event (one thread reads all streams, so this includes the client "
      f"working through the {r['opened']:,} copies); {r['events_timed']} of {r['posted']} events timed, "
      f"{fo['over_1s']} over 1 s. The first stream had it {fmt(first['p50'], 1, ' ms')} after the answer (p50; "
      f"p99 {fmt(first['p99'], 1, ' ms')}; negative: before the answer arrived). The POSTs themselves took "
      f"p50 {fmt(post['p50'], 1, ' ms')}, p99 {fmt(post['p99'], 1, ' ms')} (the {r['posted']} posts took "
      f"{r['posting_seconds']:.1f} s: "
      f"{r['posted'] / r['posting_seconds'] if r['posting_seconds'] else 0:.1f} a second).")
    w(f"- **errors**: streams refused ({r['open_errors']}), streams ended or dropped before the end ({r['dropped']}), "
      f"POSTs not answered 201 ({r['post_errors']}), events some stream never received "
      f"({r['events_missing_on_some_stream']})"
      + (f"; first refusal: `{shorten(str(r.get('first_open_error')), 200)}`" if r.get("first_open_error") else "")
      + (f"; first drop: `{shorten(str(r.get('first_drop')), 200)}`" if r.get("first_drop") else "")
      + (f"; first POST error: `{shorten(str(r.get('first_post_error')), 200)}`" if r.get("first_post_error") else "")
      + ".")
    p, o = r["posting"], r["opening"]
    w(f"- **RSS**: pingback's `VmRSS` before the streams (after one message to each conversation posted to), "
      f"halfway through the idle hold with every stream open, and its `VmHWM` at the end. Opening the streams "
      f"cost pingback {o['pingback_cpu_s']:.2f} s of CPU and PostgreSQL {o['postgres_cpu_s']:.2f} s (each stream "
      f"reads the log once when it opens). While posting: pingback {fmt(p['pingback_core_share'] * 100, 0, ' %')} "
      f"of a core ({fmt(p['pingback_cpu_ms_per_event'], 1)} ms per event, i.e. per {r['opened']:,} deliveries), "
      f"PostgreSQL {fmt(p['postgres_core_share'] * 100, 0, ' %')} ({fmt(p['postgres_cpu_ms_per_event'], 1)} ms per "
      "event: the streams a commit wakes wait 25 ms, then share one read of the log and its frames, "
      "`crates/http/src/events.rs`).")
    c = sr.get("contention")
    if c:
        s = c["systems"]
        get = lambda which, key: s.get(which, {}).get(key)  # noqa: E731
        w("")
        w("### The event counter under contention")
        w("")
        w("A write stages its events; after its commit the business's pending events are numbered in a short "
          "transaction of their own that takes the business's counter row (`crates/persistence/src/sequencer.rs`): "
          "numberings of one business run one at a time and are shared by the writers waiting for them, writers "
          "never wait for each other's commits. The write scenario's load (`benches/wrk/post_message.lua`, "
          f"`wrk -c {st.get('connections')} -t {st.get('threads')}`, no `Idempotency-Key`) against "
          f"{c.get('conversations')} conversations of **one business**, and against one conversation in each of "
          f"**{c.get('businesses')} businesses** (each with its own token), interleaved, "
          f"{st.get('repeats')} × {st.get('duration_s')} s, medians; pingback as shipped on a fresh process.")
        w("")
        w("| writes to | req/s | p50 ms | p99 ms | core CPU ms/req | errors |")
        w("|---|---:|---:|---:|---:|---:|")
        for which, label in (("one", f"1 business ({c.get('conversations')} conversations)"),
                             ("spread", f"{c.get('businesses')} businesses (1 conversation each)")):
            if which in s:
                w(f"| {label} | {fmt(get(which, 'requests_per_second'), 0)} | {fmt(get(which, 'p50_ms'), 2)} | "
                  f"{fmt(get(which, 'p99_ms'), 2)} | {fmt(get(which, 'server_core_cpu_ms_per_request'), 3)} | "
                  f"{get(which, 'errors')} |")
        w("")
        w(f"- One business ÷ spread: **{fmt(c.get('one_over_spread_rps'), 2, '×')}** the throughput. Per run, "
          "req/s: " + "; ".join(f"{which} " + ", ".join(f"{v:,.0f}" for v in s[which]["per_run"])
                                for which in ("one", "spread") if which in s) + ".")
    w("")
    w("Reproduce: `BENCH_SCENARIOS=streams make bench` (it rewrites only this section and the `streams` key of "
      "`results.json`); `BENCH_STREAMS` (default 1000), `BENCH_STREAM_POSTS` (100), `BENCH_STREAM_RATE` (10 per s), "
      "`BENCH_STREAM_CONTENTION=0` skips the contention table, `BENCH_CONTENTION_BUSINESSES` (100). The client's "
      "result (one JSON line, per post) is in `bench-results/work/stream-client.out`.")
    w("")
    return out


def stream_summary(sr):
    r = sr["run"]
    fo = r["fan_out_ms"]
    lines = ["| streams | open | posts | fan-out p50 ms | p99 ms | max ms | RSS idle / open / peak MiB | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| SSE | {r['opened']:,} | {r['posted']} | {fmt(fo['p50'], 1)} | {fmt(fo['p99'], 1)} | "
             f"{fmt(fo['max'], 1)} | {r['rss_idle_mib']:.1f} / {r['rss_open_mib']:.1f} / {r['rss_peak_mib']:.1f} | "
             f"{r['errors']} |"]
    c = sr.get("contention")
    if c:
        for which in ("one", "spread"):
            v = c["systems"].get(which)
            if v:
                lines.append(f"| writes, {which} | – | – | {fmt(v['p50_ms'], 2)} | {fmt(v['p99_ms'], 2)} | – | "
                             f"{fmt(v['requests_per_second'], 0)} req/s | {v['errors']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("snapshot")
    p.add_argument("pid", nargs="?", type=int)
    p.add_argument("--postmaster", type=int, action="append",
                   help="also PostgreSQL's CPU (the postmaster and its children; repeat for several instances)")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("window")
    p.add_argument("--out", required=True)
    p.add_argument("--pid", type=int)
    p.add_argument("--postmaster", type=int)
    p.add_argument("--psql", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--skip", type=float, required=True)
    p.set_defaults(func=cmd_window)

    p = sub.add_parser("settle")
    p.add_argument("--postmaster", type=int, action="append", required=True,
                   help="PostgreSQL's postmaster (repeat: the Citus nodes too)")
    p.add_argument("--pid", type=int, action="append")
    p.add_argument("--max", type=float, default=60)
    p.set_defaults(func=cmd_settle)

    p = sub.add_parser("server-info")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--size", required=True)
    p.add_argument("--metrics", help="pingback's /metrics URL")
    p.set_defaults(func=cmd_server_info)

    p = sub.add_parser("peak")
    p.add_argument("--out", required=True)
    p.add_argument("--system", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.set_defaults(func=cmd_peak)

    p = sub.add_parser("check")
    p.add_argument("--out", required=True)
    p.add_argument("--pingback", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--handwritten", help="also compare the hand-written baseline's answers")
    p.add_argument("--warn", help="also compare pingback's with the log level at warn")
    p.add_argument("--ids", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--count", type=int, default=3)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("write-bodies")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--bodies", required=True)
    p.add_argument("--csv", required=True)
    p.set_defaults(func=cmd_write_bodies)

    p = sub.add_parser("write-check")
    p.add_argument("--out", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--bodies", required=True)
    p.set_defaults(func=cmd_write_check)

    p = sub.add_parser("list-prepare")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--limit", type=int, default=25)
    p.add_argument("--page", type=int, default=100)
    p.add_argument("--depth", type=int, default=10000)
    p.add_argument("--business", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--psql", required=True)
    p.add_argument("--db", required=True)
    p.set_defaults(func=cmd_list_prepare)

    p = sub.add_parser("webhook-register")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--sink", required=True, help="the endpoint URL to register")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_webhook_register)

    p = sub.add_parser("webhook-wait")
    p.add_argument("--sink-out", required=True, help="the sink's stdout")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--webhook", required=True, help="the endpoint's id")
    p.add_argument("--last", type=int, required=True, help="the last event id")
    p.add_argument("--started", type=float, required=True, help="Unix time generation started")
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--pid", type=int, required=True, help="pingback")
    p.add_argument("--sink-pid", type=int, required=True)
    p.add_argument("--postmaster", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_webhook_wait)

    p = sub.add_parser("webhook-record")
    p.add_argument("--sink-out", required=True)
    p.add_argument("--arrivals", required=True)
    p.add_argument("--wait", required=True)
    p.add_argument("--before", required=True)
    p.add_argument("--pgss-gen", required=True, help="pg_stat_statements at the end of generation")
    p.add_argument("--pgss", required=True, help="pg_stat_statements at the end")
    p.add_argument("--autovacuum", help="pg_stat_user_tables' last autovacuum/autoanalyze times (JSON)")
    p.add_argument("--events-check", required=True, help="count|min|max of the events written")
    p.add_argument("--base", type=int, required=True, help="the business's last event id before generation")
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--gen-start", type=float, required=True)
    p.add_argument("--gen-end", type=float, required=True)
    p.add_argument("--server-cpu", type=int, required=True)
    p.add_argument("--load-cpu", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_webhook_record)

    p = sub.add_parser("rss")
    p.add_argument("pid", type=int)
    p.set_defaults(func=cmd_rss)

    p = sub.add_parser("stream-record")
    for name in ("--client", "--idle", "--open", "--end", "--before", "--opened", "--after", "--out"):
        p.add_argument(name, required=True)
    p.set_defaults(func=cmd_stream_record)

    p = sub.add_parser("pgbench-script")
    p.add_argument("--sql", required=True)
    p.set_defaults(func=cmd_pgbench_script)

    p = sub.add_parser("record")
    p.add_argument("--out", required=True)
    p.add_argument("--system", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--repeat", type=int, required=True)
    p.add_argument("--kind", choices=("wrk", "pgbench"), required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--pgss", required=True)
    p.add_argument("--pgbench-log-prefix")
    p.add_argument("--window")
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--server-cpu", type=int, required=True)
    p.add_argument("--load-cpu", type=int, required=True)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--doc")
    p.add_argument("--reads", type=int, choices=(0, 1), default=1, help="the read scenario ran")
    p.add_argument("--writes", type=int, choices=(0, 1), default=0, help="the write scenario ran")
    p.add_argument("--list", type=int, choices=(0, 1), default=0, help="the list scenario ran")
    p.add_argument("--webhooks", type=int, choices=(0, 1), default=0, help="the webhook scenario ran")
    p.add_argument("--citus", type=int, choices=(0, 1), default=0, help="the Citus scenario ran")
    p.add_argument("--streams", type=int, choices=(0, 1), default=0, help="the event-stream scenario ran")
    p.set_defaults(func=cmd_report)

    args = parser.parse_args()
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
