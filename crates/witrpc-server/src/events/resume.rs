//! Resuming a connection's event streams: the client's request, what the server keeps
//! of closed resume-capable connections (session records), and the answer with the
//! replay (the wire is in `ARCHITECTURE.md`, "Wire extensions of ours").

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use witrpc_core::session::Queued;

use super::{EventHub, Local, Routes, TOPIC_ALL, connection_stream, group_topic, now, user_topic};
use crate::history::{Position, Recovery};

/// Longest `Resume` member read (larger ones are ignored).
pub(crate) const MAX_RESUME_LEN: usize = 64 * 1024;
/// Most positions read from one `Resume` member.
pub(crate) const MAX_RESUME_STREAMS: usize = 256;
/// Session records (closed resume-capable connections) kept at once.
pub(crate) const MAX_SESSION_RECORDS: usize = 100_000;

/// What the server remembers of a closed connection that negotiated `resume`, for its
/// history's max age: who it was, its groups, and where its streams stood.
#[derive(Debug)]
pub(super) struct SessionRecord {
    pub(super) user: Option<Arc<str>>,
    pub(super) groups: HashSet<Arc<str>>,
    /// Each stream it received, with its position at the close (`None`: no history yet).
    pub(super) tops: Vec<(String, Option<Position>)>,
}

/// Session records, oldest first, bounded in count and age.
#[derive(Debug, Default)]
pub(super) struct SessionRecords {
    pub(super) by_id: HashMap<Uuid, SessionRecord>,
    pub(super) order: VecDeque<(Instant, Uuid)>,
}

impl SessionRecords {
    pub(super) fn prune(&mut self, now: Instant, ttl: Duration) {
        while let Some(&(at, id)) = self.order.front() {
            // `order` also holds records consumed by a resume: it is what is bounded.
            if now.saturating_duration_since(at) <= ttl && self.order.len() < MAX_SESSION_RECORDS {
                break;
            }
            self.order.pop_front();
            self.by_id.remove(&id);
        }
    }
}

/// A client's resume request: its previous connection and the last position it
/// received per stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResumeRequest {
    pub(crate) previous: Uuid,
    pub(crate) positions: Vec<Position>,
}

impl ResumeRequest {
    /// Reads a `Resume` member; `None` (logged) when it is too long or its first line
    /// is not a connection id. Unreadable position lines are skipped.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_RESUME_LEN {
            tracing::debug!(len = text.len(), "resume request too long; ignored");
            return None;
        }
        let mut lines = text.split('\n');
        let previous = lines.next().and_then(|l| Uuid::try_parse(l).ok());
        let Some(previous) = previous else {
            tracing::debug!("resume request without a previous connection id; ignored");
            return None;
        };
        let mut positions = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            if positions.len() == MAX_RESUME_STREAMS {
                tracing::debug!("resume request names too many streams; the rest is ignored");
                break;
            }
            match Position::parse(line) {
                Some(p) if !positions.iter().any(|q: &Position| q.stream == p.stream) => positions.push(p),
                _ => tracing::debug!("unreadable or repeated resume position; ignored"),
            }
        }
        Some(Self { previous, positions })
    }
}

/// The answer line of one stream: `<stream>\t<epoch>\t<offset>\t<0|1>`.
fn answer_line(out: &mut String, position: &Position, recovered: bool) {
    if !out.is_empty() {
        out.push('\n');
    }
    let _infallible = write!(out, "{position}");
    out.push_str(if recovered { "\t1" } else { "\t0" });
}

