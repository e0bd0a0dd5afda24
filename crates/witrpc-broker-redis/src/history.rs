//! The shared event history ([`SharedHistory`]) on a single Redis server.
//!
//! Each stream is a capped Redis stream (`XADD … MAXLEN`, entry id `<offset>-0`) beside
//! a small hash (epoch, last offset, max age). One Lua script assigns the next offset,
//! appends the signed frame and publishes it with its position, so the write and the
//! publish cannot be separated or reordered: every node sees a stream's events in
//! offset order, and a node that subscribes and then reads the stream misses nothing.
//! Scripts run by `EVALSHA`, loaded again when Redis lost them (a restart).
//!
//! On a Redis Cluster the same holds: a stream's keys take its topic's channel as their
//! hash tag, so the script's keys and the shard channel it `SPUBLISH`es to share one
//! slot (a topic whose name holds `{` or `}` breaks that: its appends fail, counted).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::{Value, aio::ConnectionLike as _};
use uuid::Uuid;
use witrpc_server::HistoryLimits;
use witrpc_server::StreamPosition;
use witrpc_server::broker::{BrokerError, HistoryEntry, HistoryRead, SharedHistory};

use crate::broker::{Outgoing, RedisBroker};
use crate::keys;

/// Most entries one read returns (the most a stream keeps).
const MAX_READ: usize = witrpc_server::MAX_EVENTS_PER_STREAM;

/// A Lua script and its SHA-1 (for `EVALSHA`).
pub(crate) struct Script {
    pub(crate) body: &'static str,
    pub(crate) sha: String,
}

impl Script {
    fn new(body: &'static str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, body.as_bytes());
        let sha = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Self { body, sha }
    }

    /// `SCRIPT LOAD`s the script (after Redis answered `NOSCRIPT`).
    pub(crate) async fn load(&self, conn: &mut impl redis::aio::ConnectionLike) -> redis::RedisResult<()> {
        redis::cmd("SCRIPT").arg("LOAD").arg(self.body).query_async::<String>(conn).await.map(drop)
    }

    /// Runs the script: `EVALSHA`, loading it first when Redis does not have it.
    async fn run(&self, conn: &mut crate::link::Link, keys: &[&str], args: &[&[u8]]) -> redis::RedisResult<Value> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(keys.len()).arg(keys).arg(args);
        match conn.req_packed_command(&cmd).await.and_then(Value::extract_error) {
            Err(e) if is_noscript(&e) => {
                self.load(conn).await?;
                conn.req_packed_command(&cmd).await.and_then(Value::extract_error)
            }
            other => other,
        }
    }
}

/// Whether Redis answered that it does not have the script.
pub(crate) fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// The append script ([`keys::APPEND`]).
pub(crate) static APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(keys::APPEND));
static SINCE: LazyLock<Script> = LazyLock::new(|| Script::new(keys::SINCE));
static TAKE_SESSION: LazyLock<Script> = LazyLock::new(|| Script::new(keys::TAKE_SESSION));

/// 16 random hex digits: the epoch of a stream an append creates (if it does); a
/// `Display` so it is written straight into the command.
pub(crate) struct NewEpoch(u64);

impl NewEpoch {
    pub(crate) fn random() -> Self {
        Self(Uuid::new_v4().as_u64_pair().0)
    }
}

impl std::fmt::Display for NewEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn backend_error(what: &'static str) -> BrokerError {
    BrokerError::Backend(what.into())
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    String::from_utf8(bytes(v)?.to_vec()).ok()
}

/// One `XRANGE` entry: `[id, [field, value, …]]` → (offset, time ms, frame).
fn entry(v: Value) -> Option<(u64, u64, Vec<u8>)> {
    let Value::Array(mut parts) = v else { return None };
    let fields = parts.pop()?;
    let id = std::str::from_utf8(bytes(parts.first()?)?).ok()?;
    let offset = id.strip_suffix("-0")?.parse().ok()?;
    let fields = match fields {
        Value::Array(f) => f,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    let (mut time, mut frame) = (None, None);
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match bytes(&k)? {
            b"t" => time = int(&v),
            b"f" => {
                if let Value::BulkString(b) = v {
                    frame = Some(b);
                }
            }
            _ => {}
        }
    }
    Some((offset, time?, frame?))
}

#[async_trait]
impl SharedHistory for RedisBroker {
    fn append(&self, stream: &str, limits: HistoryLimits, frame: Bytes) {
        let inner = &self.inner;
        let item = Outgoing::Recorded {
            // Signed with the stream's name: the frame is bound to its stream.
            frame: inner.sign(stream, frame),
            max_events: limits.max_events.clamp(1, MAX_READ),
            max_age_ms: millis(limits.max_age),
            stream: stream.to_owned(),
        };
        inner.enqueue(item);
    }

