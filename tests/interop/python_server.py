"""A dual-era MCP server written with the official Python SDK, for interop runs.

`scripts/interop` runs the official conformance suite against this server
alone and through manifold (the server as an unprefixed Streamable HTTP
upstream), so that manifold is measured in front of a server it did not
write. It serves the fixture catalog the conformance scenarios look for
(`test_*` tools, prompts and `test://` resources, logging, completion,
subscriptions, and the diagnostic tools of the 2026-07-28 scenarios), in
both protocol eras, on one endpoint, the way the SDK's low-level `Server`
does it:

* handshake era (2024-11-05 ... 2025-11-25): `initialize` opens a session;
* stateless era (2026-07-28): every request carries its protocol version
  and client capabilities in `params._meta`; there is no session.

The point of the fixture is what its tools do when they need the client's
user, LLM or roots (elicitation, sampling, `roots/list`). Each era asks in
its own way:

* handshake era: a `sampling/createMessage` / `elicitation/create` /
  `roots/list` request to the client, on the session, while the call is
  open;
* 2026-07-28: an `input_required` result (`inputRequests`, a sealed
  `requestState`); the client retries the request with `inputResponses`.

The tools of the 2026-07-28 scenarios (`test_input_required_result_*`,
`test_missing_capability`, `test_streaming_elicitation`, and the prompt
`test_input_required_result_prompt`) ask in the era of the request. The four
tools of the handshake-era scenarios (`test_sampling`, `test_elicitation`,
`test_elicitation_sep1034_defaults`, `test_elicitation_sep1330_enums`) are
written the way most servers written for 2025-11-25 are, and that a dual-era
SDK keeps serving: they always ask on the session. A 2026-07-28 request has
no session to ask on, so there they answer with a tool error ("... no
back-channel for server-initiated requests"). That is the difference the
fixture exists for: a gateway that forwards a handshake client's call to
this server in the stateless era gets that tool error instead of a
question, although the server alone asks that very client fine.

Usage (run with .interop/venv/bin/python; stdlib and `mcp` only):

    python_server.py --port N   Streamable HTTP at http://127.0.0.1:N/mcp
                                (0 picks a free port); prints exactly one line,
                                `LISTENING http://127.0.0.1:PORT/mcp`, on
                                stdout once it accepts connections
    python_server.py --stdio    the same server on stdin/stdout; the first
                                request decides the connection's era

Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import socket
import struct
import sys
import warnings
import wave
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

# Logging, sampling and roots are deprecated as of 2026-07-28 (SEP-2577), but
# both eras still have them and the conformance scenarios exercise them.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

SERVER_NAME = "manifold-python-fixture"
Context = ServerRequestContext[Any, Any]

log = logging.getLogger("python_server")

# ---------------------------------------------------------------- media


def png_pixel() -> str:
    """A 1x1 opaque red PNG, base64-encoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte, then one red pixel
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def silent_wav() -> str:
    """10 ms of silence: 8 kHz mono 8-bit PCM WAV, base64-encoded."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(b"\x80" * 80)  # unsigned 8-bit: 128 is the zero line
    return base64.b64encode(buffer.getvalue()).decode()


RED_PIXEL_PNG = png_pixel()
SILENT_WAV = silent_wav()

# ---------------------------------------------------------------- the catalog

STATIC_TEXT_URI = "test://static-text"
STATIC_BINARY_URI = "test://static-binary"
WATCHED_URI = "test://watched-resource"
TEMPLATE_URI = "test://template/{id}/data"
CONTEXT_PROMPT = "test_input_required_result_prompt"

NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}


def one_string(field: str, about: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {field: {"type": "string", "description": about}},
        "required": [field],
    }


# SEP-1613's 2020-12 dialect plus the wider vocabulary of SEP-2106.
JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

# SEP-2243: clients also send the arguments marked `x-mcp-header` as
# `Mcp-Param-<name>` HTTP headers; the SDK checks those against the body.
HEADER_TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "description": "Where to run; gateways route on it", "x-mcp-header": "Region"},
        "priority": {"type": "integer", "description": "Scheduling priority", "x-mcp-header": "Priority"},
        "note": {"type": "string", "description": "Free text, body only"},
    },
    "required": ["region"],
}

# (name, description, input schema), in listing order.
TOOL_DEFINITIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("test_simple_text", "Returns one text block", NO_ARGS),
    ("test_image_content", "Returns a PNG image", NO_ARGS),
    ("test_audio_content", "Returns a WAV clip", NO_ARGS),
    ("test_embedded_resource", "Returns an embedded text resource", NO_ARGS),
    ("test_multiple_content_types", "Returns text, an image and a resource", NO_ARGS),
    ("test_tool_with_logging", "Sends three info log messages while running", NO_ARGS),
    ("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100", NO_ARGS),
    ("test_error_handling", "Always fails with a tool error", NO_ARGS),
    ("test_sampling", "Asks the calling client's LLM to answer a prompt", one_string("prompt", "The prompt")),
    ("test_elicitation", "Asks the calling client's user for a username and an email", one_string("message", "Shown")),
    ("test_elicitation_sep1034_defaults", "Elicits a form whose fields all have defaults (SEP-1034)", NO_ARGS),
    ("test_elicitation_sep1330_enums", "Elicits a form with every enum flavour (SEP-1330)", NO_ARGS),
    ("test_update_watched_resource", "Changes test://watched-resource and tells its subscribers", NO_ARGS),
    ("json_schema_2020_12_tool", "Has an input schema using JSON Schema 2020-12 keywords", JSON_SCHEMA_2020_12),
    ("test_logging_tool", "Sends log messages; in 2026-07-28 only when the request sets a logLevel", NO_ARGS),
    ("test_missing_capability", "Needs sampling; a 2026-07-28 request that lacks it gets -32021", NO_ARGS),
    ("test_streaming_elicitation", "Asks the user to confirm before it goes on", NO_ARGS),
    ("test_trigger_tool_change", "Announces a change of the tool list", NO_ARGS),
    ("test_trigger_prompt_change", "Announces a change of the prompt list", NO_ARGS),
    ("test_input_required_result_elicitation", "Asks the user's name (`user_name`), then greets them", NO_ARGS),
    ("test_input_required_result_sampling", "Asks the LLM for the capital of France (`capital_question`)", NO_ARGS),
    ("test_input_required_result_list_roots", "Asks for the client's roots (`client_roots`)", NO_ARGS),
    ("test_input_required_result_request_state", "Asks for a confirmation and checks its requestState", NO_ARGS),
    ("test_input_required_result_multiple_inputs", "Asks the user, the LLM and the roots at once", NO_ARGS),
    ("test_input_required_result_multi_round", "Asks two questions, one round after the other", NO_ARGS),
    ("test_input_required_result_tampered_state", "Refuses a requestState that was altered", NO_ARGS),
    ("test_input_required_result_capabilities", "Asks only what the request's clientCapabilities allow", NO_ARGS),
    ("test_mcp_param_headers", "Echoes arguments that also travel as Mcp-Param-* headers", HEADER_TOOL_SCHEMA),
]

TOOLS = [
    types.Tool(name=name, description=description, input_schema=schema)
    for name, description, schema in TOOL_DEFINITIONS
]

PROMPTS = [
    types.Prompt.model_validate(prompt)
    for prompt in [
        {"name": "test_simple_prompt", "description": "A prompt with no arguments"},
        {
            "name": "test_prompt_with_arguments",
            "description": "A prompt that weaves two arguments into its text",
            "arguments": [
                {"name": "arg1", "description": "First test argument", "required": True},
                {"name": "arg2", "description": "Second test argument", "required": True},
            ],
        },
        {
            "name": "test_prompt_with_embedded_resource",
            "description": "A prompt that embeds a resource",
            "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": True}],
        },
        {"name": "test_prompt_with_image", "description": "A prompt that carries an image"},
        {"name": CONTEXT_PROMPT, "description": "Asks the user what context to use (`user_context`) first"},
    ]
]

RESOURCES = [
    types.Resource.model_validate(resource)
    for resource in [
        {"uri": STATIC_TEXT_URI, "name": "static-text", "description": "A fixed text", "mimeType": "text/plain"},
        {"uri": STATIC_BINARY_URI, "name": "static-binary", "description": "A 1x1 PNG", "mimeType": "image/png"},
        {"uri": WATCHED_URI, "name": "watched-resource", "description": "Subscribe to it", "mimeType": "text/plain"},
    ]
]

RESOURCE_TEMPLATES = [
    types.ResourceTemplate(
        uri_template=TEMPLATE_URI,
        name="template-data",
        description="A JSON document made for any id",
        mime_type="application/json",
    )
]

# completion/complete suggestions, filtered by what the client typed.
ARG1_CHOICES = ["paris", "park", "party", "test-alpha", "test-beta"]
ID_CHOICES = ["1", "42", "123", "2024"]

# ---------------------------------------------------------------- eras


def is_stateless(ctx: Context) -> bool:
    """Whether `ctx` is a 2026-07-28 request. The SDK decides the era before
    any handler runs (over HTTP from the MCP-Protocol-Version header, over
    stdio from the connection's first request) and records the version the
    request is served at in `ctx.protocol_version`."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def session_key(ctx: Context) -> str:
    """Names the handshake-era session `ctx` belongs to: its Mcp-Session-Id
    over HTTP; over stdio the process is the one session."""
    request = ctx.request
    session_id = request.headers.get("mcp-session-id") if request is not None else None
    return session_id or "stdio"


# ---------------------------------------------------------------- asking the client
#
# A tool (or prompt) that needs the client is an async function of an
# `Asker`. It calls `await ask.ask({key: {"method": ..., "params": ...}})` and
# gets back each answer as a JSON object (an ElicitResult, CreateMessageResult
# or ListRootsResult), whichever era the request is in:
#
# * handshake era: `HandshakeAsker` sends each question to the client as a
#   server-to-client request on the call's own stream and waits for it;
# * 2026-07-28: `StatelessAsker` takes the answers the client sent with this
#   retry (`inputResponses`), plus those of earlier rounds it kept in
#   `requestState`; when one is missing it stops the function (`NeedInput`)
#   and the request answers `input_required` with the missing questions. On
#   the retry the function runs again from the top and gets further. So a
#   function that asks twice, one question after the other, is a multi-round
#   exchange in 2026-07-28 without knowing it.
#
# `converse` picks the asker by era; `on_session` always takes the
# `HandshakeAsker`, for the tools written the 2025-11-25 way.

# What answers each kind of question, and the client capability it needs.
ANSWER_TYPES: dict[str, type[types.Result]] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult,
    "roots/list": types.ListRootsResult,
}
REQUEST_TYPES: dict[str, type[Any]] = {
    "elicitation/create": types.ElicitRequest,
    "sampling/createMessage": types.CreateMessageRequest,
    "roots/list": types.ListRootsRequest,
}
CAPABILITY_FOR = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}


