//! The fixture's tools: their listing and what each one does when called.
//!
//! Most return fixed content. The interesting ones talk back to the client
//! that called them while the call is still open: log messages, progress,
//! `sampling/createMessage` and `elicitation/create`. Those requests go to
//! the caller's own connection (rmcp routes a request made inside a handler
//! to that request's stream), which is what a gateway must preserve.

// Logging and sampling are deprecated in newer protocol revisions, but the
// suite exercises them on 2025-11-25, so the fixture implements them.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::model::{
    CallToolResult, ClientResult, ContentBlock, CreateMessageRequestParams, ElicitRequest,
    ElicitRequestParams, ElicitResult, JsonObject, ListToolsResult, LoggingLevel,
    ProgressNotificationParam, ServerRequest,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};

use crate::content::{RED_PIXEL_PNG, WATCHED_URI, from_json, silent_wav_base64};
use crate::handler::ConformanceServer;

/// Pause between the steps of the logging and progress tools (the scenarios
/// ask for "about 50 ms").
const STEP: Duration = Duration::from_millis(50);

pub fn list() -> Result<ListToolsResult, ErrorData> {
    let no_args = json!({ "type": "object", "properties": {} });
    let one_string = |field: &str, about: &str| {
        json!({
            "type": "object",
            "properties": { field: { "type": "string", "description": about } },
            "required": [field],
        })
    };
    let tool = |name: &str, description: &str, schema: &Value| json!({ "name": name, "description": description, "inputSchema": schema });
    from_json(json!({
        "tools": [
            tool("test_simple_text", "Returns one text block", &no_args),
            tool("test_image_content", "Returns a PNG image", &no_args),
            tool("test_audio_content", "Returns a WAV clip", &no_args),
            tool("test_embedded_resource", "Returns an embedded text resource", &no_args),
            tool("test_multiple_content_types", "Returns text, an image and a resource", &no_args),
            tool("test_tool_with_logging", "Sends three info log messages while running", &no_args),
            tool("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100", &no_args),
            tool("test_error_handling", "Always fails with a tool error", &no_args),
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
                "Pings the calling client and says whether it answered",
                &no_args,
            ),
            tool(
                "json_schema_2020_12_tool",
                "Has an input schema using JSON Schema 2020-12 keywords (SEP-1613)",
                &json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "$defs": {
                        "address": {
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
                    },
                    "additionalProperties": false,
                }),
            ),
        ]
    }))
}

/// Runs tool `name`. An unknown name is a protocol error (-32602); a tool
/// that runs and fails, including for bad arguments, is a tool error.
pub async fn call(
    server: &ConformanceServer,
    name: &str,
    args: &JsonObject,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, ErrorData> {
    let text_arg = |field: &str| args.get(field).and_then(Value::as_str);
    match name {
        "test_simple_text" => Ok(text("This is a simple text response for testing.")),
        "test_image_content" => from_json(json!({
            "content": [{ "type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png" }]
        })),
        "test_audio_content" => from_json(json!({
            "content": [{ "type": "audio", "data": silent_wav_base64(), "mimeType": "audio/wav" }]
        })),
        "test_embedded_resource" => from_json(json!({
            "content": [{
                "type": "resource",
                "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content.",
                },
            }]
        })),
        "test_multiple_content_types" => from_json(json!({
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
        })),
        "test_tool_with_logging" => {
            let steps = [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ];
            for (i, message) in steps.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(STEP).await;
                }
                server.log(&context.peer, LoggingLevel::Info, message).await;
            }
            Ok(text("Logged three messages at info level."))
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
            Ok(text("Progress reported: 0, 50 and 100 of 100."))
        }
        "test_error_handling" => Ok(CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )])),
        "test_sampling" => match text_arg("prompt") {
            Some(prompt) => sample(context, prompt).await,
            None => Ok(tool_error("test_sampling needs a string argument `prompt`")),
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
                elicit(context, form, "User response").await
            }
            None => Ok(tool_error(
                "test_elicitation needs a string argument `message`",
            )),
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
            elicit(context, form, "Elicitation completed").await
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
            elicit(context, form, "Elicitation completed").await
        }
        "test_update_watched_resource" => {
            let revision = server.touch_watched().await;
            Ok(text(&format!(
                "{WATCHED_URI} is now at revision {revision}."
            )))
        }
        "json_schema_2020_12_tool" => {
            Ok(text(&format!("Received: {}", Value::Object(args.clone()))))
        }
        "test_ping_client" => {
            let ping = ServerRequest::PingRequest(Default::default());
            match context.peer.send_request(ping).await {
                Ok(_) => Ok(text("The client answered ping.")),
                Err(err) => Ok(tool_error(&format!("ping failed: {err}"))),
            }
        }
        _ => Err(ErrorData::invalid_params(
            format!("no such tool: {name}"),
            Some(json!({ "name": name })),
        )),
    }
}

/// Asks the caller's client for an LLM completion of `prompt`.
async fn sample(
    context: &RequestContext<RoleServer>,
    prompt: &str,
) -> Result<CallToolResult, ErrorData> {
    let peer = &context.peer;
    let supported = peer
        .peer_info()
        .is_some_and(|info| info.capabilities.sampling.is_some());
    if !supported {
        return Ok(tool_error(
            "the client did not declare the sampling capability, so test_sampling cannot ask it",
        ));
    }
    let params: CreateMessageRequestParams = from_json(json!({
        "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
        "maxTokens": 100,
    }))?;
    match peer.create_message(params).await {
        Ok(result) => {
            let content = serde_json::to_value(&result.message.content).unwrap_or(Value::Null);
            let reply = match content.get("text").and_then(Value::as_str) {
                Some(reply) => reply.to_owned(),
                None => content.to_string(),
            };
            Ok(text(&format!("LLM response: {reply}")))
        }
        Err(err) => Ok(tool_error(&format!("sampling/createMessage failed: {err}"))),
    }
}

/// Sends `elicitation/create` with the form in `form` to the caller's
/// client and reports its answer as `"{label}: action=…, content=…"`.
async fn elicit(
    context: &RequestContext<RoleServer>,
    form: Value,
    label: &str,
) -> Result<CallToolResult, ErrorData> {
    let peer = &context.peer;
    let supported = peer
        .peer_info()
        .is_some_and(|info| info.capabilities.elicitation.is_some());
    if !supported {
        return Ok(tool_error(
            "the client did not declare the elicitation capability, so the tool cannot ask its user",
        ));
    }
    let params: ElicitRequestParams = from_json(form)?;
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
    let answer: ElicitResult = match peer.send_request(request).await {
        Ok(ClientResult::ElicitResult(answer)) => answer,
        Ok(other) => {
            return Ok(tool_error(&format!(
                "elicitation/create got an unexpected answer: {other:?}"
            )));
        }
        Err(err) => return Ok(tool_error(&format!("elicitation/create failed: {err}"))),
    };
    let action = serde_json::to_value(&answer.action).unwrap_or(Value::Null);
    let action = action.as_str().unwrap_or("unknown");
    let content = answer.content.unwrap_or(Value::Null);
    Ok(text(&format!(
        "{label}: action={action}, content={content}"
    )))
}

fn text(message: &str) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(message.to_owned())])
}

fn tool_error(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_owned())])
}
