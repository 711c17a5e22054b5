#!/usr/bin/env python3
"""The client side of scripts/soak: each subcommand drives a running gateway and prints one
or more result lines `PASS|FAIL <check>: <figure>`; the exit status is 1 if any FAILed.
Standard library only (asyncio and raw HTTP/1.1), loopback only, every wait bounded.

    driver.py CHECK --port P [--pid GATEWAY_PID] [options]

See scripts/soak for the checks and docs/testing.md ("Soak and abuse suite") for what they
mean.
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time

HOST = "127.0.0.1"
# The address the "fresh client" of the connection checks connects from: another loopback
# address than the abuser's, as a real client elsewhere would (the gateway's per-source
# limits rightly refuse more from the abuser's own address).
FRESH_SOURCE = "127.0.0.2"
SOURCE = None  # set while a fresh client runs
VERSION = "2025-11-25"
results = []


def report(ok, name, figure):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}: {figure}", flush=True)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---- minimal HTTP/1.1 ---------------------------------------------------------------------

class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def messages(self):
        """JSON-RPC messages in a JSON or SSE body."""
        ctype = self.headers.get("content-type", "")
        text = self.body.decode("utf-8", "replace")
        if "text/event-stream" in ctype:
            out, data = [], []
            for line in text.split("\n"):
                line = line.rstrip("\r")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line == "" and data:
                    try:
                        out.append(json.loads("\n".join(data)))
                    except ValueError:
                        pass
                    data = []
            return out
        try:
            return [json.loads(text)] if text.strip() else []
        except ValueError:
            return []


def dechunk(body):
    out, rest = bytearray(), body
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return bytes(out)


async def http(port, method, path, body=b"", headers=None, timeout=30.0, raw_headers=None):
    """One request on its own connection (Connection: close); reads to EOF."""
    local = (SOURCE, 0) if SOURCE else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, port, local_addr=local), timeout)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
        hdrs = {"Accept": "application/json, text/event-stream",
                "Content-Type": "application/json"}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            if v is not None:
                head.append(f"{k}: {v}")
        if raw_headers is None:
            head.append(f"Content-Length: {len(body)}")
        else:
            head += raw_headers
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = dechunk(payload)
    return Answer(status, headers, payload)


def rpc(id_, method, params=None):
    msg = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode()


class Session:
    def __init__(self, port, path="/mcp"):
        self.port, self.path, self.sid, self.next_id = port, path, None, 1

    def headers(self):
        return {"Mcp-Session-Id": self.sid, "MCP-Protocol-Version": VERSION if self.sid else None}

    async def open(self, timeout=30.0, initialized=True):
        a = await http(self.port, "POST", self.path, rpc(0, "initialize", {
            "protocolVersion": VERSION, "capabilities": {},
            "clientInfo": {"name": "soak", "version": "1"}}), timeout=timeout)
        self.sid = a.headers.get("mcp-session-id")
        if a.status != 200 or not self.sid:
            raise RuntimeError(f"initialize: HTTP {a.status} {a.body[:200]!r}")
        if initialized:
            await http(self.port, "POST", self.path, json.dumps(
                {"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
                self.headers(), timeout=timeout)
        return self

    async def call(self, tool, args=None, timeout=60.0):
        self.next_id += 1
        a = await http(self.port, "POST", self.path, rpc(self.next_id, "tools/call", {
            "name": tool, "arguments": args or {}}), self.headers(), timeout=timeout)
        for m in a.messages():
            if m.get("id") == self.next_id:
                return a.status, m
        return a.status, None

    async def close(self):
        try:
            await http(self.port, "DELETE", self.path, b"", self.headers(), timeout=10)
        except (OSError, asyncio.TimeoutError):
            pass


async def fresh_client_served(port, tool, timeout=10.0):
    """A new client, from another address than the abuser's, initializes and calls `tool`
    within `timeout` seconds: (ok, seconds)."""
    global SOURCE
    SOURCE = FRESH_SOURCE
    try:
        return await _fresh_client_served(port, tool, timeout)
    finally:
        SOURCE = None


async def _fresh_client_served(port, tool, timeout):
    start = time.monotonic()
    try:
        s = await asyncio.wait_for(Session(port).open(timeout=timeout), timeout)
        status, m = await asyncio.wait_for(s.call(tool, {"message": "x"}, timeout), timeout)
        await s.close()
        ok = status == 200 and m is not None and "result" in m
        return ok, time.monotonic() - start
    except (OSError, RuntimeError, asyncio.TimeoutError, ValueError):
        return False, time.monotonic() - start


# ---- (a) soak -------------------------------------------------------------------------------

async def soak(args):
    """1000 sessions calling for `minutes`, RSS sampled. What each session keeps for
    resumption (its latest request streams) is bounded by count, so it grows until every
    session has made enough calls to fill it: the sessions first make `fill` calls each,
    then the timed run starts and its RSS must stay flat."""
    raise_fd_limit()
    duration = args.minutes * 60
    calls = {"ok": 0, "failed": 0}
    samples = []

    async def call(s, i):
        try:
            status, m = await s.call("demo__echo", {"message": f"session {i}"})
            calls["ok" if m is not None and "result" in m else "failed"] += 1
        except Exception:
            calls["failed"] += 1

    sessions = []
    for i in range(args.sessions):
        await asyncio.sleep(args.ramp / args.sessions)
        try:
            sessions.append(await Session(args.port).open())
        except Exception:
            calls["failed"] += 1
    gate = asyncio.Semaphore(64)

    async def filled(s, i):
        for _ in range(args.fill):
            async with gate:
                await call(s, i)

    fill_start = time.monotonic()
    await asyncio.gather(*(filled(s, i) for i, s in enumerate(sessions)))
    print(f"filled: {len(sessions)} sessions x {args.fill} calls in "
          f"{time.monotonic() - fill_start:.0f} s; RSS {rss_kib(args.pid)} KiB", flush=True)

    stop_at = time.monotonic() + duration

    async def client(i, s):
        await asyncio.sleep(i * args.interval / max(len(sessions), 1))
        while time.monotonic() < stop_at:
            await call(s, i)
            await asyncio.sleep(args.interval)
        await s.close()

    async def sampler():
        start = time.monotonic()
        while time.monotonic() < stop_at:
            samples.append((time.monotonic() - start, rss_kib(args.pid)))
            await asyncio.sleep(args.sample)

    await asyncio.gather(sampler(), *(client(i, s) for i, s in enumerate(sessions)))
    series = [(round(t), r) for t, r in samples if r]
    print("rss series (s, KiB): " + " ".join(f"{t}:{r}" for t, r in series), flush=True)
    # The first interval spreads the sessions' calls out: the steady state starts after it.
    after = [r for t, r in series if t >= args.interval]
    if len(after) < 2:
        report(False, "soak rss", "too few samples")
    else:
        base = after[0]
        worst = max(after)
        growth = (worst - base) / base * 100
        report(growth <= 10.0, "soak rss flat",
               f"{base} KiB after the fill, max {worst} KiB, last {after[-1]} KiB "
               f"({growth:+.1f} %, limit 10 %) over {args.minutes} min, {len(sessions)} "
               f"sessions, {calls['ok']} calls ok, {calls['failed']} failed")
    report(calls["failed"] == 0, "soak calls", f"{calls['failed']} failed of "
           f"{calls['ok'] + calls['failed']}")


# ---- (b) defects ---------------------------------------------------------------------------

async def retained(args):
    """(1a) Large answers on Streamable HTTP sessions must not be retained without bound."""
    big = "x" * (args.answer_kib * 1024)
    before = rss_kib(args.pid)
    sessions = [await Session(args.port).open() for _ in range(args.sessions)]
    ok = 0
    for s in sessions:
        for _ in range(args.calls):
            status, m = await s.call("demo__echo", {"message": big}, timeout=120)
            ok += m is not None and "result" in m
    await asyncio.sleep(2)
    grown = (rss_kib(args.pid) - before) // 1024
    sent = args.sessions * args.calls * args.answer_kib // 1024
    report(grown <= args.limit_mb, "retained answers (Streamable HTTP)",
           f"RSS grew {grown} MiB after {args.sessions} sessions x {args.calls} answers of "
           f"{args.answer_kib} KiB ({sent} MiB answered, {ok} ok); limit {args.limit_mb} MiB")
    ok_fresh, secs = await fresh_client_served(args.port, "demo__echo")
    report(ok_fresh, "served after retained answers", f"fresh client {secs:.1f} s")


async def unread_sse(args):
    """(1b) A never-read HTTP+SSE GET /sse stream with many large answers posted to it."""
    big = "x" * (args.answer_kib * 1024)
    before = rss_kib(args.pid)
    reader, writer = await asyncio.open_connection(HOST, args.port)
    writer.write(f"GET /sse HTTP/1.1\r\nHost: {HOST}:{args.port}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    endpoint, buf = None, b""
    deadline = time.monotonic() + 10
    while endpoint is None and time.monotonic() < deadline:
        chunk = await asyncio.wait_for(reader.read(4096), 10)
        if not chunk:
            break
        buf += chunk
        for line in buf.decode("latin-1").split("\n"):
            if line.startswith("data:") and "session_id" in line:
                endpoint = line[5:].strip()
    if endpoint is None:
        report(False, "unread SSE stream", "no endpoint event")
        return
    # From here on the stream is never read.
    await http(args.port, "POST", endpoint, rpc(0, "initialize", {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "soak", "version": "1"}}), timeout=10)
    await http(args.port, "POST", endpoint, json.dumps(
        {"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(), timeout=10)
    statuses = {}
    start = time.monotonic()
    for i in range(args.calls):
        try:
            a = await http(args.port, "POST", endpoint,
                           rpc(i + 1, "tools/call", {"name": "demo__echo",
                                                     "arguments": {"message": big}}),
                           timeout=30)
            statuses[a.status] = statuses.get(a.status, 0) + 1
        except (OSError, asyncio.TimeoutError):
            statuses["timeout"] = statuses.get("timeout", 0) + 1
        if time.monotonic() - start > args.max_seconds:
            statuses["gave up"] = 1
            break
    await asyncio.sleep(3)
    grown = (rss_kib(args.pid) - before) // 1024
    report(grown <= args.limit_mb, "unread HTTP+SSE stream",
           f"RSS grew {grown} MiB after {args.calls} POSTs of {args.answer_kib} KiB answers "
           f"(statuses {statuses}); limit {args.limit_mb} MiB")
    ok_fresh, secs = await fresh_client_served(args.port, "demo__echo")
    report(ok_fresh, "served with an unread SSE stream", f"fresh client {secs:.1f} s")
    writer.close()


def idle_worker(port, count, hold, conn):
    """Child process: opens `count` idle connections, holds them `hold` s, reports how many
    the gateway closed by then."""
    raise_fd_limit()

    async def run():
        socks = []
        for _ in range(count):
            try:
                socks.append(await asyncio.wait_for(asyncio.open_connection(HOST, port), 5))
            except (OSError, asyncio.TimeoutError):
                break
        conn.send(len(socks))
        await asyncio.sleep(hold)

        async def closed_by_gateway(r):
            # Closed: the stream ends (after a refusal's 503, if one was written).
            try:
                await asyncio.wait_for(r.read(-1), 1.0)
                return True
            except asyncio.TimeoutError:
                return False
            except OSError:
                return True

        closed = sum(await asyncio.gather(*(closed_by_gateway(r) for r, _ in socks)))
        conn.send(closed)

    asyncio.run(run())


async def idle(args):
    """(2a) Many idle TCP connections: a new client must still be served."""
    import multiprocessing as mp
    per = 9000
    workers = []
    for i in range(0, args.count, per):
        parent, child = mp.Pipe()
        p = mp.Process(target=idle_worker, args=(args.port, min(per, args.count - i),
                                                 args.hold, child))
        p.start()
        workers.append((p, parent))
    opened = sum(conn.recv() for _, conn in workers)
    ok, secs = await fresh_client_served(args.port, "demo__echo")
    report(ok, "served beside idle connections",
           f"{opened} idle connections open (asked {args.count}); fresh client "
           f"{'served' if ok else 'NOT served'} in {secs:.1f} s")
    closed = sum(conn.recv() for _, conn in workers)
    for p, _ in workers:
        p.join(10)
    report(closed >= opened * 0.95, "idle connections closed",
           f"{closed} of {opened} closed by the gateway within {args.hold} s")


async def slowloris(args):
    """(2b) Connections that send their headers a byte at a time must be cut."""
    raise_fd_limit()
    conns = []
    for _ in range(args.count):
        r, w = await asyncio.open_connection(HOST, args.port)
        w.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        conns.append((r, w))
    closed_at = {}
    start = time.monotonic()

    async def drip(i, r, w):
        while time.monotonic() - start < args.hold:
            try:
                w.write(b"X")
                await w.drain()
                if await asyncio.wait_for(r.read(1024), args.drip) == b"" or r.at_eof():
                    closed_at[i] = time.monotonic() - start
                    return
            except asyncio.TimeoutError:
                continue
            except OSError:
                closed_at[i] = time.monotonic() - start
                return
            if r.at_eof():
                closed_at[i] = time.monotonic() - start
                return
        w.close()

    tasks = [asyncio.create_task(drip(i, r, w)) for i, (r, w) in enumerate(conns)]
    await asyncio.sleep(2)
    ok, secs = await fresh_client_served(args.port, "demo__echo")
    report(ok, "served beside slowloris", f"fresh client {secs:.1f} s beside {args.count}")
    await asyncio.gather(*tasks)
    latest = max(closed_at.values()) if closed_at else None
    report(len(closed_at) == args.count, "slowloris connections cut",
           f"{len(closed_at)} of {args.count} cut within {args.hold} s"
           + (f" (last after {latest:.0f} s)" if latest else ""))


async def huge_length(args):
    """(2c) Content-Length: 100 MB and no body: refused at once, not waited for."""
    start = time.monotonic()
    try:
        a = await http(args.port, "POST", "/mcp", b"", timeout=args.wait,
                       raw_headers=["Content-Length: 104857600"])
        secs = time.monotonic() - start
        report(a.status == 413 and secs < args.wait, "Content-Length 100MB without body",
               f"HTTP {a.status} after {secs:.1f} s (want 413 at once)")
    except asyncio.TimeoutError:
        report(False, "Content-Length 100MB without body", f"no answer in {args.wait} s")


async def anonymous(args):
    """(3) Many anonymous `initialize` that are never used, then a new client."""
    sem = asyncio.Semaphore(64)
    refused = 0

    async def one():
        nonlocal refused
        async with sem:
            try:
                await Session(args.port).open(initialized=False)
            except (RuntimeError, OSError, asyncio.TimeoutError):
                refused += 1

    start = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.count)))
    took = time.monotonic() - start
    ok, secs = await fresh_client_served(args.port, "demo__echo")
    report(ok, "new client after anonymous initialize flood",
           f"{args.count} initialize in {took:.0f} s ({refused} refused); new client "
           f"{'served' if ok else 'NOT served'} ({secs:.1f} s)")


async def inject(args):
    """(5) An upstream's error text must not forge log lines or carry terminal escapes."""
    s = await Session(args.port).open()
    status, m = await s.call("inj__hit")
    await asyncio.sleep(1)
    with open(args.log, "rb") as f:
        log = f.read()
    forged = sum(1 for line in log.split(b"\n") if line.startswith(b"2099-01-01"))
    escapes = log.count(b"\x1b")
    returns = log.count(b"\r")
    report(forged == 0 and escapes == 0 and returns == 0, "log injection through upstream text",
           f"{forged} forged lines, {escapes} raw ESC, {returns} raw CR bytes in the gateway log "
           f"(the call answered {'an error' if m and 'error' in m else m})")


