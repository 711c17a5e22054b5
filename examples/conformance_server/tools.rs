//! The fixture's tools: their listing and what each one does when called.
//!
//! Most return fixed content. The interesting ones talk to the client that
//! called them while the call is open:
//!
//! * log messages and progress, on the call's own response stream;
//! * questions for the client's user, LLM or roots (elicitation, sampling,
//!   `roots/list`). Those are written once as step functions and run by
//!   [`input::drive`]: in the handshake era the fixture sends them as
//!   server-to-client requests on the caller's connection (rmcp routes a
//!   request made inside a handler to that request's stream, which is what a
//!   gateway must preserve); in 2026-07-28 the call answers with an
//!   `InputRequiredResult` and the client retries with its answers.
//!
//! The `test_input_required_result_*`, `test_missing_capability`,
//! `test_streaming_elicitation`, `test_logging_tool` and `test_trigger_*`
//! tools are the diagnostics the 2026-07-28 conformance scenarios look for;
//! each also behaves sensibly for a handshake-era client. The tools of the
//! tasks extension's scenarios (`greet`, `slow_compute`, …) live in
//! `tasks.rs`, which [`call`] hands them to.

// Logging and sampling are deprecated in 2026-07-28, but the suite exercises
// them, so the fixture implements them.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CreateMessageResult,
    ElicitResult, JsonObject, ListToolsResult, LoggingLevel, ProgressNotificationParam,
    ServerRequest, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};

use crate::content::{RED_PIXEL_PNG, WATCHED_URI, complete_result, silent_wav_base64};
use crate::handler::{ConformanceServer, ListChange, is_stateless};
use crate::input::{self, Origin, Outcome, Retry, Round, Step};
use crate::tasks;

/// Pause between the steps of the logging and progress tools (the scenarios
/// ask for "about 50 ms").
const STEP: Duration = Duration::from_millis(50);

/// The tool whose arguments travel in `Mcp-Param-*` headers too (SEP-2243).
const HEADER_TOOL: &str = "test_mcp_param_headers";

pub fn list() -> Result<ListToolsResult, ErrorData> {
    complete_result(json!({ "tools": definitions() }))
}

/// The definition of tool `name`, so the HTTP transport can check the
/// `Mcp-Param-*` headers of a call against its `x-mcp-header` properties.
pub fn find(name: &str) -> Option<Tool> {
    let tool = definitions()
        .into_iter()
        .find(|tool| tool["name"] == name)?;
    serde_json::from_value(tool).ok()
}

/// Every tool, the ones of the tasks scenarios (`tasks.rs`) last.
fn definitions() -> Vec<Value> {
    let mut tools = own_definitions();
    tools.extend(tasks::definitions());
    tools
}

