//! Resumable event streams, client side: the last position received per stream, the
//! `Resume` request sent on a reconnect, and what the server's answer means for each
//! subscribed event.
//!
//! A server that keeps history of an event stamps it with `<stream>\t<epoch>\t<offset>`
//! (offsets 1, 2, 3… per epoch). The client remembers the last one per stream; an
//! offset already seen is a duplicate (dropped), an offset that skips one is a gap (the
//! connection is dropped so the reconnect resumes: a hole is never silent).

use std::collections::HashSet;

use uuid::Uuid;

use crate::names::{NameMap, NameSet};

/// Streams tracked at once (the server reads at most as many from a resume request).
pub(crate) const MAX_STREAMS: usize = 256;
/// Longest stream name tracked (longer ones are not resumable).
const MAX_STREAM_NAME: usize = 200;

/// What one received position means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Observed {
    /// Deliver it.
    Next,
    /// Already delivered (an offset at or below the last one): drop it.
    Duplicate,
    /// Offsets were skipped on `stream`: deliver nothing more on this connection.
    Gap { stream: String },
}

/// The resume state of a client; it outlives its connections.
#[derive(Debug, Default)]
pub(crate) struct ResumeState {
    /// The id the server gave the last connection.
    last_id: Option<Uuid>,
    /// Last position per stream: epoch and offset.
    streams: NameMap<String, (String, u64)>,
    /// The streams each event name arrived on.
    by_event: NameMap<String, NameSet<String>>,
    /// The streams named in the last resume request.
    asked: Vec<String>,
    /// The event name and stream of the last position observed, already in `by_event`:
    /// a run of one event on one stream skips that bookkeeping.
    last_seen: (String, String),
    /// A connection was established before (the next one is a reconnect).
    connected_before: bool,
}

/// How a (re)connection went for the event streams.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Not the first connection: subscriptions get a marker.
    pub(crate) reconnect: bool,
    /// The server accepted `resume` (else the marker is the bare `Reconnected`).
    pub(crate) resumed: bool,
    /// Streams whose missed events are not all replayed.
    pub(crate) lost: NameSet<String>,
    /// A stream answered 0 that no subscribed event was seen on: counts for every event.
    pub(crate) lost_unknown: bool,
}

impl ResumeState {
    /// The `Resume` member for the next connection: `None` before a first connection
    /// told us its id.
    pub(crate) fn request(&mut self) -> Option<String> {
        let previous = self.last_id?;
        let own = format!("c:{previous}");
        // Another connection's own stream was resumed already (or is gone): only the
        // last connection's is asked for.
        self.streams.retain(|stream, _| !stream.starts_with("c:") || *stream == own);
        let mut text = previous.to_string();
        self.asked.clear();
        for (stream, (epoch, offset)) in &self.streams {
            text.push_str(&format!("\n{stream}\t{epoch}\t{offset}"));
            self.asked.push(stream.clone());
        }
        Some(text)
    }

    /// Records a positioned event of `event`.
    pub(crate) fn observe(&mut self, event: &str, position: &str) -> Observed {
        let Some((stream, epoch, offset)) = witrpc_core::StreamPosition::split(position) else {
            tracing::debug!("unreadable stream position ignored");
            return Observed::Next;
        };
        if stream.len() > MAX_STREAM_NAME {
            return Observed::Next;
        }
        if self.last_seen.0 != event || self.last_seen.1 != stream {
            self.note_stream_of(event, stream);
        }
        let room = self.streams.len() < MAX_STREAMS;
        match self.streams.get_mut(stream) {
            Some((known, last)) if known == epoch => {
                if offset <= *last {
                    return Observed::Duplicate;
                }
                if offset > *last + 1 {
                    return Observed::Gap { stream: stream.to_owned() };
                }
                *last = offset;
            }
            // A new epoch (the stream was recreated): it starts over.
            Some(slot) => *slot = (epoch.to_owned(), offset),
            None if room => {
                self.streams.insert(stream.to_owned(), (epoch.to_owned(), offset));
            }
            None => tracing::debug!("too many event streams; this one is not resumable"),
        }
        Observed::Next
    }

    /// Records that `event` arrives on `stream` (bounded: past [`MAX_STREAMS`] of either,
    /// new ones are not recorded).
    fn note_stream_of(&mut self, event: &str, stream: &str) {
        let room = self.by_event.len() < MAX_STREAMS;
        let recorded = match self.by_event.get_mut(event) {
            Some(streams) if streams.contains(stream) => true,
            Some(streams) if streams.len() < MAX_STREAMS => streams.insert(stream.to_owned()),
            Some(_) => false,
            None if room => {
                self.by_event.insert(event.to_owned(), NameSet::from_iter([stream.to_owned()]));
                true
            }
            None => false,
        };
        // Remembered only once recorded, so a pair left out is tried again next time.
        if recorded {
            let (last_event, last_stream) = &mut self.last_seen;
            last_event.clear();
            last_event.push_str(event);
            last_stream.clear();
            last_stream.push_str(stream);
        }
    }

