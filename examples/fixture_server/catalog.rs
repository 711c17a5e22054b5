//! What a fixture server offers: tools, prompts, resources and completions,
//! all derived from its `--name` and `--tools` count, plus the cursor-based
//! pagination shared by every list method.
//!
//! Definitions are written as JSON and deserialized into rmcp's types, so
//! the wire shape the gateway sees is spelled out literally here.

use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmcp::ErrorData;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptResult, JsonObject, PaginatedRequestParams,
    Prompt, ReadResourceResult, Reference, Resource, ResourceTemplate, Tool,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A 1×1 PNG, small enough to inline in every `echo` result.
pub const TINY_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGPQqjrxHwAEqgJsJUOXCgAAAABJRU5ErkJggg==";

/// Names offered when completing the `name` argument of `greet`.
const GREET_NAMES: [&str; 3] = ["alice", "bob", "carol"];
/// Ids offered when completing the `id` of the resource template.
const TEMPLATE_IDS: [&str; 3] = ["1", "2", "3"];

/// Prefix of the decoded cursor, so a cursor from another server (or a
/// made-up one) is rejected rather than misread as an offset.
const CURSOR_PREFIX: &str = "offset:";

/// Everything one fixture process serves. Shared by all sessions (HTTP mode
/// may have several), so tools added at runtime are visible to every client.
pub struct Catalog {
    pub name: String,
    page_size: usize,
    tools: Mutex<Vec<Tool>>,
    prompts: Vec<Prompt>,
    resources: Vec<Resource>,
    templates: Vec<ResourceTemplate>,
}