fn own_definitions() -> Vec<Value> {
    let no_args = json!({ "type": "object", "properties": {} });
    let one_string = |field: &str, about: &str| {
        json!({
            "type": "object",
            "properties": { field: { "type": "string", "description": about } },
            "required": [field],
        })
    };
    let tool = |name: &str, description: &str, schema: &Value| json!({ "name": name, "description": description, "inputSchema": schema });
    vec![
        tool("test_simple_text", "Returns one text block", &no_args),
        tool("test_image_content", "Returns a PNG image", &no_args),
        tool("test_audio_content", "Returns a WAV clip", &no_args),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            &no_args,
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and a resource",
            &no_args,
        ),
        tool(
            "test_tool_with_logging",
            "Sends three info log messages while running",
            &no_args,
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100",
            &no_args,
        ),
        tool(
            "test_error_handling",
            "Always fails with a tool error",
            &no_args,
        ),
        tool(
            "test_sampling",
            "Asks the calling client's LLM to answer a prompt",
            &one_string("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Asks the calling client's user for a username and an email",
            &one_string("message", "The message to show the user"),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicits a form whose fields all carry default values (SEP-1034)",
            &no_args,
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicits a form with every enum flavour (SEP-1330)",
            &no_args,
        ),
        tool(
            "test_update_watched_resource",
            "Changes test://watched-resource and notifies its subscribers",
            &no_args,
        ),
        tool(
            "test_ping_client",
            "Pings the calling client and says whether it answered (handshake era only)",
            &no_args,
        ),
        tool(
            "json_schema_2020_12_tool",
            "Has an input schema using JSON Schema 2020-12 keywords (SEP-1613, SEP-2106)",
            &json_schema_2020_12(),
        ),
        tool(
            "test_logging_tool",
            "Sends log messages; in 2026-07-28 only when the request sets a logLevel",
            &no_args,
        ),
        tool(
            "test_missing_capability",
            "Needs the client's sampling capability; 2026-07-28 requests without it get -32021",
            &no_args,
        ),
        tool(
            "test_streaming_elicitation",
            "Asks the user to confirm; the answer comes back on the call's own stream",
            &no_args,
        ),
        tool(
            "test_trigger_tool_change",
            "Announces a change of the tool list to everyone listening for one",
            &no_args,
        ),
        tool(
            "test_trigger_prompt_change",
            "Announces a change of the prompt list to everyone listening for one",
            &no_args,
        ),
        tool(
            "test_input_required_result_elicitation",
            "Asks the user's name (input request `user_name`), then greets them",
            &no_args,
        ),
        tool(
            "test_input_required_result_sampling",
            "Asks the LLM for the capital of France (input request `capital_question`)",
            &no_args,
        ),
        tool(
            "test_input_required_result_list_roots",
            "Asks for the client's roots (input request `client_roots`)",
            &no_args,
        ),
        tool(
            "test_input_required_result_request_state",
            "Asks for a confirmation and checks the requestState it gets back",
            &no_args,
        ),
        tool(
            "test_input_required_result_multiple_inputs",
            "Asks the user, the LLM and the roots at once, keeping answers in requestState",
            &no_args,
        ),
        tool(
            "test_input_required_result_multi_round",
            "Asks two questions one after the other, with a new requestState each round",
            &no_args,
        ),
        tool(
            "test_input_required_result_tampered_state",
            "Refuses a requestState that was altered (-32602)",
            &no_args,
        ),
        tool(
            "test_input_required_result_capabilities",
            "Asks only what the request's clientCapabilities allow",
            &no_args,
        ),
        tool(
            HEADER_TOOL,
            "Echoes arguments that clients also send as Mcp-Param-Region and Mcp-Param-Priority headers",
            &json!({
                "type": "object",
                "properties": {
                    "region": {
                        "type": "string",
                        "description": "Where to run; routed on by intermediaries",
                        "x-mcp-header": "Region",
                    },
                    "priority": {
                        "type": "integer",
                        "description": "Scheduling priority",
                        "x-mcp-header": "Priority",
                    },
                    "note": { "type": "string", "description": "Free text, body only" },
                },
                "required": ["region"],
            }),
        ),
    ]
}

/// SEP-1613's 2020-12 dialect plus the wider vocabulary SEP-2106 allows:
/// `$anchor`, composition (`allOf`/`anyOf`) and conditionals.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" },
                },
            },
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" },
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"],
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false,
    })
}