    async fn top(&self, stream: &str) -> Result<Option<StreamPosition>, BrokerError> {
        let meta = keys::history_meta(&self.inner.prefix, stream);
        let (epoch, offset): (Option<String>, Option<u64>) = self
            .inner
            .run(|mut c| async move { redis::cmd("HMGET").arg(meta).arg("e").arg("o").query_async(&mut c).await })
            .await?;
        Ok(epoch.zip(offset).map(|(epoch, offset)| StreamPosition { stream: stream.to_owned(), epoch, offset }))
    }

    async fn since(&self, from: &StreamPosition) -> Result<HistoryRead, BrokerError> {
        let meta = keys::history_meta(&self.inner.prefix, &from.stream);
        let key = keys::history(&self.inner.prefix, &from.stream);
        let wanted = from.offset.saturating_add(1).to_string();
        let count = MAX_READ.to_string();
        let answer = self
            .inner
            .run(|mut c| async move { SINCE.run(&mut c, &[&meta, &key], &[wanted.as_bytes(), count.as_bytes()]).await })
            .await?;
        let Value::Array(parts) = answer else { return Err(backend_error("unexpected answer to the history read")) };
        if parts.is_empty() {
            return Ok(HistoryRead::Lost { top: None });
        }
        let mut parts = parts.into_iter();
        let (Some(epoch), Some(top), Some(age), Some(now), Some(Value::Array(entries))) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(backend_error("malformed answer to the history read"));
        };
        let (Some(epoch), Some(top), Some(age), Some(now)) = (text(&epoch), int(&top), int(&age), int(&now)) else {
            return Err(backend_error("malformed answer to the history read"));
        };
        let position = StreamPosition { stream: from.stream.clone(), epoch, offset: top };
        let lost = |top: StreamPosition| Ok(HistoryRead::Lost { top: Some(top) });
        let any_epoch = from.epoch.is_empty() && from.offset == 0;
        if (!any_epoch && from.epoch != position.epoch) || from.offset > top {
            return lost(position);
        }
        if from.offset == top {
            return Ok(HistoryRead::Recovered { entries: Vec::new(), top: position });
        }
        let mut out = Vec::with_capacity(entries.len());
        for (i, raw) in entries.into_iter().enumerate() {
            let Some((offset, at, frame)) = entry(raw) else { return lost(position) };
            // Consecutive from the first missed one, and that one not expired: or nothing.
            if offset != from.offset + 1 + i as u64 || (i == 0 && now.saturating_sub(at) > age) {
                return lost(position);
            }
            let Some(frame) = self.inner.verify(from.stream.as_bytes(), frame) else {
                self.inner.stats.lost(1, "bad_signature");
                return lost(position);
            };
            out.push(HistoryEntry { offset, frame: Bytes::from(frame) });
        }
        if out.last().map(|e| e.offset) != Some(top) {
            return lost(position);
        }
        Ok(HistoryRead::Recovered { entries: out, top: position })
    }

    async fn save_session(&self, connection: Uuid, record: Bytes, ttl: Duration) -> Result<(), BrokerError> {
        let key = keys::session(&self.inner.prefix, &connection.to_string());
        let ttl = millis(ttl);
        self.inner
            .run(|mut c| async move {
                redis::cmd("SET").arg(key).arg(&record[..]).arg("PX").arg(ttl).query_async::<()>(&mut c).await
            })
            .await
    }

    async fn session(&self, connection: Uuid) -> Result<Option<Bytes>, BrokerError> {
        let key = keys::session(&self.inner.prefix, &connection.to_string());
        let record: Option<Vec<u8>> =
            self.inner.run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await }).await?;
        Ok(record.map(Bytes::from))
    }

    async fn forget_session(&self, connection: Uuid) -> Result<(), BrokerError> {
        let key = keys::session(&self.inner.prefix, &connection.to_string());
        self.inner.run(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await }).await
    }

    /// One script: the read and, for the owner, the delete in one round trip.
    async fn take_session(&self, connection: Uuid, owner: &[u8]) -> Result<Option<Bytes>, BrokerError> {
        let key = keys::session(&self.inner.prefix, &connection.to_string());
        let answer = self.inner.run(|mut c| async move { TAKE_SESSION.run(&mut c, &[&key], &[owner]).await }).await?;
        match answer {
            Value::Nil => Ok(None),
            Value::BulkString(record) => Ok(Some(Bytes::from(record))),
            _ => Err(backend_error("unexpected answer to the session record's read")),
        }
    }
}
