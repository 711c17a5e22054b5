//! Everything the fixture serves that is plain data: resources, the resource
//! template, prompts, completions and the little media files used by tools
//! and prompts. Results are written as JSON (the shape the MCP schema shows)
//! and decoded into rmcp's types, so what goes on the wire is easy to read
//! next to the conformance scenario that asks for it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmcp::ErrorData;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptResult, JsonObject,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult,
    Reference,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::input::{Round, Step};

/// A 1x1 opaque red pixel, PNG-encoded (69 bytes).
pub const RED_PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAMBAQD3A0FDAAAAAElFTkSuQmCC";

pub const STATIC_TEXT_URI: &str = "test://static-text";
pub const STATIC_BINARY_URI: &str = "test://static-binary";
pub const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

/// Values offered by `completion/complete` for the prompt argument `arg1`
/// and the template variable `id`; filtered by the typed prefix.
const ARG1_CHOICES: [&str; 5] = ["paris", "park", "party", "test-alpha", "test-beta"];
const ID_CHOICES: [&str; 4] = ["1", "42", "123", "2024"];

/// Decodes a JSON literal into an rmcp type. The literals are the fixture's
/// own, so a failure is a bug in the fixture; it surfaces as an internal
/// error rather than a panic so that one bad entry cannot kill a session.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value)
        .map_err(|err| ErrorData::internal_error(format!("fixture data is malformed: {err}"), None))
}

/// Decodes a result literal marked `resultType: "complete"`, the field
/// 2026-07-28 requires on every result. rmcp removes the marker again for
/// peers of the handshake era, whose schemas do not have it.
pub fn complete_result<T: DeserializeOwned>(mut value: Value) -> Result<T, ErrorData> {
    if let Value::Object(result) = &mut value {
        result
            .entry("resultType")
            .or_insert_with(|| Value::from("complete"));
    }
    from_json(value)
}

/// A short, valid WAV file: 8 kHz, mono, 8-bit PCM, 80 samples (10 ms) of
/// silence, base64-encoded.
pub fn silent_wav_base64() -> String {
    const SAMPLE_RATE: u32 = 8_000;
    const SAMPLES: u32 = 80;
    let mut wav = Vec::with_capacity(44 + SAMPLES as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + SAMPLES).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    wav.extend_from_slice(&SAMPLE_RATE.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&SAMPLES.to_le_bytes());
    // Unsigned 8-bit PCM: 128 is the zero line.
    wav.resize(wav.len() + SAMPLES as usize, 128);
    BASE64.encode(wav)
}

pub fn list_resources() -> Result<ListResourcesResult, ErrorData> {
    complete_result(json!({
        "resources": [
            {
                "uri": STATIC_TEXT_URI,
                "name": "static-text",
                "description": "A fixed text document",
                "mimeType": "text/plain",
            },
            {
                "uri": STATIC_BINARY_URI,
                "name": "static-binary",
                "description": "A fixed binary document (a 1x1 PNG)",
                "mimeType": "image/png",
            },
            {
                "uri": WATCHED_URI,
                "name": "watched-resource",
                "description": "A document that changes; subscribe to hear about it",
                "mimeType": "text/plain",
            },
        ]
    }))
}

pub fn list_resource_templates() -> Result<ListResourceTemplatesResult, ErrorData> {
    complete_result(json!({
        "resourceTemplates": [{
            "uriTemplate": "test://template/{id}/data",
            "name": "template-data",
            "description": "A JSON document generated for any id",
            "mimeType": "application/json",
        }]
    }))
}

/// Reads one resource. `watched_revision` is the current revision of the
/// watched resource, which the handler owns because it changes over time.
pub fn read_resource(uri: &str, watched_revision: u64) -> Result<ReadResourceResult, ErrorData> {
    let contents = match uri {
        STATIC_TEXT_URI => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": "This is the content of the static text resource.",
        }),
        STATIC_BINARY_URI => json!({ "uri": uri, "mimeType": "image/png", "blob": RED_PIXEL_PNG }),
        WATCHED_URI => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": format!("Watched resource, revision {watched_revision}."),
        }),
        _ => match template_id(uri) {
            Some(id) => json!({
                "uri": uri,
                "mimeType": "application/json",
                "text": json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                    .to_string(),
            }),
            None => {
                return Err(ErrorData::resource_not_found(
                    format!("no such resource: {uri}"),
                    Some(json!({ "uri": uri })),
                ));
            }
        },
    };
    complete_result(json!({ "contents": [contents] }))
}

/// The `{id}` of a URI matching `test://template/{id}/data`, if it does.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

