#!/usr/bin/env python3
"""Interoperability check: the official MCP Python SDK as a client of manifold.

Usage: python_client.py URL [--mode auto|legacy] [--prefix everything]
                            [--modern-prefix PREFIX] [--timeout SECONDS]
                            [--wire-log FILE]

Connects to the gateway at URL, which must serve
@modelcontextprotocol/server-everything (a handshake-era server) as the upstream
whose tools are exposed as `<prefix>__<name>`. `--mode` is the SDK's connect
mode: `auto` (its default) probes `server/discover` and must end up on
2026-07-28, the stateless era; `legacy` runs the initialize handshake. Every
check runs in both modes; in `auto` the gateway translates between the eras
(server-everything's sampling and elicitation requests reach this client as
input-required results that the SDK answers by retrying the call). Checks:

  connect          the client connects (probe or handshake)
  era              auto: 2026-07-28 negotiated through server/discover, no
                   initialize sent; legacy: a handshake revision negotiated
                   through initialize, no server/discover sent
  list-tools       every tool is prefixed, the ones used below are present
  call-tool        echo and get-sum answer with the expected text
  sampling         sampling/createMessage reaches this client's callback; its
                   text comes back in the tool result
  elicitation      elicitation/create reaches this client's callback; the content
                   it accepts with comes back in the tool result
  progress         notifications/progress of trigger-long-running-operation reach
                   the progress callback (at least 2, increasing, right total)
  subscription     legacy: resources/subscribe; auto: subscriptions/listen with
                   resourceSubscriptions (resources/subscribe is gone in
                   2026-07-28); then notifications/resources/updated for that
                   URI arrives within a bounded wait
  first-request    in fresh sessions (always mode="legacy"), the very first
                   request is a tool that server-everything registers only once
                   it has received notifications/initialized
                   (trigger-sampling-request); it must be found and answer
                   (3 sessions, as a misordering is a race)

How sampling and elicitation travelled is checked on the wire, from the HTTP
requests this client sends: in auto mode by an input-required round trip (a
tools/call retried with `inputResponses` and `requestState`, the client never
answering a server-to-client request); in legacy mode by a server-to-client
request the client answers (never `inputResponses`).

With `--modern-prefix PREFIX`, a second upstream that speaks 2026-07-28 (the
`manifold demo` server) is expected under PREFIX, and these checks are added:

  modern-list-tools   its tools are listed under PREFIX, PREFIX__echo among them
  modern-call-tool    PREFIX__echo answers with the message it was given
  modern-elicitation  only if PREFIX__confirm is listed: calling it asks this
                      client (elicitation callback, once, travelling as above)
                      and its result reflects the accepted content

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
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import mcp
import mcp.types as types
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS

# Sampling, progress and resources/subscribe are deprecated (or gone) at
# 2026-07-28; this check uses them on purpose, in the era that has them.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

MODERN_VERSION = "2026-07-28"
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
# How the MCP Python SDK's default HTTP client times out (30 s, 300 s to read a stream).
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


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


# ---------------------------------------------------------------- the wire


@dataclass
class Posted:
    """One JSON-RPC message this client POSTed, with its protocol-version header."""

    body: dict[str, Any]
    version_header: str | None

    @property
    def method(self) -> str | None:
        method = self.body.get("method")
        return method if isinstance(method, str) else None

    @property
    def params(self) -> dict[str, Any]:
        params = self.body.get("params")
        return params if isinstance(params, dict) else {}

    @property
    def is_answer(self) -> bool:
        """A response to a server-to-client request (only the handshake era has those)."""
        return self.method is None and ("result" in self.body or "error" in self.body)


class Wire:
    """The request side of this client's HTTP traffic: every JSON-RPC message it POSTs.

    An httpx request hook, so it sees exactly what the SDK sends; responses are
    not read here (SSE bodies belong to the SDK).
    """

    def __init__(self, log_path: str | None = None) -> None:
        self.posts: list[Posted] = []
        self.log_path = log_path

    async def on_request(self, request: httpx2.Request) -> None:
        if request.method != "POST":
            return
        try:
            body = json.loads(request.content)
        except (ValueError, httpx2.RequestNotRead):
            return
        if isinstance(body, dict):
            posted = Posted(body, request.headers.get("mcp-protocol-version"))
            self.posts.append(posted)
            if self.log_path:
                line = {"mcp-protocol-version": posted.version_header, "body": body}
                with open(self.log_path, "a", encoding="utf-8") as log:
                    log.write(json.dumps(line) + "\n")

    def mark(self) -> int:
        return len(self.posts)

    def since(self, mark: int) -> list[Posted]:
        return self.posts[mark:]


def tool_calls(posts: list[Posted], name: str) -> list[dict[str, Any]]:
    """The params of every tools/call of `name` among `posts`, in order."""
    return [p.params for p in posts if p.method == "tools/call" and p.params.get("name") == name]


# ---------------------------------------------------------------- elicitation answers


def sample_value(name: str, schema: Any, token: str) -> Any:
    """A value that satisfies one property `schema` of a form (or tool) schema.

    Free-text strings get a distinctive `name-token` value so a result can be
    searched for it; enums, consts and formats get a valid member.
    """
    schema = schema if isinstance(schema, dict) else {}
    options = schema.get("enum") or [o.get("const") for o in schema.get("oneOf", []) if isinstance(o, dict)]
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        choices = items.get("enum") or [o.get("const") for o in items.get("anyOf", []) if isinstance(o, dict)]
        return choices[:1]
    if options:
        return options[0]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        value = 7
        if isinstance(low, (int, float)) and value < low:
            value = low
        if isinstance(high, (int, float)) and value > high:
            value = high
        return int(value) if kind == "integer" else value
    formats = {
        "email": f"interop-{token}@example.com",
        "uri": f"https://example.com/interop/{token}",
        "date": "2026-07-28",
        "date-time": "2026-07-28T12:00:00Z",
    }
    return formats.get(schema.get("format"), f"{name}-{token}")


def sample_object(schema: Any, token: str, *, required_only: bool) -> dict[str, Any]:
    """Values for the properties of an object schema (all of them, or the required ones)."""
    schema = schema if isinstance(schema, dict) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or [])
    return {
        name: sample_value(name, prop, token)
        for name, prop in properties.items()
        if not required_only or name in required
    }


def free_text(values: dict[str, Any], token: str) -> list[str]:
    """The distinctive strings among `values` (the ones sample_value made up)."""
    return [v for v in values.values() if isinstance(v, str) and token in v]


# ---------------------------------------------------------------- the client's side


ElicitationReply = Callable[[types.ElicitRequestParams], types.ElicitResult]


class Recorder:
    """What the server sent this client: callback invocations and notifications."""

    def __init__(self) -> None:
        self.sampling_requests: list[types.CreateMessageRequestParams] = []
        self.sampling_reply = f"interop-sampled-{uuid.uuid4().hex[:12]}"
        self.elicitation_requests: list[types.ElicitRequestParams] = []
        self.elicitation_replies: list[types.ElicitResult] = []
        self.elicited_name = f"Interop Tester {uuid.uuid4().hex[:8]}"
        # How the elicitation callback answers; a check may swap it for its own.
        self.elicitation_reply: ElicitationReply = self.everything_reply
        self.updated_uris: list[str] = []
        self.updated = anyio.Event()
        self.watched_uri: str | None = None
        self.transport_errors: list[str] = []

    def everything_reply(self, params: types.ElicitRequestParams) -> types.ElicitResult:
        """Accepts server-everything's form with the fields its result echoes."""
        return types.ElicitResult(
            action="accept",
            content={"name": self.elicited_name, "check": True, "integer": 7},
        )

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
        reply = self.elicitation_reply(params)
        self.elicitation_replies.append(reply)
        return reply

    async def message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.transport_errors.append(describe(message))
            return
        if isinstance(message, types.ResourceUpdatedNotification):
            uri = str(message.params.uri)
            self.updated_uris.append(uri)
            if uri == self.watched_uri:
                self.updated.set()