    /// Takes in the server's `Resumed` answer (`None`: the server does not accept
    /// `resume`) of a new connection.
    pub(crate) fn connected(&mut self, answer: Option<&str>) -> Outcome {
        let mut outcome = Outcome { reconnect: self.connected_before, ..Outcome::default() };
        self.connected_before = true;
        let asked = std::mem::take(&mut self.asked);
        let Some(answer) = answer else {
            self.last_id = None;
            return outcome;
        };
        outcome.resumed = true;
        let mut lines = answer.split('\n');
        self.last_id = lines.next().and_then(|l| Uuid::try_parse(l).ok());
        let mut answered = HashSet::new();
        for line in lines {
            let mut parts = line.split('\t');
            let (Some(stream), Some(epoch), Some(Ok(offset)), Some(flag), None) =
                (parts.next(), parts.next(), parts.next().map(str::parse::<u64>), parts.next(), parts.next())
            else {
                continue;
            };
            answered.insert(stream.to_owned());
            if flag == "1" {
                continue; // the replay moves the position on
            }
            // Not recovered: continue from where the stream stands now.
            if self.streams.contains_key(stream) || self.streams.len() < MAX_STREAMS {
                self.streams.insert(stream.to_owned(), (epoch.to_owned(), offset));
            }
            if !self.by_event.values().any(|s| s.contains(stream)) {
                outcome.lost_unknown = true;
            }
            outcome.lost.insert(stream.to_owned());
        }
        // A stream asked for and not answered was not recovered either.
        for stream in asked.into_iter().filter(|s| !answered.contains(s)) {
            self.streams.remove(&stream);
            outcome.lost.insert(stream);
        }
        outcome
    }

    /// The marker for subscribers of `event` after `outcome`: `None` for the bare
    /// `Reconnected` (no resume, or the event never arrived with a position, so the
    /// client cannot vouch for it), else whether every missed event follows.
    pub(crate) fn recovered(&self, outcome: &Outcome, event: &str) -> Option<bool> {
        let streams = self.by_event.get(event).filter(|_| outcome.resumed)?;
        Some(!outcome.lost_unknown && streams.is_disjoint(&outcome.lost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_detect_duplicates_and_gaps_and_feed_the_next_request() {
        let mut s = ResumeState::default();
        assert_eq!(s.request(), None, "no connection yet");
        let id = Uuid::new_v4();
        let first = s.connected(Some(&id.to_string()));
        assert!(!first.reconnect && first.resumed);
        assert_eq!(s.observe("Tick", "all\tab\t1"), Observed::Next);
        assert_eq!(s.observe("Tick", "all\tab\t2"), Observed::Next);
        assert_eq!(s.observe("Tick", "all\tab\t2"), Observed::Duplicate);
        assert_eq!(s.observe("Tick", "all\tab\t4"), Observed::Gap { stream: "all".into() });
        assert_eq!(s.observe("Tick", "all\tcd\t9"), Observed::Next, "a new epoch starts over");
        assert_eq!(s.observe("Tick", "garbage"), Observed::Next, "unreadable: delivered, not tracked");
        assert_eq!(s.request(), Some(format!("{id}\nall\tcd\t9")));
    }

    #[test]
    fn every_stream_an_event_arrived_on_counts_for_its_marker_however_they_interleave() {
        let mut s = ResumeState::default();
        let id = Uuid::new_v4();
        s.connected(Some(&id.to_string()));
        for (stream, offset) in [("all", 1), ("all", 2), ("g:x", 1), ("all", 3), ("g:x", 2), ("g:x", 3)] {
            assert_eq!(s.observe("Tick", &format!("{stream}\tab\t{offset}")), Observed::Next);
        }
        assert_eq!(s.observe("Chat", "all\tab\t4"), Observed::Next, "another event, same stream");
        let _request = s.request();
        let next = Uuid::new_v4();
        let outcome = s.connected(Some(&format!("{next}\nall\tab\t4\t1\ng:x\tab\t9\t0")));
        assert_eq!(s.recovered(&outcome, "Tick"), Some(false), "g:x was not recovered");
        assert_eq!(s.recovered(&outcome, "Chat"), Some(true), "Chat came only on all");
    }

    #[test]
    fn the_answer_says_per_event_whether_it_was_recovered() {
        let mut s = ResumeState::default();
        let id = Uuid::new_v4();
        s.connected(Some(&id.to_string()));
        s.observe("Tick", "all\tab\t5");
        s.observe("Chat", "g:room\tef\t2");
        s.observe("Note", "u:ann\t01\t1");
        let _request = s.request();
        let next = Uuid::new_v4();
        let outcome = s.connected(Some(&format!("{next}\nall\tab\t7\t1\ng:room\tef\t90\t0")));
        assert!(outcome.reconnect);
        assert_eq!(s.recovered(&outcome, "Tick"), Some(true));
        assert_eq!(s.recovered(&outcome, "Chat"), Some(false));
        assert_eq!(s.recovered(&outcome, "Note"), Some(false), "asked and not answered");
        assert_eq!(s.recovered(&outcome, "Never"), None, "never seen with a position");
        // The lost stream continues from its top without a false gap.
        assert_eq!(s.observe("Chat", "g:room\tef\t91"), Observed::Next);
        assert!(s.request().is_some_and(|r| r.starts_with(&next.to_string())));
        // A server without resume: the bare marker.
        let plain = s.connected(None);
        assert_eq!(s.recovered(&plain, "Tick"), None);
        assert_eq!(s.request(), None);
    }
}