pub fn list_prompts() -> Result<ListPromptsResult, ErrorData> {
    complete_result(json!({
        "prompts": [
            { "name": "test_simple_prompt", "description": "A prompt with no arguments" },
            {
                "name": "test_prompt_with_arguments",
                "description": "A prompt that weaves two arguments into its text",
                "arguments": [
                    { "name": "arg1", "description": "First test argument", "required": true },
                    { "name": "arg2", "description": "Second test argument", "required": true },
                ],
            },
            {
                "name": "test_prompt_with_embedded_resource",
                "description": "A prompt that embeds a resource",
                "arguments": [{
                    "name": "resourceUri",
                    "description": "URI of the resource to embed",
                    "required": true,
                }],
            },
            { "name": "test_prompt_with_image", "description": "A prompt that carries an image" },
            {
                "name": CONTEXT_PROMPT,
                "description": "Asks the user what context to use (input request `user_context`) \
                                before it is built",
            },
        ]
    }))
}

pub fn get_prompt(name: &str, args: Option<&JsonObject>) -> Result<GetPromptResult, ErrorData> {
    let arg = |key: &str| -> Result<String, ErrorData> {
        args.and_then(|args| args.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ErrorData::invalid_params(
                    format!("prompt {name} needs the string argument `{key}`"),
                    None,
                )
            })
    };
    let user_text =
        |text: String| json!({ "role": "user", "content": { "type": "text", "text": text } });
    let messages = match name {
        "test_simple_prompt" => json!([user_text("This is a simple prompt for testing.".into())]),
        "test_prompt_with_arguments" => {
            let (arg1, arg2) = (arg("arg1")?, arg("arg2")?);
            json!([user_text(format!(
                "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
            ))])
        }
        "test_prompt_with_embedded_resource" => {
            let uri = arg("resourceUri")?;
            json!([
                {
                    "role": "user",
                    "content": {
                        "type": "resource",
                        "resource": {
                            "uri": uri,
                            "mimeType": "text/plain",
                            "text": "Embedded resource content for testing.",
                        },
                    },
                },
                user_text("Please process the embedded resource above.".into()),
            ])
        }
        "test_prompt_with_image" => json!([
            {
                "role": "user",
                "content": { "type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png" },
            },
            user_text("Please analyze the image above.".into()),
        ]),
        _ => {
            return Err(ErrorData::invalid_params(
                format!("no such prompt: {name}"),
                Some(json!({ "name": name })),
            ));
        }
    };
    complete_result(json!({ "messages": messages }))
}

/// The prompt that needs the user's input before it can be built.
pub const CONTEXT_PROMPT: &str = "test_input_required_result_prompt";

/// [`CONTEXT_PROMPT`] as a step function (see `input`): asks for the context
/// under `user_context`, then weaves the answer into the prompt.
pub fn context_prompt(round: &Round) -> Result<Step<GetPromptResult>, ErrorData> {
    let Some(answer) = round.elicited("user_context")? else {
        return Step::ask(json!({
            "user_context": {
                "method": "elicitation/create",
                "params": {
                    "message": "What context should the prompt use?",
                    "requestedSchema": {
                        "type": "object",
                        "properties": { "context": { "type": "string" } },
                        "required": ["context"],
                    },
                },
            },
        }));
    };
    let context = answer
        .content
        .as_ref()
        .and_then(|content| content.get("context"))
        .and_then(Value::as_str);
    let text = match context {
        Some(context) => format!("Answer with this context in mind: {context}"),
        None => "Answer without any particular context; the user gave none.".to_owned(),
    };
    complete_result(json!({
        "description": "A prompt built from the user's answer",
        "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
    }))
    .map(Step::Done)
}

/// Suggests values for `test_prompt_with_arguments`'s `arg1` and for the
/// template's `{id}`; every other argument gets an empty (but valid) answer.
pub fn complete(request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
    let argument = request.argument.name.as_str();
    let choices: &[&str] = match &request.r#ref {
        Reference::Prompt(prompt) if prompt.name == "test_prompt_with_arguments" => {
            if argument == "arg1" {
                &ARG1_CHOICES
            } else {
                &[]
            }
        }
        Reference::Resource(template)
            if template.uri == "test://template/{id}/data" && argument == "id" =>
        {
            &ID_CHOICES
        }
        _ => &[],
    };
    let typed = request.argument.value.as_str();
    let values: Vec<String> = choices
        .iter()
        .filter(|choice| choice.starts_with(typed))
        .map(|choice| (*choice).to_owned())
        .collect();
    let total = u32::try_from(values.len()).ok();
    let mut completion = CompletionInfo::new(values).map_err(|err| {
        ErrorData::internal_error(format!("too many completion values: {err}"), None)
    })?;
    completion.total = total;
    completion.has_more = Some(false);
    Ok(CompleteResult::new(completion))
}