# ---------------------------------------------------------------- the checks


class Checks:
    def __init__(
        self,
        url: str,
        mode: str,
        client: mcp.Client,
        wire: Wire,
        recorder: Recorder,
        prefix: str,
        modern_prefix: str | None,
        timeout: float,
    ) -> None:
        self.url = url
        self.mode = mode
        self.client = client
        self.wire = wire
        self.recorder = recorder
        self.prefix = prefix
        self.modern_prefix = modern_prefix
        self.timeout = timeout
        self.tools: dict[str, types.Tool] = {}

    def exposed(self, name: str, prefix: str | None = None) -> str:
        prefix = self.prefix if prefix is None else prefix
        return f"{prefix}{SEPARATOR}{name}" if prefix else name

    async def call_exposed(
        self, exposed: str, arguments: dict[str, Any] | None = None, **kwargs: Any
    ) -> types.CallToolResult:
        """Calls a tool by its exposed name; an isError result fails the check."""
        result = await self.client.call_tool(exposed, arguments or {}, **kwargs)
        expect(not result.is_error, f"{exposed} returned isError: {short(texts(result))}")
        return result

    async def call(self, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> types.CallToolResult:
        """Calls server-everything's tool `name` by its exposed name."""
        return await self.call_exposed(self.exposed(name), arguments, **kwargs)

    async def all_tools(self) -> list[types.Tool]:
        """Every page of tools/list."""
        cursor: str | None = None
        tools: list[types.Tool] = []
        for _ in range(100):
            page = await self.client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools
        raise CheckFailed("tools/list still had a nextCursor after 100 pages")

    # ------------------------------------------------------------ how input travelled

    def expect_input_travelled(self, mark: int, tool: str, kind: str, answered: Callable[[Any], bool]) -> None:
        """The callback's answer for `tool` went back the way this mode's era prescribes.

        auto: the first tools/call carried no input, and a retry carried
        `inputResponses` holding the answer plus a `requestState`; the client
        answered no server-to-client request. legacy: the client answered a
        server-to-client request with it and never sent `inputResponses`.
        `answered(value)` tells the callback's answer from anything else.
        """
        posts = self.wire.since(mark)
        calls = tool_calls(posts, tool)
        answers = [p.body for p in posts if p.is_answer]
        expect(bool(calls), f"no tools/call of {tool} was seen on the wire")
        if self.mode == "auto":
            first = calls[0]
            expect(
                "inputResponses" not in first and "requestState" not in first,
                f"the first tools/call of {tool} already carried input: {short(json.dumps(first))}",
            )
            expect(
                not answers,
                f"the client answered server-to-client requests on a {MODERN_VERSION} connection: "
                f"{short(json.dumps(answers))}",
            )
            retries = [c for c in calls[1:] if isinstance(c.get("inputResponses"), dict)]
            expect(
                bool(retries),
                f"no retry of {tool} carried inputResponses ({len(calls)} tools/call sent); "
                f"the {kind} did not travel as an input-required round trip",
            )
            carrying = [
                c for c in retries if any(answered(v) for v in c["inputResponses"].values())
            ]
            expect(
                len(carrying) == 1,
                f"{len(carrying)} retries of {tool} carried the callback's {kind} answer, expected 1: "
                f"{short(json.dumps([c['inputResponses'] for c in retries]))}",
            )
            state = carrying[0].get("requestState")
            expect(
                isinstance(state, str) and bool(state),
                f"the retry of {tool} carried no requestState: {short(json.dumps(carrying[0]))}",
            )
        else:
            with_input = [c for c in calls if "inputResponses" in c or "requestState" in c]
            expect(
                not with_input,
                f"a handshake-era tools/call of {tool} carried input: {short(json.dumps(with_input))}",
            )
            matching = [a for a in answers if answered(a.get("result"))]
            expect(
                len(matching) == 1,
                f"{len(matching)} answers to server-to-client requests carried the callback's {kind} "
                f"answer, expected 1 (answers sent: {short(json.dumps(answers))})",
            )

    # ------------------------------------------------------------ checks

    async def era(self) -> None:
        version = self.client.protocol_version
        sent = [p.method for p in self.wire.posts if p.method is not None]
        if self.mode == "auto":
            if version != MODERN_VERSION:
                raise CheckFailed(
                    f"negotiated {version!r}, expected {MODERN_VERSION}; methods sent: {sent}; "
                    f"a server/discover sent now gets {await self.probe_discover()}"
                )
            expect(self.client.session.discover_result is not None, "no DiscoverResult was adopted")
            expect(sent[:1] == ["server/discover"], f"the first request was not server/discover: {sent}")
            expect("initialize" not in sent, f"initialize was sent after server/discover: {sent}")
            stale = [(p.method, p.version_header) for p in self.wire.posts if p.version_header != MODERN_VERSION]
            expect(not stale, f"POSTs without MCP-Protocol-Version {MODERN_VERSION}: {stale}")
        else:
            expect(
                version in HANDSHAKE_PROTOCOL_VERSIONS,
                f"negotiated {version!r}, expected a handshake revision {list(HANDSHAKE_PROTOCOL_VERSIONS)}",
            )
            expect(self.client.session.initialize_result is not None, "no InitializeResult was adopted")
            expect(sent[:1] == ["initialize"], f"the first request was not initialize: {sent}")
            expect("server/discover" not in sent, f"server/discover was sent in legacy mode: {sent}")

    async def probe_discover(self) -> str:
        """What the gateway answers a bare server/discover (for a failure message)."""
        body = {
            "jsonrpc": "2.0",
            "id": "interop-probe",
            "method": "server/discover",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        }
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN_VERSION,
            "Mcp-Method": "server/discover",
        }
        try:
            async with httpx2.AsyncClient(timeout=10.0) as http:
                response = await http.post(self.url, json=body, headers=headers)
                return f"HTTP {response.status_code} {short(response.text)}"
        except Exception as exc:  # noqa: BLE001 - only a diagnostic
            return describe(exc)

    async def list_tools(self) -> None:
        tools = await self.all_tools()
        names = [tool.name for tool in tools]
        self.tools = {tool.name: tool for tool in tools}
        expect(bool(names), "tools/list returned no tools")
        repeated = sorted({n for n in names if names.count(n) > 1})
        expect(not repeated, f"tools/list repeated names: {repeated}")
        prefixes = [p + SEPARATOR for p in (self.prefix, self.modern_prefix) if p]
        if self.prefix:
            unprefixed = [n for n in names if not any(n.startswith(p) for p in prefixes)]
            expect(not unprefixed, f"tools not prefixed {' or '.join(map(repr, prefixes))}: {unprefixed}")
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
        mark = self.wire.mark()
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
        reply = self.recorder.sampling_reply

        def answered(value: Any) -> bool:
            content = value.get("content") if isinstance(value, dict) else None
            return isinstance(content, dict) and content.get("text") == reply

        self.expect_input_travelled(mark, self.exposed("trigger-sampling-request"), "sampling", answered)

    async def elicitation(self) -> None:
        mark = self.wire.mark()
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
        self.expect_input_travelled(
            mark, self.exposed("trigger-elicitation-request"), "elicitation", self.accepted_with(0)
        )

    def accepted_with(self, index: int) -> Callable[[Any], bool]:
        """Tells the elicitation callback's `index`-th answer on the wire."""
        reply = self.recorder.elicitation_replies[index]

        def answered(value: Any) -> bool:
            return (
                isinstance(value, dict)
                and value.get("action") == reply.action
                and value.get("content") == reply.content
            )

        return answered

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
        if self.mode == "auto":
            await self.listen_for_update(uri)
        else:
            await self.subscribe_for_update(uri)

    async def start_updates(self) -> None:
        """server-everything sends updates for subscribed URIs only while its
        per-session simulation is on: toggle it on (once more if it was on)."""
        text = texts(await self.call("toggle-subscriber-updates"))
        if text.startswith("Stopped"):
            text = texts(await self.call("toggle-subscriber-updates"))
        expect(text.startswith("Started"), f"toggle-subscriber-updates answered {short(text)!r}")

    async def stop_updates(self) -> None:
        """Leaves the shared upstream quiet for later clients; failures here do not matter."""
        with anyio.move_on_after(5):
            try:
                await self.call("toggle-subscriber-updates")
            except Exception:  # noqa: BLE001 - best effort
                pass

    async def subscribe_for_update(self, uri: str) -> None:
        """Handshake era: resources/subscribe, the update arrives on the session's stream."""
        await self.client.subscribe_resource(uri)
        await self.start_updates()
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
            await self.stop_updates()
            with anyio.move_on_after(5):
                try:
                    await self.client.unsubscribe_resource(uri)
                except Exception:  # noqa: BLE001 - best effort
                    pass

    async def listen_for_update(self, uri: str) -> None:
        """2026-07-28: subscriptions/listen with resourceSubscriptions, the update
        arrives on that stream."""
        wait = min(self.timeout, 15.0)
        seen: list[str] = []
        mark = self.wire.mark()
        async with self.client.listen(resource_subscriptions=[uri]) as subscription:
            honored = subscription.honored.resource_subscriptions or []
            expect(uri in honored, f"subscriptions/listen acknowledged {honored}, not {uri}")
            try:
                await self.start_updates()
                with anyio.fail_after(wait):
                    async for event in subscription:
                        if isinstance(event, ResourceUpdated):
                            seen.append(event.uri)
                            if event.uri == uri:
                                break
                    else:
                        raise CheckFailed(f"the listen stream ended before an update for {uri} (updates: {seen})")
            except TimeoutError:
                raise CheckFailed(
                    f"no notifications/resources/updated for {uri} on the listen stream within {wait:.0f}s "
                    f"(updates seen there: {seen or 'none'}; outside it: {self.recorder.updated_uris or 'none'})"
                ) from None
            finally:
                await self.stop_updates()
        sent = [p.method for p in self.wire.since(mark)]
        expect(
            "resources/subscribe" not in sent,
            f"resources/subscribe was sent on a {MODERN_VERSION} connection: {sent}",
        )

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

    # ------------------------------------------------------------ the 2026-07-28 upstream

    async def modern_list_tools(self) -> None:
        assert self.modern_prefix is not None
        tools = await self.all_tools()
        names = [tool.name for tool in tools]
        self.tools.update({tool.name: tool for tool in tools})
        mine = [n for n in names if n.startswith(self.modern_prefix + SEPARATOR)]
        expect(bool(mine), f"no tool is prefixed '{self.modern_prefix}{SEPARATOR}'; listed {sorted(names)}")
        echo = self.exposed("echo", self.modern_prefix)
        expect(echo in mine, f"{echo} is not listed; '{self.modern_prefix}' tools: {sorted(mine)}")

    async def modern_call_tool(self) -> None:
        assert self.modern_prefix is not None
        message = f"interop modern echo {uuid.uuid4().hex[:8]}"
        echo = self.exposed("echo", self.modern_prefix)
        text = texts(await self.call_exposed(echo, {"message": message}))
        expect(message in text, f"{echo} answered {short(text)!r}, expected the message {message!r}")

    def confirm_tool(self) -> types.Tool | None:
        if self.modern_prefix is None:
            return None
        return self.tools.get(self.exposed("confirm", self.modern_prefix))

    async def modern_elicitation(self) -> None:
        tool = self.confirm_tool()
        assert tool is not None
        token = uuid.uuid4().hex[:8]
        arguments = sample_object(tool.input_schema, token, required_only=True)
        accepted: dict[str, Any] = {}

        def accept(params: types.ElicitRequestParams) -> types.ElicitResult:
            schema = getattr(params, "requested_schema", None)
            accepted.update(sample_object(schema, token, required_only=False))
            return types.ElicitResult(action="accept", content=dict(accepted))

        asked_before = len(self.recorder.elicitation_requests)
        self.recorder.elicitation_reply = accept
        mark = self.wire.mark()
        try:
            result = await self.call_exposed(tool.name, arguments)
        finally:
            self.recorder.elicitation_reply = self.recorder.everything_reply
        asked = len(self.recorder.elicitation_requests) - asked_before
        expect(asked == 1, f"{tool.name}: the elicitation callback ran {asked} times, expected once")
        params = self.recorder.elicitation_requests[-1]
        expect(
            isinstance(params, types.ElicitRequestFormParams),
            f"{tool.name}: expected a form elicitation, got {short(repr(params))}",
        )
        text = texts(result)
        shown = free_text(accepted, token) + free_text(arguments, token)
        if shown:
            missing = [s for s in shown if s not in text]
            expect(
                not missing,
                f"{tool.name} result lacks {missing} (accepted {accepted}, arguments {arguments}): {short(text)!r}",
            )
        else:
            # Nothing distinctive to look for: the accepted answer must read differently from a declined one.
            declined = await self.declined_text(tool.name, arguments)
            expect(text != declined, f"{tool.name} answers the same whether accepted or declined: {short(text)!r}")
        self.expect_input_travelled(
            mark, tool.name, "elicitation", self.accepted_with(len(self.recorder.elicitation_replies) - 1)
        )

    async def declined_text(self, name: str, arguments: dict[str, Any]) -> str:
        self.recorder.elicitation_reply = lambda params: types.ElicitResult(action="decline")
        try:
            return texts(await self.client.call_tool(name, arguments))
        finally:
            self.recorder.elicitation_reply = self.recorder.everything_reply


