//! The floor of the gateway's own stack, for the load benchmark (`scripts/bench load`): a plain
//! HTTP/1 reverse proxy on the same runtime (Tokio, multi-threaded), server (hyper) and
//! allocator (mimalloc) as `manifold`, doing no MCP work at all.
//!
//! ```text
//! bare_proxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:PORT/mcp
//! ```
//!
//! It prints its endpoint URL once it listens. Each downstream connection gets one upstream
//! connection of its own (so nothing is pooled or shared), every request is read whole and
//! POSTed there with its `Content-Type`, `Accept` and `Mcp-*` headers, and the answer is read
//! whole and sent back with its status, `Content-Type` and `Mcp-*` headers (the session id). What `manifold` costs above this
//! row is the MCP work and the pipeline; what this row costs above HAProxy is the stack.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

#[global_allocator]
static ALLOCATOR: manifold::alloc::Mimalloc = manifold::alloc::Mimalloc;

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next()?;
    args.next()
}

fn main() {
    let listen: SocketAddr = arg("--listen")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("--listen takes ADDRESS:PORT");
    let upstream: Uri = arg("--upstream")
        .expect("--upstream http://HOST:PORT/PATH is required")
        .parse()
        .expect("--upstream is a URL");
    let authority = upstream
        .authority()
        .expect("--upstream names a host")
        .to_string();
    let target: Uri = upstream
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .expect("a request target");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async move {
            let listener = TcpListener::bind(listen).await.expect("bind --listen");
            println!("http://{}/mcp", listener.local_addr().expect("an address"));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (authority, target) = (authority.clone(), target.clone());
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let Ok(sender) = connect(&authority).await else {
                        return;
                    };
                    let sender = std::sync::Arc::new(Mutex::new(sender));
                    let host = HeaderValue::from_str(&authority).expect("a Host value");
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (sender, target, host) = (sender.clone(), target.clone(), host.clone());
                        async move { Ok::<_, Infallible>(forward(req, &sender, target, host).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, Box<dyn std::error::Error>> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn forward(
    req: Request<Incoming>,
    sender: &Mutex<SendRequest<Full<Bytes>>>,
    target: Uri,
    host: HeaderValue,
) -> Response<Full<Bytes>> {
    let (head, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut out = Request::post(target)
        .body(Full::new(body))
        .expect("a request");
    let headers = out.headers_mut();
    headers.insert(http::header::HOST, host);
    for (name, value) in &head.headers {
        let n = name.as_str();
        if n == "content-type" || n == "accept" || n.starts_with("mcp-") {
            headers.append(name.clone(), value.clone());
        }
    }
    let answer = {
        let mut sender = sender.lock().await;
        if sender.ready().await.is_err() {
            return status(StatusCode::BAD_GATEWAY);
        }
        sender.send_request(out).await
    };
    let Ok(answer) = answer else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let (head, body) = answer.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = head.status;
    let headers = resp.headers_mut();
    for (name, value) in &head.headers {
        if name == http::header::CONTENT_TYPE || name.as_str().starts_with("mcp-") {
            headers.append(name.clone(), value.clone());
        }
    }
    resp
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    resp
}
