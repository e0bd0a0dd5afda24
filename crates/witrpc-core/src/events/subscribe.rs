//! The subscribing half: the client connection publishes each received event to the
//! matching [`EventSubscription`]s, which typed [`EventStream`]s decode.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::error::ParameterError;
use crate::serializer::ParameterSerializer;

/// Something a subscription may yield instead of an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The subscriber fell behind and `missed` events were dropped at this point.
    #[error(
        "{missed} events were dropped because the subscriber did not keep up; read the stream faster or raise the subscription capacity"
    )]
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
    /// The event's arguments could not be decoded as the declared types.
    #[error("cannot decode event arguments")]
    Decode(#[source] ParameterError),
    /// The connection was lost and re-established here: events raised in between were
    /// not received. The stream goes on with events from the new connection.
    #[error("the connection was re-established; events raised while it was down were missed")]
    Reconnected,
    /// The connection was lost and re-established here, and the client resumed its
    /// event streams (the server keeps history of this event). `recovered = true`: every
    /// event raised in between follows, once and in order, then live ones.
    /// `recovered = false`: the history no longer covered the gap and nothing of it is
    /// replayed (events were missed; reload the state the events describe).
    #[error("the connection was re-established; missed events recovered: {recovered}")]
    Resumed {
        /// Whether every missed event follows.
        recovered: bool,
    },
}

#[derive(Debug)]
enum Item {
    Event(Vec<Bytes>, Option<Arc<str>>),
    Lagged(u64),
    Reconnected,
    Resumed(bool),
}

/// Creates a bounded subscription and its publishing end.
///
/// The publisher never blocks: when the subscriber's buffer of `capacity` events is
/// full, events are counted and the stream later yields [`EventError::Lagged`] at
/// exactly the place they were dropped.
pub fn event_channel(capacity: usize) -> (EventPublisher, EventSubscription) {
    let (tx, rx) = mpsc::channel(capacity.max(2));
    (EventPublisher { tx, missed: 0 }, EventSubscription { rx })
}

/// The publishing end of an [`EventSubscription`], held by the client connection.
#[derive(Debug)]
pub struct EventPublisher {
    tx: mpsc::Sender<Item>,
    missed: u64,
}

impl EventPublisher {
    /// Publishes one event's raw arguments. Returns `false` once the subscription was dropped.
    pub fn publish(&mut self, parameters: Vec<Bytes>) -> bool {
        self.publish_at(parameters, None)
    }

    /// Publishes one event's raw arguments with its stream position (the server's
    /// `StreamPosition` text, `<stream>\t<epoch>\t<offset>`), when it sent one.
    /// Returns `false` once the subscription was dropped.
    pub fn publish_at(&mut self, parameters: Vec<Bytes>, position: Option<Arc<str>>) -> bool {
        if self.missed > 0 {
            match self.tx.try_send(Item::Lagged(self.missed)) {
                Ok(()) => self.missed = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.missed += 1;
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(Item::Event(parameters, position)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Marks the place where the connection was re-established. Returns `false` once the
    /// subscription was dropped. A full buffer counts the marker as a lag instead.
    pub fn publish_reconnected(&mut self) -> bool {
        self.publish_marker(Item::Reconnected)
    }

    /// Marks the place where the connection was re-established and the stream resumed
    /// (see [`EventError::Resumed`]). Returns `false` once the subscription was dropped.
    pub fn publish_resumed(&mut self, recovered: bool) -> bool {
        self.publish_marker(Item::Resumed(recovered))
    }

    fn publish_marker(&mut self, item: Item) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the subscriber is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A stream of one event's raw arguments; ends when the connection closes.
#[derive(Debug)]
pub struct EventSubscription {
    rx: mpsc::Receiver<Item>,
}

impl EventSubscription {
    /// The same subscription, yielding each event with its stream position.
    pub fn positioned(self) -> PositionedEvents {
        PositionedEvents { rx: self.rx }
    }
}

impl Stream for EventSubscription {
    type Item = Result<Vec<Bytes>, EventError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|i| match i {
                Item::Event(p, _) => Ok(p),
                Item::Lagged(missed) => Err(EventError::Lagged { missed }),
                Item::Reconnected => Err(EventError::Reconnected),
                Item::Resumed(recovered) => Err(EventError::Resumed { recovered }),
            })
        })
    }
}

/// Where an event stands in its server-side stream (servers that keep history of it send
/// this to clients that resume; see `ARCHITECTURE.md`, "Wire extensions of ours").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamPosition {
    /// The stream: `all`, `g:<group>`, `u:<user>` or `c:<connection id>`.
    pub stream: String,
    /// The stream's incarnation; offsets compare only within one epoch.
    pub epoch: String,
    /// 1 for the stream's first event, then 2, 3, …
    pub offset: u64,
}