async def circuit(args):
    """(6) An upstream that keeps failing: calls fail fast and stop reaching it."""
    s = await Session(args.port).open()
    times = []
    for _ in range(args.calls):
        start = time.monotonic()
        await s.call("hang__hit", timeout=args.timeout * 3 + 10)
        times.append(time.monotonic() - start)
    try:
        with open(args.count_file) as f:
            reached = sum(1 for _ in f)
    except OSError:
        reached = 0
    last = times[-args.calls // 3:]
    fast = sum(1 for t in last if t < 0.5)
    report(reached < args.calls // 2 and fast == len(last), "circuit on a failing upstream",
           f"{reached} of {args.calls} calls reached the upstream; last {len(last)} calls "
           f"{fast} fast (<0.5 s), slowest {max(last):.1f} s")


async def duplicate_method(args):
    """minor: a request with two "method" keys is refused, not routed by either."""
    s = await Session(args.port).open()
    body = (b'{"jsonrpc":"2.0","id":7,"method":"tools/list","method":"tools/call",'
            b'"params":{"name":"demo__echo","arguments":{"message":"dup"}}}')
    a = await http(args.port, "POST", "/mcp", body, s.headers())
    msgs = a.messages()
    refused = a.status == 400 or any(m.get("error", {}).get("code") == -32600 for m in msgs)
    report(refused, "duplicate \"method\" key",
           f"HTTP {a.status}, {'error ' + str(msgs[0]['error']['code']) if msgs and 'error' in msgs[0] else 'a result' if msgs else 'no message'}")


async def charset(args):
    """minor: a body declared charset=utf-16 is refused (415), not read as UTF-8."""
    s = await Session(args.port).open()
    h = s.headers()
    h["Content-Type"] = "application/json; charset=utf-16"
    a = await http(args.port, "POST", "/mcp", rpc(8, "tools/list").decode().encode("utf-16"), h)
    a8 = await http(args.port, "POST", "/mcp", rpc(9, "tools/list"), h)
    report(a.status == 415 and a8.status == 415, "charset=utf-16",
           f"HTTP {a.status} (UTF-16 body), HTTP {a8.status} (UTF-8 body labelled UTF-16); want 415")


async def stderr_flood(args):
    """minor: an upstream writing 200,000 stderr lines: the log stays bounded, the gateway
    keeps serving."""
    s = await Session(args.port).open()
    status, m = await s.call("noisy__hit")
    with open(args.log, "rb") as f:
        logged = sum(1 for line in f if b"noise noise" in line)
    report(m is not None and "result" in m and logged <= args.max_logged,
           "stderr flood", f"{logged} of {args.lines} stderr lines logged (limit "
           f"{args.max_logged}); call {'ok' if m and 'result' in m else 'failed'}")


async def crash_loop(args):
    """(c) per-session stdio upstream: open, crash, close, repeated."""
    start = time.monotonic()
    errors = 0
    for i in range(args.cycles):
        try:
            s = await Session(args.port).open()
            await s.call("crashy__hit", timeout=30)
            await s.close()
        except (RuntimeError, OSError, asyncio.TimeoutError):
            errors += 1
    print(f"crash loop: {args.cycles} cycles in {time.monotonic() - start:.0f} s, "
          f"{errors} failed to open", flush=True)
    report(errors == 0, "crash loop sessions", f"{errors} of {args.cycles} cycles failed")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("check")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--interval", type=float, default=10)
    p.add_argument("--ramp", type=float, default=30)
    p.add_argument("--sample", type=float, default=5)
    p.add_argument("--fill", type=int, default=100)
    p.add_argument("--calls", type=int, default=40)
    p.add_argument("--answer-kib", type=int, default=3584)
    p.add_argument("--limit-mb", type=int, default=128)
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--hold", type=float, default=60)
    p.add_argument("--drip", type=float, default=5)
    p.add_argument("--wait", type=float, default=10)
    p.add_argument("--timeout", type=float, default=1)
    p.add_argument("--count-file")
    p.add_argument("--log")
    p.add_argument("--lines", type=int, default=200000)
    p.add_argument("--max-logged", type=int, default=10000)
    p.add_argument("--cycles", type=int, default=1000)
    args = p.parse_args()
    checks = {"soak": soak, "retained": retained, "unread-sse": unread_sse, "idle": idle,
              "slowloris": slowloris, "huge-length": huge_length, "anonymous": anonymous,
              "inject": inject, "circuit": circuit, "duplicate-method": duplicate_method,
              "charset": charset, "stderr-flood": stderr_flood, "crash-loop": crash_loop}
    asyncio.run(checks[args.check](args))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
