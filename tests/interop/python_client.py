#!/usr/bin/env python3
"""Interoperability check: the official MCP Python SDK as a client of manifold.

Usage: python_client.py URL [--prefix everything] [--timeout SECONDS]

Connects (mode="legacy": the initialize handshake) to the gateway at URL, which
must serve @modelcontextprotocol/server-everything as the upstream whose tools
are exposed as `<prefix>__<name>`, and checks through the gateway:

  connect          the initialize handshake succeeds
  list-tools       every tool is prefixed, the ones used below are present
  call-tool        echo and get-sum answer with the expected text
  sampling         sampling/createMessage reaches this client's callback; its
                   text comes back in the tool result
  elicitation      elicitation/create reaches this client's callback; the content
                   it accepts with comes back in the tool result
  progress         notifications/progress of trigger-long-running-operation reach
                   the progress callback (at least 2, increasing, right total)
  subscription     resources/subscribe, then notifications/resources/updated for
                   that URI arrives within a bounded wait
  first-request    in fresh sessions, the very first request is a tool that
                   server-everything registers only once it has received
                   notifications/initialized (trigger-sampling-request); it must
                   be found and answer (3 sessions, as a misordering is a race)

Prints `PASS name` or `FAIL name: why` per check, then `N passed, M failed`.
Exit status 0 only when every check passed.

Needs mcp==2.3.0 (scripts/interop installs it in .interop/venv).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp
import mcp.types as types
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

# resources/subscribe and progress are deprecated at 2026-07-28, not at the
# 2025-era revision this check negotiates on purpose.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

SEPARATOR = "__"
# server-everything tools the checks below call, by their upstream names.
REQUIRED_TOOLS = (
    "echo",
    "get-sum",
    "trigger-sampling-request",
    "trigger-elicitation-request",
    "trigger-long-running-operation",
    "toggle-subscriber-updates",
)


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says which and why."""


def expect(condition: bool, why: str) -> None:
    if not condition:
        raise CheckFailed(why)


def texts(result: types.CallToolResult) -> str:
    """All text content blocks of a tool result, joined by newlines."""
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "…"