def declares(ctx: Context, capability: str) -> bool:
    """Whether the client declared `capability` (`sampling`, `elicitation`,
    `roots`): at `initialize` in the handshake era, in this request's
    `_meta` clientCapabilities in 2026-07-28."""
    declared = ctx.session.client_capabilities
    return declared is not None and getattr(declared, capability) is not None


class NeedInput(Exception):
    """2026-07-28: the request cannot finish until the client answers `questions`."""

    def __init__(self, questions: dict[str, dict[str, Any]]) -> None:
        super().__init__(sorted(questions))
        self.questions = questions


class Unanswered(Exception):
    """Handshake era: the client could not be asked, or did not answer; says why."""


def as_json(model: types.Result) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


class HandshakeAsker:
    """Asks with server-to-client requests on the caller's session."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def ask(self, questions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        answers = {}
        for key, question in questions.items():
            method = question["method"]
            capability = CAPABILITY_FOR[method]
            if not declares(self.ctx, capability):
                raise Unanswered(f"the client did not declare the {capability} capability, so no {method} was sent")
            request = REQUEST_TYPES[method].model_validate(question)
            # related_request_id puts the question on this call's own response
            # stream, where the client (or a gateway) expects it.
            metadata = ServerMessageMetadata(related_request_id=self.ctx.request_id)
            try:
                answer = await self.ctx.session.send_request(request, ANSWER_TYPES[method], metadata=metadata)
            except MCPError as err:  # the client refused, or no back-channel (NoBackChannelError)
                raise Unanswered(f"{method} failed: {err.message}") from err
            except ValidationError as err:
                raise Unanswered(f"{method} got an answer of the wrong shape: {err}") from err
            answers[key] = as_json(answer)
        return answers


class StatelessAsker:
    """Asks with `input_required` results (2026-07-28, SEP-2322)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        params = ctx.params or {}
        # The SDK has already validated the retry's shape. `requestState` is
        # the plaintext this server sealed: `RequestStateBoundary` (a server
        # middleware) verified and opened it before any handler runs, and
        # refuses (-32602) one that was altered or minted for another request.
        self.responses: dict[str, Any] = params.get("inputResponses") or {}
        state = params.get("requestState")
        self.resumed = state is not None
        self.earlier: dict[str, Any] = json.loads(state)["answers"] if state is not None else {}
        # Every answer the function has used this round, kept for the next.
        self.used: dict[str, dict[str, Any]] = {}

    async def ask(self, questions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        missing = {}
        for key, question in questions.items():
            raw = self.earlier.get(key, self.responses.get(key))
            if raw is None:
                missing[key] = question
                continue
            self.used[key] = self.parse(key, question["method"], raw)
        if missing:
            self.require_capabilities(missing)
            raise NeedInput(missing)
        return {key: self.used[key] for key in questions}

    @staticmethod
    def parse(key: str, method: str, raw: Any) -> dict[str, Any]:
        try:
            return as_json(ANSWER_TYPES[method].model_validate(raw))
        except ValidationError:
            raise MCPError(types.INVALID_PARAMS, f"inputResponses.{key} is not an answer to {method}") from None

    def require_capabilities(self, questions: dict[str, dict[str, Any]]) -> None:
        """A server must not ask what the request's clientCapabilities do not
        cover; it refuses with -32021, naming what is missing, instead."""
        needed = {CAPABILITY_FOR[question["method"]] for question in questions.values()}
        missing = sorted(capability for capability in needed if not declares(self.ctx, capability))
        if missing:
            required = {capability: {} for capability in missing}
            raise MCPError(
                types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                f"this request needs the client capabilities {', '.join(missing)}",
                {"requiredCapabilities": required},
            )

    def input_required(self, need: NeedInput) -> types.InputRequiredResult:
        # The state carries the answers used so far; RequestStateBoundary
        # seals it (encrypted, bound to this method, name and arguments, with
        # an expiry) on the way out.
        return types.InputRequiredResult.model_validate(
            {"inputRequests": need.questions, "requestState": json.dumps({"answers": self.used})}
        )


Asker = HandshakeAsker | StatelessAsker


async def converse(ctx: Context, body: Callable[[Asker], Awaitable[Any]], on_unanswered: Callable[[str], Any]) -> Any:
    """Runs `body` with the asker of the request's era; see above."""
    if is_stateless(ctx):
        asker = StatelessAsker(ctx)
        try:
            return await body(asker)
        except NeedInput as need:
            return asker.input_required(need)
    return await on_session(ctx, body, on_unanswered)


async def on_session(ctx: Context, body: Callable[[Asker], Awaitable[Any]], on_unanswered: Callable[[str], Any]) -> Any:
    """Runs `body` asking on the session, whatever the request's era; in
    2026-07-28 the SDK refuses to send (NoBackChannelError), and `body`
    ends with `on_unanswered` saying so."""
    try:
        return await body(HandshakeAsker(ctx))
    except Unanswered as why:
        return on_unanswered(str(why))


def elicitation(message: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def sampling(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": max_tokens,
        },
    }


ROOTS = {"method": "roots/list", "params": {}}
NAME_QUESTION = elicitation("What is your name?", {"name": {"type": "string"}}, ["name"])
CONFIRM_QUESTION = elicitation("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])


def describe_elicitation(label: str, answer: dict[str, Any]) -> str:
    return f"{label}: action={answer['action']}, content={json.dumps(answer.get('content'))}"


def accepted(answer: dict[str, Any], field: str) -> Any:
    """Field `field` of an accepted elicitation, or None."""
    return (answer.get("content") or {}).get(field) if answer["action"] == "accept" else None


def sampled_text(answer: dict[str, Any]) -> str:
    content = answer["content"]
    return content["text"] if content.get("type") == "text" else json.dumps(content)


# ---------------------------------------------------------------- the fixture's state


class Fixture:
    """Process-wide state: the watched resource, who wants to hear about
    changes in either era, and each handshake session's log level."""

    def __init__(self) -> None:
        self.watched_revision = 0
        # 2026-07-28: open subscriptions/listen streams hear from this bus.
        self.bus = InMemorySubscriptionBus()
        # Handshake era: sessions, told on their standalone stream (the GET
        # stream over HTTP). The SDK offers no hook for a session's end, so
        # ended ones stay here; notifying them is a silent no-op.
        self.sessions: list[Any] = []
        self.subscribers: dict[str, dict[str, Any]] = {}  # uri -> session key -> session
        self.min_levels: dict[str, str] = {}  # session key -> least severe level wanted

    async def touch_watched(self) -> int:
        self.watched_revision += 1
        for session in list(self.subscribers.get(WATCHED_URI, {}).values()):
            await session.send_resource_updated(WATCHED_URI)
        await self.bus.publish(ResourceUpdated(uri=WATCHED_URI))
        return self.watched_revision

    async def announce(self, what: str) -> None:
        for session in list(self.sessions):
            if what == "tools":
                await session.send_tool_list_changed()
            else:
                await session.send_prompt_list_changed()
        await self.bus.publish(ToolsListChanged() if what == "tools" else PromptsListChanged())


LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

# ---------------------------------------------------------------- tools


def text(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)])


