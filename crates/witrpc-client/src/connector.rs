//! Opening a connection: transport connect, then the session's handshake
//! (Initialization, Authorization) within the connect timeout, then the connection task.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::Instrument;
use witrpc_core::BoxFuture;
use witrpc_core::crypto::plain::PlainClientEncryptor;
use witrpc_core::crypto::plain_v2::PlainClientEncryptor as PlainClientEncryptorV2;
use witrpc_core::crypto::{ClientEncryptor, CryptoError};
use witrpc_core::extensions::Features;
use witrpc_core::session::{ClientEvent, ClientSession, Keepalive, SessionError};
use witrpc_core::v2::ProtocolVersion;

use crate::connection::{Conn, Shared, Subscriptions, Unwritten, now, run};
use crate::error::ClientError;
use crate::transport::{ClientTransport, Inbound, TransportError};

/// Requests queued for one connection's task before callers wait.
const OUTBOUND_QUEUE: usize = 1024;

/// Makes one [`ClientEncryptor`] of the given protocol per connection attempt (run on
/// a blocking thread: key generation can take tens of milliseconds).
pub(crate) type EncryptorFactory =
    Arc<dyn Fn(ProtocolVersion) -> Result<Box<dyn ClientEncryptor>, CryptoError> + Send + Sync>;

/// A boxed error of a token provider.
pub(crate) type TokenError = Box<dyn std::error::Error + Send + Sync>;

/// Gives a fresh access token each time it is called (`with_token_provider`).
pub(crate) type TokenProvider = Arc<dyn Fn() -> BoxFuture<'static, Result<String, TokenError>> + Send + Sync>;

/// Everything needed to open (and re-open) a connection.
pub(crate) struct Connector {
    pub(crate) transport: Arc<dyn ClientTransport>,
    pub(crate) max_message_size: usize,
    /// `None`: no encryption.
    pub(crate) encryptor: Option<EncryptorFactory>,
    pub(crate) token: String,
    /// Asked for a token at every connect and before the current one expires; `None`:
    /// the constant `token`.
    pub(crate) provider: Option<TokenProvider>,
    pub(crate) keepalive: Keepalive,
    pub(crate) timeout: Duration,
    pub(crate) protocol: ProtocolVersion,
    /// Whether the last handshake found our extensions: the next one then sends its
    /// Authorization without waiting for the Initialization reply
    /// ([`ClientSession::with_pipelined_authorization`]; plain connections only).
    pub(crate) pipeline: AtomicBool,
    /// The generated key pair of an attempt that failed before sending it (server down,
    /// upgrade refused): taken by the next attempt. Each connection's Initialization still
    /// carries a key no other connection was sent.
    pub(crate) unsent_key: Mutex<Option<Box<dyn ClientEncryptor>>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("transport", &self.transport)
            .field("encrypted", &self.encryptor.is_some())
            .field("keepalive", &self.keepalive)
            .field("protocol", &self.protocol)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Connects, runs the handshake within the timeout and starts the connection's task.
    pub(crate) async fn open(&self, subscriptions: Arc<Subscriptions>) -> Result<Conn, ClientError> {
        let protocol = self.protocol;
        let kept = self.unsent_key.lock().unwrap_or_else(PoisonError::into_inner).take();
        let encryptor: Box<dyn ClientEncryptor> = match (kept, &self.encryptor, protocol) {
            (Some(kept), _, _) => kept,
            (None, None, ProtocolVersion::V2) => Box::new(PlainClientEncryptorV2),
            (None, None, _) => Box::new(PlainClientEncryptor),
            (None, Some(make), _) => {
                let make = make.clone();
                tokio::task::spawn_blocking(move || make(protocol))
                    .await
                    .map_err(|_| {
                        ClientError::Encryption(CryptoError::InvalidHandshake { reason: "key generation failed" })
                    })?
                    .map_err(ClientError::Encryption)?
            }
        };
        let span = tracing::debug_span!("witrpc_client", transport = ?self.transport);
        // Taken once a server is reached; until the Initialization carries it, the key
        // pair may serve the next attempt.
        let mut unsent = Some(encryptor);
        let handshake = async {
            let token = match &self.provider {
                Some(provider) => provider().await.map_err(ClientError::TokenProvider)?,
                None => self.token.clone(),
            };
            let (mut sink, mut stream) = self.transport.connect(self.max_message_size).await?;
            let Some(encryptor) = unsent.take() else {
                return Err(ClientError::Encryption(CryptoError::InvalidHandshake { reason: "no key pair" }));
            };
            // Announced to every protocol-3 server: a .NET one skips it.
            let mut session =
                ClientSession::with_features(now(), self.keepalive, encryptor, token, protocol, Features::SUPPORTED)
                    .with_resume_request(subscriptions.resume_request());
            if self.pipeline.load(Ordering::Relaxed) {
                session = session.with_pipelined_authorization();
            }
            let mut out = Unwritten::default();
            loop {
                out.flush_all(&mut session, &mut sink).await?;
                let bytes = match stream.next().await {
                    Some(Ok(Inbound::Heartbeat)) => continue,
                    Some(Ok(Inbound::Message(b))) => b,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(TransportError::Closed { code: None, reason: String::new() }.into()),
                };
                match session.handle_message(now(), bytes) {
                    Ok(Some(ClientEvent::Connected)) => break,
                    Ok(_) => {}
                    Err(e) => return Err(handshake_error(e)),
                }
            }
            Ok::<_, ClientError>((sink, stream, session))
        };
        let handshake = match tokio::time::timeout(self.timeout, handshake.instrument(span.clone())).await {
            Ok(done) => done,
            Err(_) => Err(ClientError::Timeout { after: self.timeout }),
        };
        // Pipeline next time only to a server that answered our extensions; one that
        // failed the handshake is waited for at each step (what every server takes). A
        // server not reached at all (refused, down) says nothing new.
        let reached_server = unsent.is_none();
        match &handshake {
            Ok((_, _, session)) => self.pipeline.store(session.features() != Features::NONE, Ordering::Relaxed),
            Err(_) if reached_server => self.pipeline.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        // An attempt that never reached a server sent no public key: its key pair (a
        // generated one; an RSA-2048 pair costs about a third of a second) is the next
        // attempt's, so a client retrying through an outage generates one, not one per try.
        if let Some(key) = unsent.filter(|_| self.encryptor.is_some()) {
            *self.unsent_key.lock().unwrap_or_else(PoisonError::into_inner) = Some(key);
        }
        let (sink, stream, session) = handshake?;
        let shared = Arc::new(Shared::new(subscriptions));
        let (outbound, requests) = mpsc::channel(OUTBOUND_QUEUE);
        let refresher = self.provider.clone();
        let (start, started) = tokio::sync::oneshot::channel();
        let _detached =
            tokio::spawn(run(shared.clone(), session, (sink, stream), requests, refresher, started).instrument(span));
        Ok(Conn { shared, outbound, start: std::sync::Mutex::new(Some(start)) })
    }
}

/// The client error a failed handshake is reported as.
fn handshake_error(e: SessionError) -> ClientError {
    match e {
        SessionError::Refused { message } => ClientError::HandshakeRefused { message },
        SessionError::ProtocolMismatch { message } => ClientError::ProtocolMismatch { message },
        SessionError::Unauthorized => ClientError::Unauthorized,
        SessionError::RefreshRefused => ClientError::TokenRefreshRefused,
        SessionError::Crypto(e) => ClientError::Encryption(e),
        SessionError::Codec(e) => ClientError::Protocol(e),
        other => ClientError::HandshakeRefused { message: other.to_string() },
    }
}