impl Catalog {
    pub fn new(name: &str, tool_count: usize, page_size: usize) -> Result<Self, ErrorData> {
        let mut tools = (0..tool_count)
            .map(|i| generic_tool(name, &format!("tool_{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        tools.extend(fixed_tools(name)?);
        let prompts = vec![
            from_json(json!({
                "name": "greet",
                "title": "Greeting",
                "description": format!("Greets someone from fixture server {name}"),
                "arguments": [{ "name": "name", "description": "Who to greet", "required": true }],
            }))?,
            from_json(json!({
                "name": "about",
                "description": format!("Describes fixture server {name}"),
            }))?,
        ];
        let mut resources = vec![from_json(json!({
            "uri": format!("fixture://{name}/info"),
            "name": "info",
            "description": format!("Identity of fixture server {name}"),
            "mimeType": "text/plain",
        }))?];
        for i in 0..tool_count {
            resources.push(from_json(json!({
                "uri": format!("fixture://{name}/item/{i}"),
                "name": format!("item_{i}"),
                "mimeType": "text/plain",
            }))?);
        }
        let templates = vec![from_json(json!({
            "uriTemplate": template_uri(name),
            "name": "tpl",
            "description": format!("Templated resource of fixture server {name}"),
            "mimeType": "text/plain",
        }))?];
        Ok(Self {
            name: name.to_owned(),
            page_size,
            tools: Mutex::new(tools),
            prompts,
            resources,
            templates,
        })
    }

    fn tools_guard(&self) -> std::sync::MutexGuard<'_, Vec<Tool>> {
        // A panic while holding the lock cannot leave the Vec half-updated
        // (every mutation is a single push or retain), so poison is harmless.
        self.tools.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn has_tool(&self, name: &str) -> bool {
        self.tools_guard().iter().any(|tool| tool.name == name)
    }

    pub fn tool(&self, name: &str) -> Option<Tool> {
        self.tools_guard()
            .iter()
            .find(|tool| tool.name == name)
            .cloned()
    }

    /// Adds a generic tool; `Ok(false)` if the name is already taken.
    pub fn add_tool(&self, tool_name: &str) -> Result<bool, ErrorData> {
        let tool = generic_tool(&self.name, tool_name)?;
        let mut tools = self.tools_guard();
        if tools.iter().any(|t| t.name == tool_name) {
            return Ok(false);
        }
        tools.push(tool);
        Ok(true)
    }

    /// Removes a tool; `false` if there was none by that name.
    pub fn remove_tool(&self, tool_name: &str) -> bool {
        let mut tools = self.tools_guard();
        let before = tools.len();
        tools.retain(|tool| tool.name != tool_name);
        tools.len() != before
    }

    pub fn tools_page(&self, params: Option<PaginatedRequestParams>) -> Page<Tool> {
        let tools = self.tools_guard().clone();
        self.page(&tools, params)
    }

    pub fn prompts_page(&self, params: Option<PaginatedRequestParams>) -> Page<Prompt> {
        self.page(&self.prompts, params)
    }

    pub fn resources_page(&self, params: Option<PaginatedRequestParams>) -> Page<Resource> {
        self.page(&self.resources, params)
    }

    pub fn templates_page(&self, params: Option<PaginatedRequestParams>) -> Page<ResourceTemplate> {
        self.page(&self.templates, params)
    }

    /// Slices one page out of `items`. Without `--page-size` everything is
    /// one page; otherwise `nextCursor` is base64("offset:N").
    fn page<T: Clone>(&self, items: &[T], params: Option<PaginatedRequestParams>) -> Page<T> {
        let start = match params.and_then(|p| p.cursor) {
            None => 0,
            Some(cursor) => decode_cursor(&cursor)
                .filter(|&offset| offset <= items.len())
                .ok_or_else(|| {
                    ErrorData::invalid_params(
                        format!("invalid cursor: {cursor}"),
                        Some(json!({ "cursor": cursor })),
                    )
                })?,
        };
        if self.page_size == 0 {
            return Ok((items[start..].to_vec(), None));
        }
        let end = start.saturating_add(self.page_size).min(items.len());
        let next = (end < items.len()).then(|| BASE64.encode(format!("{CURSOR_PREFIX}{end}")));
        Ok((items[start..end].to_vec(), next))
    }

    pub fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        let name = &self.name;
        let text = if uri == format!("fixture://{name}/info") {
            Some(format!("I am {name}"))
        } else if let Some(i) = uri.strip_prefix(&format!("fixture://{name}/item/")) {
            // Only listed items exist: the same text as the resource list.
            let listed = self.resources.iter().any(|r| r.uri == uri);
            (listed && !i.is_empty()).then(|| format!("{name} item {i}"))
        } else if let Some(id) = uri.strip_prefix(&format!("fixture://{name}/tpl/")) {
            (!id.is_empty() && !id.contains('/')).then(|| format!("{name} template id={id}"))
        } else {
            None
        };
        let Some(text) = text else {
            return Err(ErrorData::resource_not_found(
                format!("resource not found: {uri}"),
                Some(json!({ "uri": uri })),
            ));
        };
        from_json(json!({
            "contents": [{ "uri": uri, "mimeType": "text/plain", "text": text }],
        }))
    }

    pub fn get_prompt(
        &self,
        prompt: &str,
        args: Option<&JsonObject>,
    ) -> Result<GetPromptResult, ErrorData> {
        let server = &self.name;
        let (description, text) = match prompt {
            "greet" => {
                let Some(who) = args.and_then(|a| a.get("name")).and_then(Value::as_str) else {
                    return Err(ErrorData::invalid_params(
                        "greet: missing required argument `name`",
                        None,
                    ));
                };
                (
                    format!("Greeting from {server}"),
                    format!("Hello {who} from {server}"),
                )
            }
            "about" => (
                format!("About {server}"),
                format!("This is fixture server {server}."),
            ),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown prompt: {other}"),
                    Some(json!({ "name": other })),
                ));
            }
        };
        from_json(json!({
            "description": description,
            "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
        }))
    }

    pub fn complete(&self, params: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
        let candidates: &[&str] = match &params.r#ref {
            Reference::Prompt(p) if p.name == "greet" && params.argument.name == "name" => {
                &GREET_NAMES
            }
            Reference::Resource(r)
                if r.uri == template_uri(&self.name) && params.argument.name == "id" =>
            {
                &TEMPLATE_IDS
            }
            _ => &[],
        };
        let typed = params.argument.value.as_str();
        let values: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|c| c.starts_with(typed))
            .collect();
        from_json(json!({
            "completion": { "values": values, "total": values.len(), "hasMore": false },
        }))
    }
}

/// One page of items and the cursor of the next page, if any.
pub type Page<T> = Result<(Vec<T>, Option<String>), ErrorData>;