def tool_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def content_result(*blocks: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult.model_validate({"content": list(blocks)})


IMAGE_BLOCK = {"type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png"}


async def log_steps(ctx: Context, fixture: Fixture, messages: list[str]) -> None:
    """Sends `messages` as info log notifications on the call's stream, about
    50 ms apart. In the handshake era the session's `logging/setLevel`
    filters them; in 2026-07-28 the SDK sends them only when the request's
    `_meta` opted in with a logLevel."""
    for i, message in enumerate(messages):
        if i:
            await anyio.sleep(0.05)
        wanted = fixture.min_levels.get(session_key(ctx), "debug")
        if is_stateless(ctx) or LOG_LEVELS.index("info") >= LOG_LEVELS.index(wanted):
            await ctx.session.send_log_message("info", message, SERVER_NAME, related_request_id=ctx.request_id)


async def progress_steps(ctx: Context) -> None:
    """Progress 0, 50 and 100 of 100, about 50 ms apart; sent only when the
    request carried a progressToken (the SDK knows the token)."""
    for i, progress in enumerate([0, 50, 100]):
        if i:
            await anyio.sleep(0.05)
        await ctx.session.report_progress(progress, 100, f"{progress} of 100")


SEP1034_FORM = elicitation(
    "Please review these details; every field has a default.",
    {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
)


def titled(prefix: str, titles: list[str]) -> list[dict[str, str]]:
    return [{"const": f"{prefix}{i}", "title": title} for i, title in enumerate(titles, 1)]


SEP1330_FORM = elicitation(
    "Please pick from each kind of list.",
    {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "oneOf": titled("value", ["First Option", "Second Option", "Third Option"])},
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {"anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"])},
        },
    },
)


