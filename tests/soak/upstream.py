#!/usr/bin/env python3
"""A stdio MCP server that misbehaves on purpose, for scripts/soak.

    upstream.py MODE [MARKER]

MARKER is ignored: it only tags the process's command line so the soak can find it (and
its orphans) in /proc. Every mode answers `initialize`, `tools/list` (one tool, `hit`) and
`ping`; MODE decides what `tools/call` and the rest do:

- `ok`: `hit` answers "ok".
- `crash`: `hit` exits the process with status 3 without answering.
- `inject`: `hit` fails with an error whose text holds a newline, a forged log line, a
  carriage return and terminal escapes; the same text goes to stderr at start.
- `hang`: `hit` is never answered; each call received appends a line to $SOAK_COUNT_FILE.
- `linger`: as `ok`, but when stdin closes it stays (an hour) instead of exiting, as
  servers that never read EOF do.
- `stderr`: writes $SOAK_STDERR_LINES lines (default 200000) to stderr at start, then as `ok`.
"""
import json
import os
import sys
import time

FORGED = "2099-01-01T00:00:00.000000Z ERROR manifold: FORGED-LOG-LINE admin=true"
INJECT = "bad thing\n" + FORGED + "\r\x1b[2J\x1b[31mred\x1b[0m\x07"


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main():
    mode = sys.argv[1]
    if mode == "inject":
        sys.stderr.write("stderr: " + INJECT.replace("\n", " ") + "\n")
        sys.stderr.flush()
    if mode == "stderr":
        n = int(os.environ.get("SOAK_STDERR_LINES", "200000"))
        line = "noise " * 10 + "\n"
        sys.stderr.write(line * n)
        sys.stderr.flush()
    for raw in sys.stdin:
        try:
            req = json.loads(raw)
        except ValueError:
            continue
        method, rid = req.get("method"), req.get("id")
        if rid is None:
            continue
        if method == "initialize":
            version = req.get("params", {}).get("protocolVersion", "2025-11-25")
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": version, "capabilities": {"tools": {}},
                "serverInfo": {"name": "soak-" + mode, "version": "1"}}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [{
                "name": "hit", "inputSchema": {"type": "object"}}]}})
        elif method == "tools/call":
            if mode == "crash":
                sys.stdout.flush()
                os._exit(3)
            if mode == "inject":
                send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": INJECT}})
            elif mode == "hang":
                path = os.environ.get("SOAK_COUNT_FILE")
                if path:
                    with open(path, "a") as f:
                        f.write("call\n")
            else:
                send({"jsonrpc": "2.0", "id": rid, "result": {
                    "content": [{"type": "text", "text": "ok"}]}})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        else:
            send({"jsonrpc": "2.0", "id": rid,
                  "error": {"code": -32601, "message": "no such method"}})


if __name__ == "__main__":
    main()
    if sys.argv[1] == "linger":
        time.sleep(3600)