fn decode_cursor(cursor: &str) -> Option<usize> {
    let decoded = BASE64.decode(cursor).ok()?;
    let text = std::str::from_utf8(&decoded).ok()?;
    text.strip_prefix(CURSOR_PREFIX)?.parse().ok()
}

fn template_uri(server: &str) -> String {
    format!("fixture://{server}/tpl/{{id}}")
}

/// A `tool_i`-style tool: returns `SERVER:TOOL` and `{server, tool}`.
pub fn generic_tool(server: &str, tool: &str) -> Result<Tool, ErrorData> {
    from_json(json!({
        "name": tool,
        "description": format!("Generic tool {tool} of fixture server {server}"),
        "inputSchema": { "type": "object", "properties": {} },
    }))
}

fn fixed_tools(server: &str) -> Result<Vec<Tool>, ErrorData> {
    let object = |properties: Value, required: &[&str]| json!({ "type": "object", "properties": properties, "required": required });
    [
        json!({
            "name": "whoami",
            "description": format!("Returns the name of fixture server {server}"),
            "inputSchema": object(json!({}), &[]),
        }),
        // `echo` carries every optional tool field, so pass-through of
        // title, outputSchema, annotations, icons and _meta can be checked.
        json!({
            "name": "echo",
            "title": format!("Echo ({server})"),
            "description": format!("Echoes text back from fixture server {server}, with an image"),
            "inputSchema": object(json!({ "text": { "type": "string" } }), &["text"]),
            "outputSchema": object(json!({ "text": { "type": "string" } }), &["text"]),
            "annotations": {
                "title": "Echo",
                "readOnlyHint": true,
                "destructiveHint": false,
                "idempotentHint": true,
                "openWorldHint": false,
            },
            "icons": [{
                "src": format!("data:image/png;base64,{TINY_PNG_BASE64}"),
                "mimeType": "image/png",
                "sizes": ["1x1"],
            }],
            "_meta": { "fixture/server": server },
        }),
        json!({
            "name": "slow",
            "description": format!("Sleeps `ms` milliseconds on fixture server {server}, reporting progress every 100 ms"),
            "inputSchema": object(json!({ "ms": { "type": "integer", "minimum": 0 } }), &["ms"]),
        }),
        json!({
            "name": "crash",
            "description": format!("Makes fixture server {server} exit with code 3 without answering"),
            "inputSchema": object(json!({}), &[]),
        }),
        json!({
            "name": "add_tool",
            "description": format!("Adds a tool to fixture server {server} and announces list_changed"),
            "inputSchema": object(json!({ "name": { "type": "string" } }), &["name"]),
        }),
        json!({
            "name": "remove_tool",
            "description": format!("Removes a tool from fixture server {server} and announces list_changed"),
            "inputSchema": object(json!({ "name": { "type": "string" } }), &["name"]),
        }),
        json!({
            "name": "fail",
            "description": format!("Always fails on fixture server {server} with JSON-RPC error -32603"),
            "inputSchema": object(json!({}), &[]),
        }),
        // Diagnostics for the gateway's 2026-07-28 tests. `region` and `count` are
        // mirrored in `Mcp-Param-*` headers, which rmcp checks against the arguments.
        json!({
            "name": "envelope",
            "description": format!("Returns the _meta and HTTP headers the call reached fixture server {server} with"),
            "inputSchema": object(json!({
                "region": { "type": "string", "x-mcp-header": "Region" },
                "count": { "type": "integer", "x-mcp-header": "Count" },
            }), &[]),
        }),
        json!({
            "name": "journal",
            "description": format!("Returns the protocol events fixture server {server} saw (probes, listens, cancellations)"),
            "inputSchema": object(json!({}), &[]),
        }),
        json!({
            "name": "touch",
            "description": format!("Tells every subscriber of `uri` on fixture server {server} that it was updated"),
            "inputSchema": object(json!({ "uri": { "type": "string" } }), &["uri"]),
        }),
    ]
    .into_iter()
    .map(from_json)
    .collect()
}

/// Deserializes a literal definition into an rmcp type. A failure is a bug
/// in this file, reported to the caller as an internal error.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value)
        .map_err(|err| ErrorData::internal_error(format!("bad fixture definition: {err}"), None))
}
