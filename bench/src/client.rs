//! Minimal load-generator clients: one WebSocket per connection, requests encoded up
//! front, so the driver spends as little CPU as possible and the server's cost shows.
//!
//! The witrpc client speaks the protocol-3 handshake and envelope directly (with the
//! workspace's codec and crypto crates); the jsonrpsee client sends JSON-RPC 2.0 text
//! frames; the echo client sends a binary frame of the witrpc request's size.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;
use witrpc_core::{
    CommunicationStatus, MessageType, ParameterSerializer, Service as _, WitMessage, WitRequest,
    WitRequestAuthorization, WitRequestInitialization, WitResponse, WitResponseAuthorization,
    WitResponseInitialization,
};
use witrpc_crypto::encrypted::EncryptedClientEncryptor;
use witrpc_crypto::plain::PlainClientEncryptor;
use witrpc_crypto::{ClientEncryptor, Opener, Sealer};

use crate::server::{Bench, BenchServiceEvents, BenchServiceServer, TOKEN, Target};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket with small buffers, so thousands of idle clients stay cheap.
pub(crate) async fn open(url: &str) -> anyhow::Result<Ws> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// What every connection of one target shares: the RSA key (one per run: generating
/// 2048-bit keys per connection would measure the driver) and the method ids.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) target: Target,
    encryptor: Option<Arc<EncryptedClientEncryptor>>,
}

impl Setup {
    pub(crate) fn new(target: Target) -> anyhow::Result<Self> {
        let encryptor = match target {
            Target::WitEncrypted => Some(Arc::new(EncryptedClientEncryptor::generate()?)),
            _ => None,
        };
        Ok(Self { target, encryptor })
    }
}

/// One connected, authorized (for witrpc) client.
pub(crate) struct Conn {
    pub(crate) ws: Ws,
    target: Target,
    ciphers: Option<(Box<dyn Sealer>, Box<dyn Opener>)>,
    next_id: u64,
}

/// A reply the driver understood.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The answer to request `id`, with its result bytes.
    Response { id: u64, data: Option<Bytes> },
    /// A server-pushed event with its first argument's bytes.
    Event { first_arg: Option<Bytes> },
}

impl Conn {
    pub(crate) async fn connect(url: &str, setup: &Setup) -> anyhow::Result<Self> {
        let ws = open(url).await?;
        let mut conn = Self { ws, target: setup.target, ciphers: None, next_id: 1 };
        if setup.target.is_witrpc() {
            conn.handshake(setup).await?;
        }
        Ok(conn)
    }

    async fn handshake(&mut self, setup: &Setup) -> anyhow::Result<()> {
        let encryptor: &dyn ClientEncryptor = match &setup.encryptor {
            Some(e) => e.as_ref(),
            None => &PlainClientEncryptor,
        };
        let init =
            WitRequestInitialization { public_key: Some(encryptor.public_key()), ..WitRequestInitialization::plain() };
        self.send_raw(MessageType::Initialization, Some(Bytes::from(init.encode()))).await?;
        let reply = self.read_message().await?.data.context("empty initialization reply")?;
        let reply = WitResponseInitialization::decode(encryptor.unwrap_reply(reply)?)?;
        if let Some(e) = reply.error_message {
            bail!("initialization refused: {e}");
        }
        let ciphers = encryptor.complete(reply.symmetric_key.as_deref(), reply.vector.as_deref())?;
        let (mut sealer, mut opener) = (ciphers.sealer, ciphers.opener);
        let auth = WitRequestAuthorization { token: Some(TOKEN.to_owned()) }.encode();
        let sealed = sealer.seal(Bytes::from(auth))?;
        self.send_raw(MessageType::Authorization, Some(sealed)).await?;
        let reply = self.read_message().await?.data.context("empty authorization reply")?;
        let reply = WitResponseAuthorization::decode(opener.open(reply)?)?;
        if !reply.is_authorized {
            bail!("not authorized");
        }
        self.ciphers = Some((sealer, opener));
        Ok(())
    }

    async fn send_raw(&mut self, kind: MessageType, data: Option<Bytes>) -> anyhow::Result<()> {
        let id = Uuid::from_u128(u128::from(self.next_id));
        self.next_id += 1;
        let frame = WitMessage::new(id, kind, data).encode();
        self.ws.send(Message::Binary(frame.into())).await?;
        Ok(())
    }