ToolBody = Callable[[Asker], Awaitable[types.CallToolResult]]


def ask_once(key: str, question: dict[str, Any], finish: Callable[[dict[str, Any]], str]) -> ToolBody:
    """A tool body that asks one question and answers `finish(answer)`."""

    async def body(ask: Asker) -> types.CallToolResult:
        answers = await ask.ask({key: question})
        return text(finish(answers[key]))

    return body


async def greet(ask: Asker) -> types.CallToolResult:
    answer = (await ask.ask({"user_name": NAME_QUESTION}))["user_name"]
    name = accepted(answer, "name")
    return text(f"Hello, {name}!" if name else describe_elicitation("No name given", answer))


async def confirm_with_state(ask: Asker, verdict: str) -> types.CallToolResult:
    # In 2026-07-28 an answer counts only when the requestState that asked
    # for it came back with it (the boundary has verified it by now).
    if isinstance(ask, StatelessAsker) and not ask.resumed:
        raise NeedInput({"confirm": CONFIRM_QUESTION})
    answer = (await ask.ask({"confirm": CONFIRM_QUESTION}))["confirm"]
    return text(f"{verdict}: the requestState came back intact; ok={json.dumps(accepted(answer, 'ok'))}")


async def ask_everything(ask: Asker) -> types.CallToolResult:
    answers = await ask.ask(
        {
            "user_name": NAME_QUESTION,
            "greeting": sampling("Generate a greeting", 50),
            "client_roots": ROOTS,
        }
    )
    name = accepted(answers["user_name"], "name") or "(declined)"
    greeting = sampled_text(answers["greeting"])
    return text(f"name={name}, greeting={greeting}, roots={len(answers['client_roots']['roots'])}")


