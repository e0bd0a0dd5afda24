//! Interest announcements on the control channel `P:ctl`: which node subscribes to which
//! topic, so a node never publishes an event no other node has receivers for.
//!
//! ```text
//! u8 kind         '+' node added topics, '-' removed them, 'S' its full set (replaces),
//!                 '?' asks every node for its full set, 'A' acknowledges (node, seq),
//!                 'R' revokes the users listed (in place of topics): every other node
//!                 closes their connections
//! u8 len, bytes   the sending node
//! u64             sequence number (of the message, or the one acknowledged)
//! u8 len, bytes   'A': the node acknowledged; otherwise empty
//! u32 count, then per topic u16 len, bytes
//! ```
//!
//! A node that announces a new topic waits until every live node acknowledged it, so
//! once a join returns every node routes the group's events there. Until a node has
//! every live node's full set (at start, after an outage) it assumes every topic has
//! remote receivers: uncertainty costs a publish, never a lost event.

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Control {
    pub(crate) kind: u8,
    pub(crate) node: String,
    pub(crate) seq: u64,
    pub(crate) acked: String,
    pub(crate) topics: Vec<String>,
}

pub(crate) const ADD: u8 = b'+';
pub(crate) const REMOVE: u8 = b'-';
pub(crate) const FULL: u8 = b'S';
pub(crate) const ASK: u8 = b'?';
pub(crate) const ACK: u8 = b'A';
pub(crate) const REVOKE: u8 = b'R';

impl Control {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.topics.iter().map(|t| 2 + t.len()).sum::<usize>());
        out.push(self.kind);
        push_short(&mut out, &self.node);
        out.extend_from_slice(&self.seq.to_le_bytes());
        push_short(&mut out, &self.acked);
        let topics: Vec<&String> = self.topics.iter().filter(|t| t.len() <= usize::from(u16::MAX)).collect();
        out.extend_from_slice(&u32::try_from(topics.len()).unwrap_or(u32::MAX).to_le_bytes());
        for t in topics {
            out.extend_from_slice(&u16::try_from(t.len()).unwrap_or(u16::MAX).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = bytes;
        let kind = *take(&mut r, 1)?.first()?;
        let node = short(&mut r)?;
        let seq = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
        let acked = short(&mut r)?;
        let count = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?);
        let count = usize::try_from(count).ok()?;
        if count > r.len() / 2 {
            return None;
        }
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(u16::from_le_bytes(take(&mut r, 2)?.try_into().ok()?));
            topics.push(std::str::from_utf8(take(&mut r, len)?).ok()?.to_owned());
        }
        r.is_empty().then_some(Self { kind, node, seq, acked, topics })
    }
}

fn push_short(out: &mut Vec<u8>, s: &str) {
    // Node ids are at most 64 bytes (checked at connect).
    let s = &s.as_bytes()[..s.len().min(255)];
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(s);
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, tail) = r.split_at(n);
    *r = tail;
    Some(head)
}

fn short(r: &mut &[u8]) -> Option<String> {
    let len = usize::from(*take(r, 1)?.first()?);
    std::str::from_utf8(take(r, len)?).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip_and_truncations_are_refused() {
        let m = Control {
            kind: ADD,
            node: "a".into(),
            seq: 7,
            acked: String::new(),
            topics: vec!["g:x y".into(), "all".into()],
        };
        let bytes = m.encode();
        assert_eq!(Control::decode(&bytes), Some(m));
        for n in 0..bytes.len() {
            assert_eq!(Control::decode(&bytes[..n]), None, "prefix of {n} bytes");
        }
    }
}