    async fn read_message(&mut self) -> anyhow::Result<WitMessage> {
        loop {
            match self.ws.next().await.context("connection closed")?? {
                Message::Binary(b) => return Ok(WitMessage::decode(b)?),
                Message::Close(c) => bail!("connection closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// Queues request `id` (not flushed). `payload` is what [`Payload`] prepared.
    pub(crate) async fn feed(&mut self, id: u64, payload: &Payload) -> anyhow::Result<()> {
        let message = match payload {
            Payload::Wit(plain) => {
                let data = match &mut self.ciphers {
                    Some((sealer, _)) => sealer.seal(plain.clone())?,
                    None => plain.clone(),
                };
                Message::Binary(
                    WitMessage::new(Uuid::from_u128(u128::from(id)), MessageType::Request, Some(data)).encode().into(),
                )
            }
            Payload::JsonRpc(template) => {
                Message::Text(template.replacen("\"id\":0", &format!("\"id\":{id}"), 1).into())
            }
            Payload::Echo(frame) => {
                let mut f = frame.to_vec();
                f[..8].copy_from_slice(&id.to_le_bytes());
                Message::Binary(f.into())
            }
        };
        self.ws.feed(message).await?;
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        self.ws.flush().await?;
        Ok(())
    }

    /// Reads the next reply, or `None` when the server closed.
    pub(crate) async fn next_reply(&mut self) -> anyhow::Result<Option<Reply>> {
        let Some(message) = self.ws.next().await else { return Ok(None) };
        self.decode(message?).map(Some)
    }

    /// Reads a reply that is already buffered, without waiting.
    pub(crate) fn try_next_reply(&mut self) -> Option<anyhow::Result<Option<Reply>>> {
        use futures_util::FutureExt as _;
        let message = self.ws.next().now_or_never()?;
        Some(match message {
            None => Ok(None),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(m)) => self.decode(m).map(Some),
        })
    }

    fn decode(&mut self, message: Message) -> anyhow::Result<Reply> {
        match self.target {
            Target::Jsonrpsee => {
                let text = match message {
                    Message::Text(t) => t,
                    other => bail!("unexpected jsonrpsee frame {other:?}"),
                };
                let value: serde_json::Value = serde_json::from_str(&text)?;
                let id = value.get("id").and_then(serde_json::Value::as_u64).context("jsonrpsee reply without id")?;
                if value.get("result").is_none() {
                    bail!("jsonrpsee error: {text}");
                }
                let data = Bytes::copy_from_slice(text.as_bytes());
                Ok(Reply::Response { id, data: Some(data) })
            }
            Target::Echo => {
                let b = message.into_data();
                let id = u64::from_le_bytes(b.get(..8).context("short echo")?.try_into()?);
                Ok(Reply::Response { id, data: Some(b) })
            }
            _ => {
                let bytes = match message {
                    Message::Binary(b) => b,
                    other => bail!("unexpected witrpc frame {other:?}"),
                };
                let message = WitMessage::decode(bytes)?;
                let data = match (message.data, &mut self.ciphers) {
                    (Some(d), Some((_, opener))) => Some(opener.open(d)?),
                    (d, _) => d,
                };
                match message.kind {
                    MessageType::Callback => {
                        let request = WitRequest::decode(data.context("empty event")?)?;
                        Ok(Reply::Event { first_arg: request.parameters.into_iter().next() })
                    }
                    _ => {
                        let response = WitResponse::decode(data.context("empty response")?)?;
                        if response.status != CommunicationStatus::Ok {
                            bail!(
                                "status {:?}: {:?} {:?}",
                                response.status,
                                response.error_message,
                                response.error_details
                            );
                        }
                        Ok(Reply::Response { id: message.id.as_u128() as u64, data: response.data })
                    }
                }
            }
        }
    }
}

/// A request prepared once per scenario.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// The encoded `WitRequest` (sealed per send when encrypted).
    Wit(Bytes),
    /// A JSON-RPC request with `"id":0` to replace.
    JsonRpc(String),
    /// A binary frame whose first 8 bytes carry the id.
    Echo(Bytes),
}

/// The call under test.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    /// `Add(1, 2)`.
    Add,
    /// Echo of `n` bytes.
    Bytes(usize),
    /// `Flood(n)`: raise `Tick` n times.
    Flood(i32),
}

impl Payload {
    pub(crate) fn new(target: Target, call: Call) -> anyhow::Result<Self> {
        let serializer: Box<dyn ParameterSerializer> = match target {
            Target::WitMsgpack => Box::new(witrpc::MessagePackSerializer::new()),
            _ => Box::new(witrpc::JsonSerializer),
        };
        // Arguments encoded by the workspace's own serializers, as the real client does.
        let arg = |v: &dyn witrpc_core::erased_serde::Serialize| -> anyhow::Result<Bytes> {
            Ok(Bytes::from(serializer.serialize(v).map_err(|e| anyhow::anyhow!("{e}"))?))
        };
        let wit = |method: usize, parameters: Vec<Bytes>| -> Payload {
            let service = BenchServiceServer::new(Bench::new(BenchServiceEvents::new()));
            let descriptor = service.descriptor();
            let resolved = descriptor.resolved();
            let request = WitRequest {
                token: TOKEN.to_owned(),
                method_name: descriptor.methods[method].name.to_owned(),
                parameters,
                parameter_types_by_name: resolved.method_parameter_types[method].clone(),
                contract_id: resolved.contract_id,
                method_id: resolved.method_ids[method],
                ..WitRequest::default()
            };
            Payload::Wit(Bytes::from(request.encode()))
        };
        Ok(match (target, call) {
            (Target::Jsonrpsee, Call::Add) => {
                Payload::JsonRpc(r#"{"jsonrpc":"2.0","id":0,"method":"add","params":[1,2]}"#.to_owned())
            }
            (Target::Jsonrpsee, Call::Bytes(n)) => {
                let text: String = noise(n).iter().map(|b| char::from(b'a' + b % 26)).collect();
                Payload::JsonRpc(format!(r#"{{"jsonrpc":"2.0","id":0,"method":"echo","params":["{text}"]}}"#))
            }
            (Target::Echo, Call::Add) => {
                // The size of the JSON witrpc Add request, envelope included.
                let Payload::Wit(p) = Payload::new(Target::WitJson, Call::Add)? else { bail!("not a witrpc payload") };
                Payload::Echo(Bytes::from(vec![0u8; p.len() + 25]))
            }
            (Target::Echo, Call::Bytes(n)) => Payload::Echo(Bytes::from(noise(n.max(8)))),
            (Target::Jsonrpsee | Target::Echo, Call::Flood(_)) => bail!("{call:?} is a witrpc-only call"),
            (_, Call::Add) => wit(0, vec![arg(&1i64)?, arg(&2i64)?]),
            (_, Call::Bytes(n)) => wit(1, vec![arg(&witrpc_core::ByteArrayRef(&noise(n)))?]),
            (_, Call::Flood(n)) => wit(2, vec![arg(&n)?]),
        })
    }
}

/// `n` pseudo-random bytes: large payloads that compression cannot shrink.
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
