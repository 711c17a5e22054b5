//! Keeps one stdio connection in one protocol era.
//!
//! Over stdio the process is the connection, and the first request decides
//! its era: `initialize` opens a handshake-era session (2024-11-05 …
//! 2025-11-25); a request whose `params._meta` names a supported 2026-07-28
//! version (`server/discover` included) makes it stateless. rmcp makes the
//! same choice, but afterwards it serves whatever arrives: an `initialize` on
//! a stateless connection gets an `InitializeResult`, and an enveloped
//! request on a handshake session is served as 2026-07-28. [`EraGate`] sits
//! between the byte stream and rmcp and answers those itself, the way the
//! Python SDK's dual-era server does:
//!
//! * `initialize` on a stateless connection: -32022 (unsupported protocol
//!   version), naming the versions this connection serves;
//! * a request carrying `_meta["io.modelcontextprotocol/protocolVersion"]`
//!   on a handshake session: -32600 (invalid request).
//!
//! Requests before the decision (`ping`, or ones without an envelope, which
//! rmcp answers -32602) leave the connection undecided. So does an envelope
//! naming a version the fixture does not serve; rmcp answers it -32022.
//!
//! Until rmcp has started serving (after `initialize`, or after the first
//! complete 2026-07-28 request other than `server/discover`, which it treats
//! as a probe) it ends the whole process on any message that is not a
//! request. Notifications sent in that window, such as the
//! `notifications/initialized` of a client whose `initialize` was refused
//! above, concern no session yet, so the gate drops them.

use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorData, GetMeta as _, ProtocolVersion,
    ServerJsonRpcMessage,
};
use rmcp::transport::Transport;

/// What the connection has become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Undecided,
    Handshake,
    Stateless,
}

/// What happens to one incoming message.
enum Admission {
    Pass,
    Drop,
    Refuse(Box<ServerJsonRpcMessage>),
}

/// A [`Transport`] that holds its connection to the era of its first
/// request; see the module docs.
pub struct EraGate<T> {
    inner: T,
    era: Era,
    /// Whether rmcp has left its opening phase and runs its service loop.
    serving: bool,
    /// The stateless versions served, oldest first.
    stateless_versions: Vec<ProtocolVersion>,
}

impl<T> EraGate<T> {
    /// Gates `inner`; `supported` are all versions the server speaks.
    pub fn new(inner: T, supported: &[ProtocolVersion]) -> Self {
        Self {
            inner,
            era: Era::Undecided,
            serving: false,
            stateless_versions: supported
                .iter()
                .filter(|version| !version.has_initialize())
                .cloned()
                .collect(),
        }
    }

    /// Decides the era if `message` is the deciding request, and says what
    /// to do with it.
    fn admit(&mut self, message: &ClientJsonRpcMessage) -> Admission {
        let ClientJsonRpcMessage::Request(request) = message else {
            return if self.serving {
                Admission::Pass
            } else {
                Admission::Drop
            };
        };
        match self.verdict(request) {
            Some(refusal) => Admission::Refuse(Box::new(refusal)),
            None => {
                self.serving |= self.starts_serving(&request.request);
                Admission::Pass
            }
        }
    }

    /// Whether rmcp starts its service loop on `request`: `initialize`, or
    /// a complete envelope naming a served version on anything but discovery.
    fn starts_serving(&self, request: &ClientRequest) -> bool {
        match request {
            ClientRequest::InitializeRequest(_) => true,
            ClientRequest::DiscoverRequest(_) => false,
            request => {
                let meta = request.get_meta();
                meta.protocol_version()
                    .is_some_and(|version| self.stateless_versions.contains(&version))
                    && meta
                        .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                        .is_empty()
            }
        }
    }

    /// The error that answers `request` when it belongs to the other era.
    fn verdict(
        &mut self,
        request: &rmcp::model::JsonRpcRequest<ClientRequest>,
    ) -> Option<ServerJsonRpcMessage> {
        let id = request.id.clone();
        if let ClientRequest::InitializeRequest(initialize) = &request.request {
            return match self.era {
                Era::Stateless => Some(ServerJsonRpcMessage::error(
                    ErrorData::unsupported_protocol_version(
                        initialize.params.protocol_version.clone(),
                        &self.stateless_versions,
                    ),
                    Some(id),
                )),
                Era::Undecided | Era::Handshake => {
                    self.era = Era::Handshake;
                    None
                }
            };
        }
        let enveloped = request.request.get_meta().protocol_version()?;
        match self.era {
            Era::Handshake => Some(ServerJsonRpcMessage::error(
                ErrorData::invalid_request(
                    "this connection opened with initialize and speaks the handshake era; \
                     2026-07-28 requests with a _meta envelope need a connection of their own",
                    None,
                ),
                Some(id),
            )),
            Era::Undecided if self.stateless_versions.contains(&enveloped) => {
                self.era = Era::Stateless;
                None
            }
            Era::Undecided | Era::Stateless => None,
        }
    }
}

impl<T> Transport<RoleServer> for EraGate<T>
where
    T: Transport<RoleServer>,
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            let message = self.inner.receive().await?;
            let refusal = match self.admit(&message) {
                Admission::Pass => return Some(message),
                Admission::Drop => {
                    eprintln!(
                        "conformance_server: dropped a message sent before any session: {message:?}"
                    );
                    continue;
                }
                Admission::Refuse(refusal) => *refusal,
            };
            // Spawned, so the answer still goes out if rmcp drops this
            // receive future for another event.
            let sending = self.inner.send(refusal);
            tokio::spawn(async move {
                if let Err(err) = sending.await {
                    eprintln!("conformance_server: refusal not delivered: {err}");
                }
            });
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
