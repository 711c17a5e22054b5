"""Real MCP calls through the gateway in the image, with the official Python SDK client.

Usage: python mcp_check.py URL   (e.g. http://127.0.0.1:18080/mcp)

For each era (mode "legacy": the initialize handshake; mode "auto": 2026-07-28 discovery,
falling back to the handshake) it connects over Streamable HTTP, lists the tools, expects the
demo server's tools under the prefix demo__, calls demo__echo and demo__add, and checks the
answers. Prints one line per check; exits 1 on the first failure. Run by scripts/docker.
"""

from __future__ import annotations

import sys

import anyio
import mcp
import mcp.types as types
from mcp.client.streamable_http import streamable_http_client

TIMEOUT = 30.0


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


def check(condition: bool, why: str) -> None:
    if not condition:
        raise SystemExit(f"FAIL {why}")


async def one_era(url: str, mode: str) -> None:
    client = mcp.Client(
        streamable_http_client(url),
        mode=mode,
        client_info=types.Implementation(name="manifold-docker-check", version="1.0.0"),
        read_timeout_seconds=TIMEOUT,
        cache=None,
    )
    with anyio.fail_after(TIMEOUT * 4):
        async with client:
            print(f"PASS {mode}: connected, protocol {client.protocol_version}", flush=True)
            tools = await client.list_tools()
            names = sorted(t.name for t in tools.tools)
            check("demo__echo" in names and "demo__add" in names, f"{mode}: tools/list gave {names}")
            print(f"PASS {mode}: tools/list: {', '.join(names)}", flush=True)
            echoed = await client.call_tool("demo__echo", {"message": "hello from a container"})
            check(not echoed.is_error, f"{mode}: demo__echo failed: {echoed}")
            check("hello from a container" in text_of(echoed), f"{mode}: demo__echo said {text_of(echoed)!r}")
            print(f"PASS {mode}: tools/call demo__echo: {text_of(echoed)!r}", flush=True)
            summed = await client.call_tool("demo__add", {"a": 2, "b": 40})
            check(not summed.is_error and "42" in text_of(summed), f"{mode}: demo__add said {text_of(summed)!r}")
            print(f"PASS {mode}: tools/call demo__add: {text_of(summed)!r}", flush=True)


async def main(url: str) -> None:
    for mode in ("legacy", "auto"):
        await one_era(url, mode)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: mcp_check.py URL")
    anyio.run(main, sys.argv[1])
