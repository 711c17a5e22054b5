//! The client-facing side: the faces that accept MCP clients, and the HTTP application
//! that serves them.
//!
//! - `http`: Streamable HTTP, handshake era (sessions, GET streams, DELETE);
//! - `stateless`: Streamable HTTP POSTs of the stateless era (no session);
//! - `http_sse`: the HTTP+SSE transport of 2024-11-05;
//! - `stdio`: one client on stdin/stdout, in either era;
//! - `exchange`: what a client message does whatever face carried it; `answer`: a request's
//!   HTTP answer (JSON, or SSE once related messages come); `web`: HTTP plumbing the HTTP
//!   faces share; `guard`: Host/Origin checks.

mod answer;
pub mod exchange;
pub mod guard;
pub mod http;
pub mod http_sse;
mod resume;
pub mod stateless;
pub mod stdio;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt as _;
use futures::future::Either;

use crate::gateway::Gateway;
use crate::protocol::ErrorObject;
use guard::Guard;
use web::{AppState, Peer, rpc_error};

/// The HTTP application as the edge serves it: the MCP endpoint and the health endpoints.
/// The edge runs [`admit`] on each request before [`App::serve`].
///
/// `POST` on the MCP path, which carries every client message, goes straight to its handler;
/// everything else through the router. Routed, each message cost a path match, a method
/// match and a boxed copy of the handler's future (3 KB).
#[derive(Clone)]
pub struct App {
    router: Router,
    state: AppState,
    /// The MCP path (a change needs a restart, as the router's routes do).
    path: Arc<str>,
}

impl App {
    /// Answers one request that came on `peer`'s connection. A POST on the MCP path is handed
    /// its peer directly; the router's routes find it in the request's extensions (putting it
    /// there costs three allocations, which the call path does without).
    ///
    /// Not an `async fn`: the POST handler's future is returned as it is, not wrapped in one
    /// more future of this function's own. Every level of async function around the call is
    /// copied whole when it starts (3.8 KB for this one), and the server boxes the outermost.
    pub fn serve<B>(
        self,
        mut req: axum::http::Request<B>,
        peer: Peer,
    ) -> impl Future<Output = Response> + Send + 'static
    where
        B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if req.method() == axum::http::Method::POST && req.uri().path() == &*self.path {
            let req = req.map(axum::body::Body::new);
            return Either::Left(http::post_message_from(self.state, req, Some(peer)));
        }
        req.extensions_mut().insert(peer);
        Either::Right(
            tower::ServiceExt::oneshot(self.router, req).map(|answered| match answered {
                Ok(resp) => resp,
                Err(never) => match never {},
            }),
        )
    }
}

/// The HTTP application (see [`App`]).
pub fn app(gateway: Arc<Gateway>) -> App {
    let config = gateway.config();
    let guard = Arc::new(Guard::new(&config.security));
    let path = config.path.clone();
    let mcp = get(http::get_stream)
        .post(http::post_message)
        .delete(http::delete_session)
        .fallback(http::method_not_allowed);
    let mut router = Router::new();
    if config.metrics.enabled {
        router = router.route(&config.metrics.path, get(metrics));
    }
    // RFC 9728 metadata, only when there is something to protect: looked up per request, as
    // a reload may turn authentication on or off.
    let well_known = crate::pipeline::auth::metadata::WELL_KNOWN;
    let state = AppState {
        gateway,
        guard,
        opening: Default::default(),
    };
    let router = router
        .route(well_known, get(resource_metadata))
        .route(&format!("{well_known}/{{*rest}}"), get(resource_metadata))
        .route(&path, mcp)
        .route(http_sse::SSE_PATH, get(http_sse::open))
        .route(
            http_sse::MESSAGE_PATH,
            axum::routing::post(http_sse::message),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state.clone());
    App {
        router,
        state,
        path: path.into(),
    }
}

/// What the edge checks on every request before it is routed (see
/// [`guard::authority_as_host`]); the answer to send instead when it refuses.
pub fn admit<B>(req: &mut axum::http::Request<B>) -> Option<Response> {
    guard::authority_as_host(req)
}

async fn resource_metadata(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    state
        .gateway
        .auth()
        .and_then(|auth| crate::pipeline::auth::metadata::answer(&auth, uri.path(), &headers))
        .unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(state): State<AppState>) -> Response {
    let (ready, body) = state.gateway.readiness();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text exposition. No credentials, like `/healthz` (it holds counts, never
/// identities), but behind the Host/Origin guard: a web page must not read it through a
/// rebinding DNS name.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err((status, msg)) = state.guard.check(&headers) {
        return rpc_error(status, ErrorObject::invalid_request(msg));
    }
    let sessions = &state.gateway.sessions;
    let body = state.gateway.metrics.render(
        &state.gateway.upstreams,
        sessions.len(),
        sessions.buffers().used(),
    );
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
