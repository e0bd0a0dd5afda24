//! Who listens where: the interest protocol on the control channel (`control.rs` has
//! its wire), the acknowledgements a join waits for, and the routing question
//! "may this topic have receivers on another node?".

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, Weak};

use bytes::Bytes;
use witrpc_server::broker::BrokerError;

use super::Inner;
use crate::control::{self, Control};
use crate::keys;

/// Which other node has receivers for which topic (from the control channel).
#[derive(Debug, Default)]
pub(super) struct Interest {
    pub(super) by_node: HashMap<String, HashSet<String>>,
    /// Every live node's full set is known; until then every topic counts as remote.
    pub(super) synced: bool,
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) waiting: HashSet<String>,
    pub(super) done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Inner {
    /// The control channel, `P:ctl` (named once, at connect: every received frame is
    /// compared with it).
    pub(super) fn ctl_channel(&self) -> &str {
        &self.ctl
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) async fn send_control(
        &self,
        kind: u8,
        seq: u64,
        acked: &str,
        topics: Vec<String>,
    ) -> Result<(), BrokerError> {
        let message = Control { kind, node: self.node.clone(), seq, acked: acked.to_owned(), topics }.encode();
        let channel = self.ctl_channel();
        let signed = self.sign(channel, Bytes::from(message));
        self.run(|mut c| async move {
            redis::cmd(c.publish_command()).arg(channel).arg(&signed[..]).query_async::<()>(&mut c).await
        })
        .await
    }

    /// The nodes whose heartbeat is younger than the ttl.
    pub(super) async fn live_nodes(&self) -> Result<Vec<String>, BrokerError> {
        let nodes_key = keys::nodes(&self.prefix);
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        self.run(|mut c| async move {
            redis::cmd("EVAL").arg(keys::LIVE_NODES).arg(1).arg(nodes_key).arg(ttl_ms).query_async(&mut c).await
        })
        .await
    }

    /// Sends a control message and waits (within the timeout) until every other live
    /// node answered it. `false` when some did not.
    pub(super) async fn send_and_wait(&self, kind: u8, topics: Vec<String>) -> Result<bool, BrokerError> {
        let others: HashSet<String> = self.live_nodes().await?.into_iter().filter(|n| *n != self.node).collect();
        let seq = self.next_seq();
        if others.is_empty() {
            self.send_control(kind, seq, "", topics).await?;
            return Ok(true);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending().insert(seq, Pending { waiting: others, done: Some(tx) });
        let sent = self.send_control(kind, seq, "", topics).await;
        let answered = match sent {
            Ok(()) => tokio::time::timeout(self.timeout, rx).await.is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        if let Some(p) = self.pending().remove(&seq) {
            tracing::debug!(missing = ?p.waiting, "backplane: nodes did not answer an announcement in time");
        }
        sent.map(|()| answered)
    }

    pub(super) fn pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn interest(&self) -> MutexGuard<'_, Interest> {
        self.interest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Learns every live node's topics; until it has, every topic counts as remote.
    pub(super) async fn sync(&self) {
        self.interest().synced = false;
        match self.send_and_wait(control::ASK, Vec::new()).await {
            Ok(true) => {
                self.interest().synced = true;
                tracing::debug!("backplane: interest of every node known");
            }
            Ok(false) => tracing::debug!("backplane: interest sync incomplete; publishing every event until it is"),
            Err(e) => tracing::debug!(error = %e, "backplane: interest sync failed"),
        }
    }

    /// `from` answered announcement `seq`.
    pub(super) fn answered(&self, seq: u64, from: &str) {
        let mut pending = self.pending();
        if let Some(p) = pending.get_mut(&seq) {
            p.waiting.remove(from);
            if p.waiting.is_empty() {
                if let Some(done) = p.done.take() {
                    let _receiver_gone = done.send(());
                }
                pending.remove(&seq);
            }
        }
    }

    pub(super) async fn handle_control(&self, message: Control) {
        if message.node == self.node {
            return;
        }
        match message.kind {
            control::ADD => {
                self.interest().by_node.entry(message.node.clone()).or_default().extend(message.topics);
                if let Err(e) = self.send_control(control::ACK, message.seq, &message.node, Vec::new()).await {
                    tracing::debug!(error = %e, "backplane: cannot acknowledge an announcement");
                }
            }
            control::REMOVE => {
                if let Some(topics) = self.interest().by_node.get_mut(&message.node) {
                    for t in &message.topics {
                        topics.remove(t);
                    }
                }
            }
            control::FULL => {
                self.interest().by_node.insert(message.node.clone(), message.topics.into_iter().collect());
                if message.acked == self.node {
                    self.answered(message.seq, &message.node);
                }
            }
            control::ASK => {
                let topics: Vec<String> = self.local().topics.iter().cloned().collect();
                if let Err(e) = self.send_control(control::FULL, message.seq, &message.node, topics).await {
                    tracing::debug!(error = %e, "backplane: cannot answer an interest request");
                }
            }
            control::ACK if message.acked == self.node => self.answered(message.seq, &message.node),
            control::REVOKE => {
                let target = self.inbound.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade);
                if let Some(target) = target {
                    for user in &message.topics {
                        target.revoke_user(user);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn has_remote_receivers(&self, topic: &str) -> bool {
        let interest = self.interest();
        !interest.synced || interest.by_node.iter().any(|(node, topics)| *node != self.node && topics.contains(topic))
    }
}
