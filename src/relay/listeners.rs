//! `subscriptions/listen` streams of 2026-07-28 clients: what each asked to hear, and the
//! delivery of list changes and resource updates to exactly those streams.
//!
//! A listen stream is a request that stays open; the router registers it here for as long
//! as it runs. Every message on it carries `_meta["io.modelcontextprotocol/subscriptionId"]`
//! set to the listen request's own JSON-RPC id, and only the kinds the client asked for are
//! sent (request-scoped traffic such as progress never travels on it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::protocol::envelope::SUBSCRIPTION_ID;
use crate::protocol::{ErrorObject, Message, Notification, methods};

/// Most resource URIs one listen may name.
pub const MAX_URIS: usize = 1024;
/// Most listen streams open at once across the relay.
pub const MAX_LISTENERS: usize = 10_000;

/// What a client asked to hear (the request's `notifications` filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    pub uris: Vec<String>,
}

impl Filter {
    /// Reads the filter of a listen request; a malformed one is -32602.
    pub fn read(params: Option<&Value>) -> Result<Filter, ErrorObject> {
        let Some(spec) = params.and_then(|p| p.get("notifications")) else {
            return Ok(Filter::default());
        };
        let Some(spec) = spec.as_object() else {
            return Err(ErrorObject::invalid_params(
                "'notifications' must be an object",
            ));
        };
        let flag = |key: &str| -> Result<bool, ErrorObject> {
            match spec.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(ErrorObject::invalid_params(format!(
                    "'notifications.{key}' must be a boolean"
                ))),
            }
        };
        let uris = match spec.get("resourceSubscriptions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_URIS => items
                .iter()
                .map(|u| u.as_str().map(str::to_owned))
                .collect::<Option<HashSet<String>>>()
                .ok_or_else(|| {
                    ErrorObject::invalid_params(
                        "'notifications.resourceSubscriptions' must hold strings",
                    )
                })?
                .into_iter()
                .collect(),
            Some(Value::Array(_)) => {
                return Err(ErrorObject::invalid_params(format!(
                    "at most {MAX_URIS} resource subscriptions per listen"
                )));
            }
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "'notifications.resourceSubscriptions' must be an array",
                ));
            }
        };
        Ok(Filter {
            tools: flag("toolsListChanged")?,
            prompts: flag("promptsListChanged")?,
            resources: flag("resourcesListChanged")?,
            uris,
        })
    }

    /// The filter as the acknowledgement states it: only what will be honoured.
    pub fn to_value(&self) -> Value {
        let mut out = Map::new();
        if self.tools {
            out.insert("toolsListChanged".into(), Value::Bool(true));
        }
        if self.prompts {
            out.insert("promptsListChanged".into(), Value::Bool(true));
        }
        if self.resources {
            out.insert("resourcesListChanged".into(), Value::Bool(true));
        }
        if !self.uris.is_empty() {
            out.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(out)
    }

    fn wants_list(&self, method: &str) -> bool {
        match method {
            methods::TOOLS_LIST_CHANGED => self.tools,
            methods::PROMPTS_LIST_CHANGED => self.prompts,
            methods::RESOURCES_LIST_CHANGED => self.resources,
            _ => false,
        }
    }
}

struct Listener {
    /// The listen request's id: the subscription id on every message.
    subscription: Value,
    filter: Filter,
    sink: mpsc::Sender<Message>,
}

#[derive(Default)]
pub struct Listeners {
    open: DashMap<u64, Listener>,
    next: AtomicU64,
}

/// Keeps a listen registered while its request runs.
pub struct Registration<'a> {
    listeners: &'a Listeners,
    pub key: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.listeners.open.remove(&self.key);
    }
}

impl Registration<'_> {
    /// The subscriber key this listen uses in the resource subscription table.
    pub fn subscriber(&self) -> String {
        subscriber_key(self.key)
    }
}

/// The key of a listen stream among resource subscribers (sessions use their ids).
pub fn subscriber_key(key: u64) -> String {
    format!("listen:{key}")
}

/// Tags a notification's params with a subscription id.
pub fn tagged(method: &str, params: Option<Value>, subscription: &Value) -> Message {
    let mut params = params.unwrap_or_else(|| json!({}));
    if let Some(obj) = params.as_object_mut() {
        let meta = obj.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(SUBSCRIPTION_ID.into(), subscription.clone());
        }
    }
    Message::Notification(Notification::new(method, Some(params)))
}

impl Listeners {
    /// Registers a listen stream; `None` when too many are open.
    pub fn register(
        &self,
        subscription: Value,
        filter: Filter,
        sink: mpsc::Sender<Message>,
    ) -> Option<Registration<'_>> {
        if self.open.len() >= MAX_LISTENERS {
            return None;
        }
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.insert(
            key,
            Listener {
                subscription,
                filter,
                sink,
            },
        );
        Some(Registration {
            listeners: self,
            key,
        })
    }

    /// A merged list changed: tell every stream that asked for that list.
    pub fn list_changed(&self, method: &str) -> usize {
        self.open
            .iter()
            .filter(|l| l.filter.wants_list(method))
            .filter(|l| {
                let msg = tagged(method, None, &l.subscription);
                l.sink.try_send(msg).is_ok()
            })
            .count()
    }

    /// A resource changed: tell the listen streams among `subscribers` (keys from
    /// [`subscriber_key`]) that name it.
    pub fn resource_updated(&self, params: &Value, subscribers: &HashSet<String>) -> bool {
        let mut delivered = false;
        for listener in self.open.iter() {
            if subscribers.contains(&subscriber_key(*listener.key())) {
                let msg = tagged(
                    methods::RESOURCES_UPDATED,
                    Some(params.clone()),
                    &listener.subscription,
                );
                delivered |= listener.sink.try_send(msg).is_ok();
            }
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_strictly_and_acknowledge_only_what_is_honoured() {
        let f = Filter::read(Some(&json!({ "notifications": {
            "toolsListChanged": true, "promptsListChanged": false,
            "resourceSubscriptions": ["a://x", "a://x"] } })))
        .expect("valid");
        assert_eq!(
            f.to_value(),
            json!({ "toolsListChanged": true, "resourceSubscriptions": ["a://x"] })
        );
        assert!(
            Filter::read(Some(&json!({ "notifications": { "toolsListChanged": 1 } }))).is_err()
        );
        assert!(
            Filter::read(Some(
                &json!({ "notifications": { "resourceSubscriptions": [1] } })
            ))
            .is_err()
        );
        assert_eq!(Filter::read(None).expect("empty"), Filter::default());
    }

    #[test]
    fn only_streams_that_asked_hear_a_list_change_tagged_with_their_id() {
        let listeners = Listeners::default();
        let (tx_a, mut rx_a) = mpsc::channel(4);
        let (tx_b, mut rx_b) = mpsc::channel(4);
        let tools = Filter {
            tools: true,
            ..Filter::default()
        };
        let _a = listeners.register(json!(7), tools, tx_a).expect("room");
        let _b = listeners
            .register(json!("l2"), Filter::default(), tx_b)
            .expect("room");
        assert_eq!(listeners.list_changed(methods::TOOLS_LIST_CHANGED), 1);
        let Ok(Message::Notification(n)) = rx_a.try_recv() else {
            panic!("a heard nothing")
        };
        assert_eq!(
            n.params.expect("params")["_meta"][SUBSCRIPTION_ID],
            json!(7)
        );
        assert!(rx_b.try_recv().is_err());
        drop(_a);
        assert_eq!(listeners.list_changed(methods::TOOLS_LIST_CHANGED), 0);
    }
}