/// Runs the tool `request` names. An unknown name is a protocol error
/// (-32602); a tool that runs and fails, including for bad arguments, is a
/// tool error.
pub async fn call(
    server: &ConformanceServer,
    request: CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    if tasks::serves(&request.name) {
        return tasks::call(server, request, context).await;
    }
    let args = request.arguments.clone().unwrap_or_default();
    let name = request.name.as_ref();
    let text_arg = |field: &str| args.get(field).and_then(Value::as_str).map(str::to_owned);
    let done = |result: CallToolResult| Ok(CallToolResponse::from(result));
    // Tools that only return content answer in their arm; tools that ask the
    // client something yield their step function, run below.
    let step: Box<ToolStep<'_>> = match name {
        "test_simple_text" => return done(text("This is a simple text response for testing.")),
        "test_image_content" => {
            return done(complete_result(json!({
                "content": [{ "type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png" }]
            }))?);
        }
        "test_audio_content" => {
            return done(complete_result(json!({
                "content": [{ "type": "audio", "data": silent_wav_base64(), "mimeType": "audio/wav" }]
            }))?);
        }
        "test_embedded_resource" => {
            return done(complete_result(json!({
                "content": [{
                    "type": "resource",
                    "resource": {
                        "uri": "test://embedded-resource",
                        "mimeType": "text/plain",
                        "text": "This is an embedded resource content.",
                    },
                }]
            }))?);
        }
        "test_multiple_content_types" => {
            return done(complete_result(json!({
                "content": [
                    { "type": "text", "text": "Multiple content types test:" },
                    { "type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png" },
                    {
                        "type": "resource",
                        "resource": {
                            "uri": "test://mixed-content-resource",
                            "mimeType": "application/json",
                            "text": json!({ "test": "data", "value": 123 }).to_string(),
                        },
                    },
                ]
            }))?);
        }
        "test_tool_with_logging" | "test_logging_tool" => {
            let steps = [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ];
            for (i, message) in steps.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(STEP).await;
                }
                server.log(context, LoggingLevel::Info, message).await;
            }
            return done(text("Logged three messages at info level."));
        }
        "test_tool_with_progress" => {
            let token = context.meta.get_progress_token();
            for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(STEP).await;
                }
                if let Some(token) = &token {
                    let update = ProgressNotificationParam::new(token.clone(), progress)
                        .with_total(100.0)
                        .with_message(format!("{progress} of 100"));
                    if let Err(err) = context.peer.notify_progress(update).await {
                        eprintln!("conformance_server: progress not delivered: {err}");
                    }
                }
            }
            return done(text("Progress reported: 0, 50 and 100 of 100."));
        }
        "test_error_handling" => {
            return done(CallToolResult::error(vec![ContentBlock::text(
                "This tool intentionally returns an error for testing",
            )]));
        }
        "test_sampling" => match text_arg("prompt") {
            Some(prompt) => {
                Box::new(move |round| sample_step(round, "llm", &prompt, 100, "LLM response"))
            }
            None => return done(tool_error("test_sampling needs a string argument `prompt`")),
        },
        "test_elicitation" => match text_arg("message") {
            Some(message) => {
                let form = json!({
                    "message": message,
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "username": { "type": "string", "description": "User's response" },
                            "email": { "type": "string", "description": "User's email address" },
                        },
                        "required": ["username", "email"],
                    },
                });
                Box::new(move |round| elicit_step(round, "form", &form, "User response"))
            }
            None => {
                return done(tool_error(
                    "test_elicitation needs a string argument `message`",
                ));
            }
        },
        "test_elicitation_sep1034_defaults" => {
            let form = json!({
                "message": "Please review these details; every field has a default.",
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "description": "User name", "default": "John Doe" },
                        "age": { "type": "integer", "description": "User age", "default": 30 },
                        "score": { "type": "number", "description": "User score", "default": 95.5 },
                        "status": {
                            "type": "string",
                            "description": "User status",
                            "enum": ["active", "inactive", "pending"],
                            "default": "active",
                        },
                        "verified": {
                            "type": "boolean",
                            "description": "Verification status",
                            "default": true,
                        },
                    },
                },
            });
            Box::new(move |round| elicit_step(round, "form", &form, "Elicitation completed"))
        }
        "test_elicitation_sep1330_enums" => {
            let choices = |prefix: &str, titles: [&str; 3]| -> Value {
                (1..=3)
                    .zip(titles)
                    .map(|(i, title)| json!({ "const": format!("{prefix}{i}"), "title": title }))
                    .collect()
            };
            let form = json!({
                "message": "Please pick from each kind of list.",
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "untitledSingle": {
                            "type": "string",
                            "enum": ["option1", "option2", "option3"],
                        },
                        "titledSingle": {
                            "type": "string",
                            "oneOf": choices("value", ["First Option", "Second Option", "Third Option"]),
                        },
                        "legacyEnum": {
                            "type": "string",
                            "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"],
                        },
                        "untitledMulti": {
                            "type": "array",
                            "items": { "type": "string", "enum": ["option1", "option2", "option3"] },
                        },
                        "titledMulti": {
                            "type": "array",
                            "items": {
                                "anyOf": choices("value", ["First Choice", "Second Choice", "Third Choice"]),
                            },
                        },
                    },
                },
            });
            Box::new(move |round| elicit_step(round, "form", &form, "Elicitation completed"))
        }
        "test_update_watched_resource" => {
            let revision = server.touch_watched().await;
            return done(text(&format!(
                "{WATCHED_URI} is now at revision {revision}."
            )));
        }
        "json_schema_2020_12_tool" => {
            return done(text(&format!("Received: {}", Value::Object(args.clone()))));
        }
        "test_ping_client" => {
            if is_stateless(context) {
                return done(tool_error(
                    "2026-07-28 has no server-to-client requests, so there is no ping to send",
                ));
            }
            let ping = ServerRequest::PingRequest(Default::default());
            match context.peer.send_request(ping).await {
                Ok(_) => return done(text("The client answered ping.")),
                Err(err) => return done(tool_error(&format!("ping failed: {err}"))),
            }
        }
        "test_missing_capability" => Box::new(move |round| {
            sample_step(round, "arithmetic", "What is 2 + 2?", 20, "LLM answered")
        }),
        "test_streaming_elicitation" => {
            let form = json!({
                "message": "Continue with the operation?",
                "requestedSchema": {
                    "type": "object",
                    "properties": { "proceed": { "type": "boolean" } },
                    "required": ["proceed"],
                },
            });
            Box::new(move |round| elicit_step(round, "confirmation", &form, "Confirmation"))
        }
        "test_trigger_tool_change" => {
            let told = server.announce(ListChange::Tools).await;
            return done(text(&format!(
                "Announced a tool list change to {told} listener(s)."
            )));
        }
        "test_trigger_prompt_change" => {
            let told = server.announce(ListChange::Prompts).await;
            return done(text(&format!(
                "Announced a prompt list change to {told} listener(s)."
            )));
        }
        "test_input_required_result_elicitation" => Box::new(greeting_step),
        "test_input_required_result_sampling" => Box::new(move |round| {
            sample_step(
                round,
                "capital_question",
                "What is the capital of France?",
                100,
                "LLM response",
            )
        }),
        "test_input_required_result_list_roots" => Box::new(roots_step),
        "test_input_required_result_request_state" => {
            Box::new(move |round| confirm_step(round, "state-ok"))
        }
        "test_input_required_result_tampered_state" => {
            Box::new(move |round| confirm_step(round, "state verified"))
        }
        "test_input_required_result_multiple_inputs" => Box::new(multiple_inputs_step),
        "test_input_required_result_multi_round" => Box::new(multi_round_step),
        "test_input_required_result_capabilities" => {
            // The questions follow what this request declares, on every round.
            let declared = context.client_capabilities().unwrap_or_default();
            let wanted = [
                ("sampling", declared.sampling.is_some()),
                ("elicitation", declared.elicitation.is_some()),
                ("roots", declared.roots.is_some()),
            ];
            let wanted: Vec<&str> = wanted
                .into_iter()
                .filter_map(|(kind, declared)| declared.then_some(kind))
                .collect();
            Box::new(move |round| capabilities_step(round, &wanted))
        }
        HEADER_TOOL => match text_arg("region") {
            Some(region) => {
                return done(text(&format!(
                    "region={region}, priority={}, note={}",
                    args.get("priority").unwrap_or(&Value::Null),
                    args.get("note").unwrap_or(&Value::Null),
                )));
            }
            None => {
                return done(tool_error(&format!(
                    "{HEADER_TOOL} needs a string argument `region`"
                )));
            }
        },
        _ => {
            return Err(ErrorData::invalid_params(
                format!("no such tool: {name}"),
                Some(json!({ "name": name })),
            ));
        }
    };
    let retry = Retry {
        input_responses: request.input_responses,
        request_state: request.request_state,
    };
    converse(server, context, name, &args, retry, &*step).await
}