async def two_rounds(ask: Asker) -> types.CallToolResult:
    name_question = elicitation("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
    first = await ask.ask({"step1": name_question})
    name = accepted(first["step1"], "name") or "someone"
    color_question = elicitation("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
    second = await ask.ask({"step2": color_question})
    color = accepted(second["step2"], "color") or "unknown"
    return text(f"{name}'s favorite color is {color}.")


def ask_what_is_declared(ctx: Context) -> ToolBody:
    """Asks one question of each kind the client declared it can answer."""
    questions = {
        "sampling": sampling("Say hello", 20),
        "elicitation": NAME_QUESTION,
        "roots": ROOTS,
    }
    wanted = {kind: question for kind, question in questions.items() if declares(ctx, kind)}

    async def body(ask: Asker) -> types.CallToolResult:
        if not wanted:
            return text("The client declared none of sampling, elicitation and roots, so nothing was asked.")
        answers = await ask.ask(wanted)
        return text(f"Answered: {', '.join(sorted(answers))}")

    return body


def roots_answer(answer: dict[str, Any]) -> str:
    uris = [root["uri"] for root in answer["roots"]]
    return f"The client has {len(uris)} root(s): {', '.join(uris)}"


# The tools of the handshake-era scenarios, written the 2025-11-25 way: they
# ask on the session in either era (see the module docstring).
SESSION_ONLY_TOOLS = {
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
}


def make_call_tool(fixture: Fixture) -> Callable[[Context, types.CallToolRequestParams], Awaitable[Any]]:
    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> Any:
        name, args = params.name, params.arguments or {}

        # Tools that answer at once.
        if name == "test_simple_text":
            return text("This is a simple text response for testing.")
        if name == "test_image_content":
            return content_result(IMAGE_BLOCK)
        if name == "test_audio_content":
            return content_result({"type": "audio", "data": SILENT_WAV, "mimeType": "audio/wav"})
        if name == "test_embedded_resource":
            return content_result(
                {
                    "type": "resource",
                    "resource": {
                        "uri": "test://embedded-resource",
                        "mimeType": "text/plain",
                        "text": "This is an embedded resource content.",
                    },
                }
            )
        if name == "test_multiple_content_types":
            return content_result(
                {"type": "text", "text": "Multiple content types test:"},
                IMAGE_BLOCK,
                {
                    "type": "resource",
                    "resource": {
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": json.dumps({"test": "data", "value": 123}),
                    },
                },
            )
        if name in ("test_tool_with_logging", "test_logging_tool"):
            steps = ["Tool execution started", "Tool processing data", "Tool execution completed"]
            await log_steps(ctx, fixture, steps)
            return text("Logged three messages at info level.")
        if name == "test_tool_with_progress":
            await progress_steps(ctx)
            return text("Progress reported: 0, 50 and 100 of 100.")
        if name == "test_error_handling":
            return tool_error("This tool intentionally returns an error for testing")
        if name == "test_update_watched_resource":
            revision = await fixture.touch_watched()
            return text(f"{WATCHED_URI} is now at revision {revision}.")
        if name == "json_schema_2020_12_tool":
            return text(f"Received: {json.dumps(args)}")
        if name == "test_mcp_param_headers":
            return text(f"region={args.get('region')}, priority={args.get('priority')}, note={args.get('note')}")
        if name in ("test_trigger_tool_change", "test_trigger_prompt_change"):
            what = "tools" if name == "test_trigger_tool_change" else "prompts"
            await fixture.announce(what)
            return text(f"Announced a change of the {what} list.")

        # Tools that need the client.
        body: ToolBody
        if name == "test_sampling":
            if not isinstance(args.get("prompt"), str):
                return tool_error("test_sampling needs a string argument `prompt`")
            body = ask_once("llm", sampling(args["prompt"], 100), lambda a: f"LLM response: {sampled_text(a)}")
        elif name == "test_elicitation":
            if not isinstance(args.get("message"), str):
                return tool_error("test_elicitation needs a string argument `message`")
            form = elicitation(
                args["message"],
                {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                },
                ["username", "email"],
            )
            body = ask_once("form", form, lambda a: describe_elicitation("User response", a))
        elif name == "test_elicitation_sep1034_defaults":
            body = ask_once("form", SEP1034_FORM, lambda a: describe_elicitation("Elicitation completed", a))
        elif name == "test_elicitation_sep1330_enums":
            body = ask_once("form", SEP1330_FORM, lambda a: describe_elicitation("Elicitation completed", a))
        elif name == "test_missing_capability":
            body = ask_once("arithmetic", sampling("What is 2 + 2?", 20), lambda a: f"LLM answered: {sampled_text(a)}")
        elif name == "test_streaming_elicitation":
            form = elicitation("Continue with the operation?", {"proceed": {"type": "boolean"}}, ["proceed"])
            body = ask_once("confirmation", form, lambda a: describe_elicitation("Confirmation", a))
        elif name == "test_input_required_result_elicitation":
            body = greet
        elif name == "test_input_required_result_sampling":
            question = sampling("What is the capital of France?", 100)
            body = ask_once("capital_question", question, lambda a: f"LLM response: {sampled_text(a)}")
        elif name == "test_input_required_result_list_roots":
            body = ask_once("client_roots", ROOTS, roots_answer)
        elif name == "test_input_required_result_request_state":
            body = lambda ask: confirm_with_state(ask, "state-ok")  # noqa: E731
        elif name == "test_input_required_result_tampered_state":
            body = lambda ask: confirm_with_state(ask, "state verified")  # noqa: E731
        elif name == "test_input_required_result_multiple_inputs":
            body = ask_everything
        elif name == "test_input_required_result_multi_round":
            body = two_rounds
        elif name == "test_input_required_result_capabilities":
            body = ask_what_is_declared(ctx)
        else:
            # An unknown tool is a protocol error, not a tool error.
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}", {"name": name})
        if name in SESSION_ONLY_TOOLS:
            return await on_session(ctx, body, tool_error)
        return await converse(ctx, body, tool_error)

    return call_tool


# ---------------------------------------------------------------- prompts


def user_text(message: str) -> dict[str, Any]:
    return {"role": "user", "content": {"type": "text", "text": message}}


def prompt_messages(name: str, args: dict[str, str]) -> list[dict[str, Any]]:
    def arg(key: str) -> str:
        if key not in args:
            raise MCPError(types.INVALID_PARAMS, f"prompt {name} needs the argument `{key}`")
        return args[key]

    if name == "test_simple_prompt":
        return [user_text("This is a simple prompt for testing.")]
    if name == "test_prompt_with_arguments":
        return [user_text(f"Prompt with arguments: arg1='{arg('arg1')}', arg2='{arg('arg2')}'")]
    if name == "test_prompt_with_embedded_resource":
        embedded = {
            "uri": arg("resourceUri"),
            "mimeType": "text/plain",
            "text": "Embedded resource content for testing.",
        }
        return [
            {"role": "user", "content": {"type": "resource", "resource": embedded}},
            user_text("Please process the embedded resource above."),
        ]
    if name == "test_prompt_with_image":
        return [{"role": "user", "content": IMAGE_BLOCK}, user_text("Please analyze the image above.")]
    raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {name}", {"name": name})


async def context_prompt(ask: Asker) -> types.GetPromptResult:
    question = elicitation("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
    answer = (await ask.ask({"user_context": question}))["user_context"]
    context = accepted(answer, "context")
    wording = f"Answer with this context in mind: {context}" if context else "Answer without any particular context."
    return types.GetPromptResult.model_validate(
        {"description": "A prompt built from the user's answer", "messages": [user_text(wording)]}
    )


def prompt_unanswered(why: str) -> Any:
    raise MCPError(types.INVALID_REQUEST, f"{CONTEXT_PROMPT} needs the user's answer: {why}")


async def get_prompt(ctx: Context, params: types.GetPromptRequestParams) -> Any:
    if params.name == CONTEXT_PROMPT:
        return await converse(ctx, context_prompt, prompt_unanswered)
    messages = prompt_messages(params.name, params.arguments or {})
    return types.GetPromptResult.model_validate({"messages": messages})


async def list_prompts(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=PROMPTS)


# ---------------------------------------------------------------- resources


def make_read_resource(fixture: Fixture) -> Callable[[Context, types.ReadResourceRequestParams], Awaitable[Any]]:
    async def read_resource(ctx: Context, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = params.uri
        if uri == STATIC_TEXT_URI:
            words = "This is the content of the static text resource."
            contents = {"uri": uri, "mimeType": "text/plain", "text": words}
        elif uri == STATIC_BINARY_URI:
            contents = {"uri": uri, "mimeType": "image/png", "blob": RED_PIXEL_PNG}
        elif uri == WATCHED_URI:
            revision = fixture.watched_revision
            contents = {"uri": uri, "mimeType": "text/plain", "text": f"Watched resource, revision {revision}."}
        elif (item := template_id(uri)) is not None:
            document = {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}
            contents = {"uri": uri, "mimeType": "application/json", "text": json.dumps(document)}
        else:
            # SEP-2164: an unknown resource is -32602 naming the URI.
            raise MCPError(types.INVALID_PARAMS, "Resource not found", {"uri": uri})
        return types.ReadResourceResult.model_validate({"contents": [contents]})

    return read_resource


def template_id(uri: str) -> str | None:
    """The `{id}` of a URI matching `test://template/{id}/data`, or None."""
    prefix, suffix = "test://template/", "/data"
    if not (uri.startswith(prefix) and uri.endswith(suffix)):
        return None
    item = uri[len(prefix) : -len(suffix)]
    return item if item and "/" not in item else None


async def list_resources(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=RESOURCES)


async def list_resource_templates(
    ctx: Context, params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=RESOURCE_TEMPLATES)


# ---------------------------------------------------------------- handshake-era methods


def make_session_handlers(fixture: Fixture) -> dict[str, Any]:
    """`resources/subscribe`, `resources/unsubscribe`, `logging/setLevel` and
    `notifications/initialized`: the handshake era's per-session state. (In
    2026-07-28 the SDK answers the three methods -32601; `subscriptions/listen`
    replaces them.)"""

    async def subscribe(ctx: Context, params: types.SubscribeRequestParams) -> types.EmptyResult:
        fixture.subscribers.setdefault(params.uri, {})[session_key(ctx)] = ctx.session
        return types.EmptyResult()

    async def unsubscribe(ctx: Context, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        fixture.subscribers.get(params.uri, {}).pop(session_key(ctx), None)
        return types.EmptyResult()

    async def set_logging_level(ctx: Context, params: types.SetLevelRequestParams) -> types.EmptyResult:
        fixture.min_levels[session_key(ctx)] = params.level
        return types.EmptyResult()

    async def initialized(ctx: Context, params: types.NotificationParams) -> None:
        fixture.sessions.append(ctx.session)

    return {
        "on_subscribe_resource": subscribe,
        "on_unsubscribe_resource": unsubscribe,
        "on_set_logging_level": set_logging_level,
        "initialized": initialized,
    }


async def complete(ctx: Context, params: types.CompleteRequestParams) -> types.CompleteResult:
    ref, argument = params.ref, params.argument
    choices: list[str] = []
    if isinstance(ref, types.PromptReference) and ref.name == "test_prompt_with_arguments" and argument.name == "arg1":
        choices = ARG1_CHOICES
    elif isinstance(ref, types.ResourceTemplateReference) and ref.uri == TEMPLATE_URI and argument.name == "id":
        choices = ID_CHOICES
    values = [choice for choice in choices if choice.startswith(argument.value)]
    return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))


async def list_tools(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


# ---------------------------------------------------------------- the server


class FixtureServer(Server[Any]):
    """The SDK's `Server`, announcing list changes and subscriptions in the
    handshake era too. (The HTTP session manager builds `initialize` answers
    from `create_initialization_options()` with no arguments, which would
    announce none.)"""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        every_change = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
        return super().create_initialization_options(
            notification_options or every_change, experimental_capabilities, extensions
        )


def build_server() -> FixtureServer:
    fixture = Fixture()
    handshake = make_session_handlers(fixture)
    server = FixtureServer(
        SERVER_NAME,
        version="1.0.0",
        instructions="Fixture for the MCP conformance suite, written with the Python SDK; both protocol eras.",
        on_list_tools=list_tools,
        on_call_tool=make_call_tool(fixture),
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=make_read_resource(fixture),
        on_subscribe_resource=handshake["on_subscribe_resource"],
        on_unsubscribe_resource=handshake["on_unsubscribe_resource"],
        on_subscriptions_listen=ListenHandler(fixture.bus),
        on_completion=complete,
        on_set_logging_level=handshake["on_set_logging_level"],
    )
    server.add_notification_handler("notifications/initialized", types.NotificationParams, handshake["initialized"])
    # Seals requestState on the way out and verifies it on the way in, under
    # a key made at start-up (state does not survive a restart).
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=SERVER_NAME))
    return server


async def serve_http(server: FixtureServer, port: int) -> None:
    # host="127.0.0.1" turns on the SDK's DNS-rebinding protection: only
    # loopback Host and Origin headers are let through.
    app = server.streamable_http_app(host="127.0.0.1")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    bound = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    web = uvicorn.Server(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(web.serve, [listener])
        while not web.started:
            if web.should_exit:
                return
            await anyio.sleep(0.02)
        # Scripts wait for this exact line; stdout is a pipe, so flush.
        print(f"LISTENING http://127.0.0.1:{bound}/mcp", flush=True)
        log.warning("serving MCP on http://127.0.0.1:%d/mcp", bound)


async def serve_stdio(server: FixtureServer) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    transport = parser.add_mutually_exclusive_group(required=True)
    transport.add_argument("--port", type=int, help="serve Streamable HTTP on 127.0.0.1:PORT (0: any free port)")
    transport.add_argument("--stdio", action="store_true", help="serve stdio")
    options = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="python_server: %(message)s")
    server = build_server()
    if options.stdio:
        anyio.run(serve_stdio, server)
    else:
        anyio.run(serve_http, server, options.port)


if __name__ == "__main__":
    main()
