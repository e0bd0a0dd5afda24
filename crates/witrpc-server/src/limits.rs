//! Default limits. Each is a safe value for a server on the open internet; every one
//! can be changed on [`crate::WitServerBuilder`].

use std::time::Duration;

/// Largest accepted message: 16 MiB. The .NET server allows 256 MiB; a smaller bound
/// caps what one peer can make the server buffer. Raise it with
/// [`crate::WitServerBuilder::with_max_message_size`].
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Largest accepted message before authorization: 64 KiB. Handshake messages are a few
/// hundred bytes; an unauthenticated peer has no business sending more.
pub const DEFAULT_MAX_HANDSHAKE_MESSAGE_SIZE: usize = 64 * 1024;

/// Time a connection has to finish Initialization + Authorization: 10 s (.NET: 30 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests one connection may have running at once: 128. Beyond it the server stops
/// reading that connection (TCP back-pressure) until a call finishes.
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: usize = 128;

/// Payload bytes queued for one connection's writer: 16 MiB (one maximal message). An
/// event that would exceed it disconnects that slow client with a reason.
pub const DEFAULT_MAX_OUTBOUND_BYTES: usize = 16 * 1024 * 1024;

/// Messages queued for one connection's writer before its queue counts as congested:
/// 1024. A burst may go past it (up to 16 × this, and [`DEFAULT_MAX_OUTBOUND_BYTES`]);
/// a client whose queue stays congested for [`DEFAULT_SLOW_CONSUMER_TIMEOUT`] is slow,
/// and its events' `SlowConsumerPolicy` decides (disconnect with a reason by default,
/// never a silent gap).
pub const DEFAULT_OUTBOUND_QUEUE_CAPACITY: usize = 1024;

/// How long a connection's queue may stay above its capacity before the client counts
/// as slow: 5 s. A fast reader drains a burst in milliseconds; a stalled one does not.
pub const DEFAULT_SLOW_CONSUMER_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the server pings each connection: 15 s. Peers answer at the transport level
/// (WebSocket Pong, which .NET and browsers do by themselves).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// How long a connection may stay silent (no message, ping or pong) before it is closed
/// and its slot freed: 30 s, two missed keepalive rounds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Groups one connection may be in at once: 256. A bound, so a peer calling a method
/// that joins groups cannot make the server track an unbounded set for it.
pub const DEFAULT_MAX_GROUPS_PER_CONNECTION: usize = 256;

/// How long a connection stays open past its access token's expiry: 2 s, so a refresh
/// sent just before the expiry still lands on a slow link.
pub const DEFAULT_TOKEN_EXPIRY_GRACE: Duration = witrpc_core::session::DEFAULT_TOKEN_EXPIRY_GRACE;