pub type ToolStep<'a> =
    dyn Fn(&Round) -> Result<Step<CallToolResult>, ErrorData> + Send + Sync + 'a;

/// Runs a tool written as a step function; see [`input`].
pub async fn converse(
    server: &ConformanceServer,
    context: &RequestContext<RoleServer>,
    name: &str,
    args: &JsonObject,
    retry: Retry,
    step: &ToolStep<'_>,
) -> Result<CallToolResponse, ErrorData> {
    let origin = Origin {
        method: "tools/call",
        name,
        arguments: Some(args),
    };
    Ok(
        match input::drive(server.seal(), context, origin, retry, step).await? {
            Outcome::Done(result) => result.into(),
            Outcome::InputRequired(result) => result.into(),
            Outcome::Unanswered(why) => tool_error(&why).into(),
        },
    )
}

pub fn elicitation(form: &Value) -> Value {
    json!({ "method": "elicitation/create", "params": form })
}

fn sampling(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": max_tokens,
        },
    })
}

fn roots_request() -> Value {
    json!({ "method": "roots/list", "params": {} })
}

/// Asks `form` under `key`; finishes with `"{label}: action=…, content=…"`.
fn elicit_step(
    round: &Round,
    key: &str,
    form: &Value,
    label: &str,
) -> Result<Step<CallToolResult>, ErrorData> {
    match round.elicited(key)? {
        Some(answer) => Ok(Step::Done(text(&describe_elicitation(label, &answer)))),
        None => Step::ask(json!({ key: elicitation(form) })),
    }
}