# ---------------------------------------------------------------- the run


async def run(
    url: str, mode: str, prefix: str, modern_prefix: str | None, timeout: float, wire_log: str | None
) -> int:
    recorder = Recorder()
    wire = Wire(wire_log)
    results: list[tuple[str, str | None]] = []

    def report(name: str, why: str | None) -> None:
        results.append((name, why))
        print(f"PASS {name}" if why is None else f"FAIL {name}: {why}", flush=True)

    http = httpx2.AsyncClient(timeout=HTTP_TIMEOUT, event_hooks={"request": [wire.on_request]})
    client = mcp.Client(
        streamable_http_client(url, http_client=http),
        mode=mode,
        sampling_callback=recorder.sampling,
        elicitation_callback=recorder.elicitation,
        message_handler=recorder.message,
        client_info=types.Implementation(name=f"manifold-interop-python-{mode}", version="1.0.0"),
        read_timeout_seconds=timeout,
        cache=None,
    )
    checks = Checks(url, mode, client, wire, recorder, prefix, modern_prefix, timeout)
    plan: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("era", checks.era),
        ("list-tools", checks.list_tools),
        ("call-tool", checks.call_tool),
        ("sampling", checks.sampling),
        ("elicitation", checks.elicitation),
        ("progress", checks.progress),
        ("subscription", checks.subscription),
        ("first-request", checks.first_request),
    ]
    if modern_prefix:
        plan += [
            ("modern-list-tools", checks.modern_list_tools),
            ("modern-call-tool", checks.modern_call_tool),
        ]
    connected = False
    try:
        # Bounds everything, the handshake and closing the session included.
        with anyio.fail_after(timeout * (len(plan) + 3)):
            async with http, client:
                connected = True
                report("connect", None)
                for name, check in plan:
                    await run_check(report, name, check, timeout)
                if checks.confirm_tool() is not None:
                    await run_check(report, "modern-elicitation", checks.modern_elicitation, timeout)
                elif modern_prefix:
                    print(f"note: {checks.exposed('confirm', modern_prefix)} is not listed; "
                          "no modern-elicitation check", flush=True)
    except Exception as exc:  # noqa: BLE001 - connecting or closing failed
        if connected:
            report("session", f"closing the session failed: {describe(exc)}")
        else:
            report("connect", f"{url} (mode={mode}): {describe(exc)}")
    if recorder.transport_errors:
        report("transport", f"transport errors seen: {recorder.transport_errors[:3]}")
    failed = sum(1 for _, why in results if why is not None)
    print(f"{len(results) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


async def run_check(
    report: Callable[[str, str | None], None], name: str, check: Callable[[], Awaitable[None]], timeout: float
) -> None:
    try:
        with anyio.fail_after(timeout):
            await check()
    except Exception as exc:  # noqa: BLE001 - a check's error is its failure
        report(name, describe(exc))
    else:
        report(name, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the gateway's Streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp")
    parser.add_argument(
        "--mode",
        choices=("auto", "legacy"),
        default="auto",
        help="the SDK's connect mode: auto probes server/discover and must reach 2026-07-28; "
        "legacy runs the initialize handshake (default: auto, the SDK's default)",
    )
    parser.add_argument(
        "--prefix", default="everything", help="prefix of server-everything's tools (default: everything)"
    )
    parser.add_argument(
        "--modern-prefix",
        metavar="PREFIX",
        help="prefix of a 2026-07-28 upstream (manifold demo) to check as well (default: none)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per check (default: 30)")
    parser.add_argument(
        "--wire-log",
        metavar="FILE",
        help="append every JSON-RPC message this client POSTs to FILE, one JSON object a line (default: none)",
    )
    args = parser.parse_args()
    if not hasattr(mcp, "Client"):
        print("FAIL setup: this mcp package has no mcp.Client (need mcp==2.3.0)", flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    if args.wire_log:
        open(args.wire_log, "w", encoding="utf-8").close()
    return anyio.run(run, args.url, args.mode, args.prefix, args.modern_prefix, args.timeout, args.wire_log)


if __name__ == "__main__":
    sys.exit(main())