impl StreamPosition {
    /// Reads the wire text `<stream>\t<epoch>\t<offset>`; `None` when malformed.
    ///
    /// ```
    /// use witrpc_core::StreamPosition;
    /// let p = StreamPosition::parse("g:room\t0123456789abcdef\t42").unwrap();
    /// assert_eq!((p.stream.as_str(), p.offset), ("g:room", 42));
    /// assert_eq!(p.to_string(), "g:room\t0123456789abcdef\t42");
    /// assert!(StreamPosition::parse("all\tepoch").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let (stream, epoch, offset) = Self::split(text)?;
        Some(Self { stream: stream.to_owned(), epoch: epoch.to_owned(), offset })
    }

    /// [`StreamPosition::parse`] without allocating: the stream, the epoch and the offset.
    pub fn split(text: &str) -> Option<(&str, &str, u64)> {
        // Positions are short: a plain scan beats `memchr`'s setup.
        let tab = |s: &str| s.bytes().position(|b| b == b'\t');
        let first = tab(text)?;
        let (stream, rest) = (&text[..first], &text[first + 1..]);
        let second = tab(rest)?;
        let (epoch, offset) = (&rest[..second], &rest[second + 1..]);
        if stream.is_empty() || epoch.is_empty() {
            return None;
        }
        // A fourth field would leave a tab in `offset`, which does not parse.
        Some((stream, epoch, offset.parse().ok()?))
    }
}

/// The wire text, `<stream>\t<epoch>\t<offset>`.
impl fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\t{}\t{}", self.stream, self.epoch, self.offset)
    }
}

/// One event's raw arguments and, when the server sent one, its stream position.
#[derive(Debug, Clone)]
pub struct PositionedEvent {
    /// The encoded arguments, one per parameter.
    pub parameters: Vec<Bytes>,
    /// Its place in the server's history of the event (`None` without history).
    pub position: Option<StreamPosition>,
}

/// [`EventSubscription::positioned`]: events with their stream positions.
#[derive(Debug)]
pub struct PositionedEvents {
    rx: mpsc::Receiver<Item>,
}

impl Stream for PositionedEvents {
    type Item = Result<PositionedEvent, EventError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|i| match i {
                Item::Event(parameters, position) => {
                    Ok(PositionedEvent { parameters, position: position.as_deref().and_then(StreamPosition::parse) })
                }
                Item::Lagged(missed) => Err(EventError::Lagged { missed }),
                Item::Reconnected => Err(EventError::Reconnected),
                Item::Resumed(recovered) => Err(EventError::Resumed { recovered }),
            })
        })
    }
}

/// Decodes one event's raw arguments into `T`.
pub type EventDecoder<T> = fn(&dyn ParameterSerializer, &[Bytes]) -> Result<T, ParameterError>;

/// A typed stream of events; generated clients return these.
pub struct EventStream<T> {
    subscription: EventSubscription,
    serializer: Arc<dyn ParameterSerializer>,
    decode: EventDecoder<T>,
}

impl<T> fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").field("serializer", &self.serializer.name()).finish()
    }
}

impl<T> EventStream<T> {
    /// Wraps a raw subscription with a decoder.
    pub fn new(
        subscription: EventSubscription,
        serializer: Arc<dyn ParameterSerializer>,
        decode: EventDecoder<T>,
    ) -> Self {
        Self { subscription, serializer, decode }
    }
}

impl<T> Unpin for EventStream<T> {}

impl<T> Stream for EventStream<T> {
    type Item = Result<T, EventError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        Pin::new(&mut this.subscription).poll_next(cx).map(|item| {
            item.map(|r| r.and_then(|p| (this.decode)(this.serializer.as_ref(), &p).map_err(EventError::Decode)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::StreamPosition;

    #[test]
    fn a_position_has_exactly_three_fields_and_a_numeric_offset() {
        assert_eq!(StreamPosition::split("g:room\tab12\t42"), Some(("g:room", "ab12", 42)));
        assert_eq!(StreamPosition::split("c:a\tb\tc\t7"), None, "four fields");
        assert_eq!(StreamPosition::split("all\tab\t7\t"), None, "a trailing tab");
        assert_eq!(StreamPosition::split("all\tab"), None, "two fields");
        assert_eq!(StreamPosition::split("\tab\t7"), None, "no stream");
        assert_eq!(StreamPosition::split("all\t\t7"), None, "no epoch");
        assert_eq!(StreamPosition::split("all\tab\t"), None, "no offset");
        assert_eq!(StreamPosition::split("all\tab\t-1"), None, "a negative offset");
        assert_eq!(StreamPosition::split("all\tab\tx"), None);
    }
}