pub fn describe_elicitation(label: &str, answer: &ElicitResult) -> String {
    let action = serde_json::to_value(&answer.action).unwrap_or(Value::Null);
    let action = action.as_str().unwrap_or("unknown");
    let content = answer.content.clone().unwrap_or(Value::Null);
    format!("{label}: action={action}, content={content}")
}

/// Asks the LLM `prompt` under `key`; finishes with `"{label}: <reply>"`.
fn sample_step(
    round: &Round,
    key: &str,
    prompt: &str,
    max_tokens: u32,
    label: &str,
) -> Result<Step<CallToolResult>, ErrorData> {
    match round.sampled(key)? {
        Some(answer) => Ok(Step::Done(text(&format!(
            "{label}: {}",
            sampled_text(&answer)
        )))),
        None => Step::ask(json!({ key: sampling(prompt, max_tokens) })),
    }
}

fn sampled_text(answer: &CreateMessageResult) -> String {
    let content = serde_json::to_value(&answer.message.content).unwrap_or(Value::Null);
    match content.get("text").and_then(Value::as_str) {
        Some(reply) => reply.to_owned(),
        None => content.to_string(),
    }
}

pub fn name_form(message: &str) -> Value {
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"],
        },
    })
}

/// The string field `field` of an accepted elicitation, if there is one.
pub fn accepted_field(answer: &ElicitResult, field: &str) -> Option<String> {
    answer
        .content
        .as_ref()?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

fn greeting_step(round: &Round) -> Result<Step<CallToolResult>, ErrorData> {
    match round.elicited("user_name")? {
        Some(answer) => Ok(Step::Done(text(&match accepted_field(&answer, "name") {
            Some(name) => format!("Hello, {name}!"),
            None => describe_elicitation("No name given", &answer),
        }))),
        None => Step::ask(json!({ "user_name": elicitation(&name_form("What is your name?")) })),
    }
}

fn roots_step(round: &Round) -> Result<Step<CallToolResult>, ErrorData> {
    match round.roots("client_roots")? {
        Some(answer) => {
            let uris: Vec<&str> = answer.roots.iter().map(|root| root.uri.as_str()).collect();
            Ok(Step::Done(text(&format!(
                "The client has {} root(s): {}",
                uris.len(),
                uris.join(", ")
            ))))
        }
        None => Step::ask(json!({ "client_roots": roots_request() })),
    }
}

/// Asks for a confirmation and keeps state; finishes only when the state
/// comes back verified, saying `verdict`.
fn confirm_step(round: &Round, verdict: &str) -> Result<Step<CallToolResult>, ErrorData> {
    let asked = round
        .state()
        .and_then(|state| state.get("asked"))
        .and_then(Value::as_str)
        == Some("confirm");
    match round.elicited("confirm")? {
        Some(answer) if asked => {
            let ok = answer
                .content
                .as_ref()
                .and_then(|content| content.get("ok"));
            Ok(Step::Done(text(&format!(
                "{verdict}: the requestState came back intact; ok={}",
                ok.unwrap_or(&Value::Null)
            ))))
        }
        // No answer yet, or an answer without the state that asked for it.
        _ => {
            let form = json!({
                "message": "Please confirm",
                "requestedSchema": {
                    "type": "object",
                    "properties": { "ok": { "type": "boolean" } },
                    "required": ["ok"],
                },
            });
            Step::ask_keeping(
                json!({ "confirm": elicitation(&form) }),
                json!({ "asked": "confirm" }),
            )
        }
    }
}

/// Asks the user, the LLM and the roots at once. Answers are kept in the
/// state, so a client that answers some now and the rest later loses none.
fn multiple_inputs_step(round: &Round) -> Result<Step<CallToolResult>, ErrorData> {
    let mut answers = round
        .state()
        .and_then(|state| state.get("answers"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(answer) = round.elicited("user_name")? {
        let name = accepted_field(&answer, "name").unwrap_or_else(|| "(declined)".to_owned());
        answers.insert("user_name".into(), name.into());
    }
    if let Some(answer) = round.sampled("greeting")? {
        answers.insert("greeting".into(), sampled_text(&answer).into());
    }
    if let Some(answer) = round.roots("client_roots")? {
        answers.insert("client_roots".into(), answer.roots.len().into());
    }
    let questions = [
        ("user_name", elicitation(&name_form("What is your name?"))),
        ("greeting", sampling("Generate a greeting", 50)),
        ("client_roots", roots_request()),
    ];
    let missing: serde_json::Map<String, Value> = questions
        .into_iter()
        .filter(|(key, _)| !answers.contains_key(*key))
        .map(|(key, question)| (key.to_owned(), question))
        .collect();
    if missing.is_empty() {
        return Ok(Step::Done(text(&format!(
            "name={}, greeting={}, roots={}",
            answers["user_name"], answers["greeting"], answers["client_roots"]
        ))));
    }
    Step::ask_keeping(Value::Object(missing), json!({ "answers": answers }))
}

/// Round 1 asks a name, round 2 a colour; each round carries its own state.
fn multi_round_step(round: &Round) -> Result<Step<CallToolResult>, ErrorData> {
    let state = round.state();
    let known_name = state
        .filter(|state| state["round"] == 2)
        .and_then(|state| state["name"].as_str())
        .map(str::to_owned);
    let colour_form = json!({
        "message": "Step 2: What is your favorite color?",
        "requestedSchema": {
            "type": "object",
            "properties": { "color": { "type": "string" } },
            "required": ["color"],
        },
    });
    let ask_colour = |name: &str| {
        Step::ask_keeping(
            json!({ "step2": elicitation(&colour_form) }),
            json!({ "round": 2, "name": name }),
        )
    };
    if let Some(name) = known_name {
        return match round.elicited("step2")? {
            Some(answer) => {
                let colour = accepted_field(&answer, "color").unwrap_or_else(|| "unknown".into());
                Ok(Step::Done(text(&format!(
                    "{name}'s favorite color is {colour}."
                ))))
            }
            None => ask_colour(&name),
        };
    }
    match round.elicited("step1")? {
        Some(answer) => {
            ask_colour(&accepted_field(&answer, "name").unwrap_or_else(|| "someone".into()))
        }
        None => Step::ask_keeping(
            json!({ "step1": elicitation(&name_form("Step 1: What is your name?")) }),
            json!({ "round": 1 }),
        ),
    }
}

/// Asks one question of each kind the request declared it can answer.
fn capabilities_step(round: &Round, wanted: &[&str]) -> Result<Step<CallToolResult>, ErrorData> {
    if wanted.is_empty() {
        return Ok(Step::Done(text(
            "The client declared none of sampling, elicitation and roots, so nothing was asked.",
        )));
    }
    let mut answered = Vec::new();
    let mut missing = serde_json::Map::new();
    for kind in wanted {
        let (has_answer, question) = match *kind {
            "sampling" => (
                round.sampled("sampling")?.is_some(),
                sampling("Say hello", 20),
            ),
            "elicitation" => (
                round.elicited("elicitation")?.is_some(),
                elicitation(&name_form("What is your name?")),
            ),
            _ => (round.roots("roots")?.is_some(), roots_request()),
        };
        if has_answer {
            answered.push(*kind);
        } else {
            missing.insert((*kind).to_owned(), question);
        }
    }
    if missing.is_empty() {
        return Ok(Step::Done(text(&format!(
            "Answered: {}",
            answered.join(", ")
        ))));
    }
    Step::ask(Value::Object(missing))
}

pub fn text(message: &str) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(message.to_owned())])
}

pub fn tool_error(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_owned())])
}