impl EventHub {
    /// Answers `request` for connection `id` (just registered, under the write lock):
    /// queues the recovered events, restores the previous connection's groups when it
    /// had the same identity. Returns the `Resumed` lines and the restored groups.
    pub(super) fn resume_locked(
        &self,
        routes: &mut Routes,
        id: Uuid,
        request: &ResumeRequest,
    ) -> (String, Vec<Arc<str>>) {
        let now = now();
        let Some(local) = routes.connections.get(&id) else { return (String::new(), Vec::new()) };
        let user = local.user.clone();
        let outbox = local.outbox.clone();
        let record = {
            let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            records.prune(now, self.record_ttl);
            // Another identity does not consume the record: its owner may still resume.
            if records.by_id.get(&request.previous).is_some_and(|r| r.user == user) {
                records.by_id.remove(&request.previous)
            } else {
                None
            }
        };
        let own =
            |stream: &str| stream == TOPIC_ALL || user.as_ref().is_some_and(|u| stream.strip_prefix("u:") == Some(u));
        let inherited = |stream: &str| {
            record.as_ref().is_some_and(|r| {
                stream == connection_stream(request.previous)
                    || stream.strip_prefix("g:").is_some_and(|g| r.groups.contains(g))
            })
        };
        // Where each stream starts from: the client's position, else the record's.
        let mut from: Vec<(Position, bool)> = Vec::new();
        let mut answer = String::new();
        for position in &request.positions {
            if own(&position.stream) || inherited(&position.stream) {
                from.push((position.clone(), true));
            } else if position.stream.starts_with("c:") || position.stream.starts_with("g:") {
                // Not this client's to recover: refused without saying where it stands.
                answer_line(&mut answer, position, false);
            }
        }
        if let Some(record) = &record {
            for (stream, top) in &record.tops {
                if from.iter().any(|(p, _)| &p.stream == stream) || !(own(stream) || inherited(stream)) {
                    continue;
                }
                match (top, self.history.top(stream, now)) {
                    (Some(top), _) => from.push((top.clone(), false)),
                    // No history at the close: everything since is missed.
                    (None, Some(current)) => from.push((Position { offset: 0, ..current }, false)),
                    (None, None) => {}
                }
            }
        }
        for (position, reported) in from {
            match self.history.since(&position, now) {
                Recovery::Recovered { events, top } => {
                    tracing::debug!(stream = %top.stream, replayed = events.len(), "stream recovered");
                    for event in events {
                        let _closed = outbox.send(Queued::Event { id, payload: event.payload, tag: event.tag });
                    }
                    answer_line(&mut answer, &top, true);
                }
                Recovery::Lost { top } => {
                    tracing::debug!(stream = %position.stream, "stream not recovered");
                    if reported || top.is_some() {
                        answer_line(&mut answer, top.as_ref().unwrap_or(&position), false);
                    }
                }
            }
        }
        let mut restored = Vec::new();
        if let Some(record) = record {
            for group in record.groups.into_iter().take(self.max_groups) {
                if let Some(local) = routes.connections.get_mut(&id) {
                    local.groups.insert(group.clone());
                }
                routes.groups.entry(group.clone()).or_default().insert(id);
                restored.push(group);
            }
            tracing::debug!(previous = %request.previous, groups = restored.len(), "session resumed");
        }
        (answer, restored)
    }

    /// Keeps what a closing resume-capable connection may resume.
    pub(super) fn record_session(&self, id: Uuid, local: &Local) {
        let now = now();
        let mut streams = vec![TOPIC_ALL.to_owned(), connection_stream(id)];
        streams.extend(local.user.iter().map(|u| user_topic(u)));
        streams.extend(local.groups.iter().map(|g| group_topic(g)));
        let tops = streams
            .into_iter()
            .map(|s| {
                let top = self.history.top(&s, now);
                (s, top)
            })
            .collect();
        let record = SessionRecord { user: local.user.clone(), groups: local.groups.clone(), tops };
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.prune(now, self.record_ttl);
        records.by_id.insert(id, record);
        records.order.push_back((now, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_requests_are_bounded_and_malformed_parts_are_ignored() {
        let id = Uuid::new_v4();
        let parsed = ResumeRequest::parse(&format!("{id}\nall\tab\t3\nbad line\ng:x\tcd\t1\nall\tab\t9\n")).unwrap();
        assert_eq!(parsed.previous, id);
        let streams: Vec<(&str, u64)> = parsed.positions.iter().map(|p| (p.stream.as_str(), p.offset)).collect();
        assert_eq!(streams, [("all", 3), ("g:x", 1)], "unreadable and repeated lines skipped");

        let many: String = (0..1000).map(|i| format!("\ng:{i}\tab\t1")).collect();
        assert_eq!(ResumeRequest::parse(&format!("{id}{many}")).unwrap().positions.len(), MAX_RESUME_STREAMS);
        assert_eq!(ResumeRequest::parse(&format!("{id}\n{}", "x".repeat(MAX_RESUME_LEN))), None, "too long");
        for bad in ["", "\nall\tab\t1", "not-an-id\nall\tab\t1", "\u{0}"] {
            assert_eq!(ResumeRequest::parse(bad), None, "{bad:?}");
        }
        let mut line = String::new();
        answer_line(&mut line, &Position { stream: "all".into(), epoch: "ab".into(), offset: 7 }, true);
        answer_line(&mut line, &Position { stream: "g:x".into(), epoch: "cd".into(), offset: 2 }, false);
        assert_eq!(line, "all\tab\t7\t1\ng:x\tcd\t2\t0");
    }
}