def describe(exc: BaseException) -> str:
    """One line naming an exception, unwrapping exception groups."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return describe(exc.exceptions[0])
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, MCPError):
        data = f" data={short(json.dumps(exc.error.data))}" if exc.error.data is not None else ""
        return f"MCP error {exc.error.code}: {exc.error.message}{data}"
    if isinstance(exc, TimeoutError):
        return f"timed out{': ' + str(exc) if str(exc) else ''}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Recorder:
    """What the server sent this client: callback invocations and notifications."""

    def __init__(self) -> None:
        self.sampling_requests: list[types.CreateMessageRequestParams] = []
        self.sampling_reply = f"interop-sampled-{uuid.uuid4().hex[:12]}"
        self.elicitation_requests: list[types.ElicitRequestParams] = []
        self.elicited_name = f"Interop Tester {uuid.uuid4().hex[:8]}"
        self.updated_uris: list[str] = []
        self.updated = anyio.Event()
        self.watched_uri: str | None = None
        self.transport_errors: list[str] = []

    async def sampling(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.sampling_requests.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=self.sampling_reply),
            model="interop-model",
            stop_reason="endTurn",
        )

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitation_requests.append(params)
        return types.ElicitResult(
            action="accept",
            content={"name": self.elicited_name, "check": True, "integer": 7},
        )

    async def message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.transport_errors.append(describe(message))
            return
        if isinstance(message, types.ResourceUpdatedNotification):
            uri = str(message.params.uri)
            self.updated_uris.append(uri)
            if uri == self.watched_uri:
                self.updated.set()


class Checks:
    def __init__(self, url: str, client: mcp.Client, recorder: Recorder, prefix: str, timeout: float) -> None:
        self.url = url
        self.client = client
        self.recorder = recorder
        self.prefix = prefix
        self.timeout = timeout
        self.tools: dict[str, types.Tool] = {}

    def exposed(self, name: str) -> str:
        return f"{self.prefix}{SEPARATOR}{name}" if self.prefix else name

    async def call(self, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> types.CallToolResult:
        """Calls upstream tool `name` by its exposed name; an isError result fails the check."""
        result = await self.client.call_tool(self.exposed(name), arguments or {}, **kwargs)
        expect(not result.is_error, f"{self.exposed(name)} returned isError: {short(texts(result))}")
        return result

    async def list_tools(self) -> None:
        cursor: str | None = None
        names: list[str] = []
        for _ in range(100):
            page = await self.client.list_tools(cursor=cursor)
            for tool in page.tools:
                names.append(tool.name)
                self.tools[tool.name] = tool
            cursor = page.next_cursor
            if cursor is None:
                break
        else:
            raise CheckFailed("tools/list still had a nextCursor after 100 pages")
        expect(bool(names), "tools/list returned no tools")
        repeated = sorted({n for n in names if names.count(n) > 1})
        expect(not repeated, f"tools/list repeated names: {repeated}")
        if self.prefix:
            unprefixed = [n for n in names if not n.startswith(self.prefix + SEPARATOR)]
            expect(not unprefixed, f"tools not prefixed '{self.prefix}{SEPARATOR}': {unprefixed}")
        missing = [self.exposed(n) for n in REQUIRED_TOOLS if self.exposed(n) not in self.tools]
        expect(not missing, f"missing {missing}; listed {sorted(names)}")

    async def call_tool(self) -> None:
        message = f"interop echo {uuid.uuid4().hex[:8]}"
        text = texts(await self.call("echo", {"message": message}))
        expect(f"Echo: {message}" in text, f"echo answered {short(text)!r}, expected 'Echo: {message}'")
        text = texts(await self.call("get-sum", {"a": 19, "b": 23}))
        expect("is 42" in text, f"get-sum(19, 23) answered {short(text)!r}, expected '... is 42.'")

    async def sampling(self) -> None:
        prompt = f"interop prompt {uuid.uuid4().hex[:8]}"
        result = await self.call("trigger-sampling-request", {"prompt": prompt, "maxTokens": 16})
        requests = self.recorder.sampling_requests
        expect(len(requests) == 1, f"sampling callback ran {len(requests)} times, expected once")
        sent = " ".join(
            m.content.text for m in requests[0].messages if isinstance(m.content, types.TextContent)
        )
        expect(prompt in sent, f"sampling request did not carry the prompt {prompt!r}: {short(sent)!r}")
        text = texts(result)
        expect(
            self.recorder.sampling_reply in text,
            f"tool result lacks the callback's text {self.recorder.sampling_reply!r}: {short(text)!r}",
        )

    async def elicitation(self) -> None:
        result = await self.call("trigger-elicitation-request")
        requests = self.recorder.elicitation_requests
        expect(len(requests) == 1, f"elicitation callback ran {len(requests)} times, expected once")
        text = texts(result)
        expect(
            "User provided the requested information" in text,
            f"the upstream did not see an accepted elicitation: {short(text)!r}",
        )
        expect(
            f"- Name: {self.recorder.elicited_name}" in text,
            f"tool result lacks the accepted name {self.recorder.elicited_name!r}: {short(text)!r}",
        )

    async def progress(self) -> None:
        steps = 4
        seen: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total))

        result = await self.call(
            "trigger-long-running-operation", {"duration": 2, "steps": steps}, progress_callback=on_progress
        )
        text = texts(result)
        expect("Long running operation completed" in text, f"unexpected result {short(text)!r}")
        values = [p for p, _ in seen]
        expect(len(values) >= 2, f"progress callback got {len(values)} notifications, expected at least 2: {seen}")
        expect(all(a < b for a, b in zip(values, values[1:])), f"progress not increasing: {values}")
        expect(all(t == steps for _, t in seen), f"progress total is not {steps}: {seen}")

    async def subscription(self) -> None:
        caps = self.client.server_capabilities.resources
        expect(caps is not None and bool(caps.subscribe), f"gateway does not offer resources.subscribe: {caps}")
        resources = (await self.client.list_resources()).resources
        uris = [str(r.uri) for r in resources]
        expect(bool(uris), "resources/list returned no resources")
        uri = next((u for u in uris if u.startswith("demo://resource/static/")), uris[0])
        self.recorder.watched_uri = uri
        await self.client.subscribe_resource(uri)
        # server-everything sends updates for subscribed URIs only while its
        # per-session simulation is on: toggle it on (once more if it was on).
        text = texts(await self.call("toggle-subscriber-updates"))
        if text.startswith("Stopped"):
            text = texts(await self.call("toggle-subscriber-updates"))
        expect(text.startswith("Started"), f"toggle-subscriber-updates answered {short(text)!r}")
        wait = min(self.timeout, 15.0)
        try:
            with anyio.fail_after(wait):
                await self.recorder.updated.wait()
        except TimeoutError:
            raise CheckFailed(
                f"no notifications/resources/updated for {uri} within {wait:.0f}s "
                f"(updates seen for: {self.recorder.updated_uris or 'none'})"
            ) from None
        finally:
            # Leave the shared upstream quiet for later clients; failures here do not matter.
            with anyio.move_on_after(5):
                try:
                    await self.call("toggle-subscriber-updates")
                    await self.client.unsubscribe_resource(uri)
                except Exception:
                    pass

    async def first_request(self) -> None:
        sessions = 3
        for attempt in range(1, sessions + 1):
            recorder = Recorder()
            async with mcp.Client(
                self.url,
                mode="legacy",
                sampling_callback=recorder.sampling,
                client_info=types.Implementation(name="manifold-interop-python-fresh", version="1.0.0"),
                read_timeout_seconds=self.timeout,
                cache=None,
            ) as fresh:
                name = self.exposed("trigger-sampling-request")
                result = await fresh.call_tool(name, {"prompt": f"fresh session {attempt}", "maxTokens": 8})
                text = texts(result)
                expect(
                    not result.is_error,
                    f"session {attempt}/{sessions}: first request tools/call {name} returned isError: {short(text)!r}",
                )
                expect(
                    recorder.sampling_reply in text,
                    f"session {attempt}/{sessions}: result lacks the callback's text: {short(text)!r}",
                )


async def run(url: str, prefix: str, timeout: float) -> int:
    recorder = Recorder()
    results: list[tuple[str, str | None]] = []

    def report(name: str, why: str | None) -> None:
        results.append((name, why))
        print(f"PASS {name}" if why is None else f"FAIL {name}: {why}", flush=True)

    client = mcp.Client(
        url,
        mode="legacy",
        sampling_callback=recorder.sampling,
        elicitation_callback=recorder.elicitation,
        message_handler=recorder.message,
        client_info=types.Implementation(name="manifold-interop-python", version="1.0.0"),
        read_timeout_seconds=timeout,
        cache=None,
    )
    checks = Checks(url, client, recorder, prefix, timeout)
    plan: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("list-tools", checks.list_tools),
        ("call-tool", checks.call_tool),
        ("sampling", checks.sampling),
        ("elicitation", checks.elicitation),
        ("progress", checks.progress),
        ("subscription", checks.subscription),
        ("first-request", checks.first_request),
    ]
    connected = False
    try:
        # Bounds everything, the handshake and closing the session included.
        with anyio.fail_after(timeout * (len(plan) + 2)):
            async with client:
                connected = True
                report("connect", None)
                for name, check in plan:
                    try:
                        with anyio.fail_after(timeout):
                            await check()
                    except Exception as exc:  # noqa: BLE001 - a check's error is its failure
                        report(name, describe(exc))
                    else:
                        report(name, None)
    except Exception as exc:  # noqa: BLE001 - connecting or closing failed
        if connected:
            report("session", f"closing the session failed: {describe(exc)}")
        else:
            report("connect", f"{url}: {describe(exc)}")
    if recorder.transport_errors:
        report("transport", f"transport errors seen: {recorder.transport_errors[:3]}")
    failed = sum(1 for _, why in results if why is not None)
    print(f"{len(results) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the gateway's Streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp")
    parser.add_argument(
        "--prefix", default="everything", help="prefix of server-everything's tools (default: everything)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per check (default: 30)")
    args = parser.parse_args()
    if not hasattr(mcp, "Client"):
        print("FAIL setup: this mcp package has no mcp.Client (need mcp==2.3.0)", flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    return anyio.run(run, args.url, args.prefix, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
