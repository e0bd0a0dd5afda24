//! Loom model of the client's pending-call table (`Shared` in `src/connection.rs`): calls
//! register a reply slot by id, the connection task delivers responses into them, and
//! a closing connection fails every call still waiting.
//!
//! `Shared` is tokio code (`oneshot`, `CancellationToken`), which loom cannot run, so
//! this file rebuilds its protocol step by step from loom primitives, each method in
//! the order `connection.rs` does it. When that order changes, change the model with it.
//! Checked:
//! - a call racing with the close either is refused (with the close's reason, never a
//!   default) or gets exactly one reply; no reply slot is left behind in the table,
//!   where its caller would wait until its request timeout;
//! - a response racing with the close: exactly one of the two reaches the caller;
//! - the same model with `register` checking the close outside the table's lock is
//!   caught (the control that shows the first check can fail).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p witrpc-client --test loom_pending`
//! (`cargo xtask matrix` does, in its own target directory).
#![cfg(loom)]

use std::collections::HashMap;

use loom::sync::{Arc, Mutex, MutexGuard};
use loom::thread;

/// Explores every interleaving up to three preemptions unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise (bounded, as tokio's loom tests are, so the run stays short).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a caller receives: the response, or the connection's close reason.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Response,
    Closed(String),
}

/// A `tokio::sync::oneshot` pair: one send at most; what the receiver ends up with.
#[derive(Debug, Default)]
struct Slot {
    reply: Mutex<Option<Reply>>,
}

#[derive(Debug)]
struct Sender(Arc<Slot>);

impl Sender {
    fn send(self, reply: Reply) {
        let previous = lock(&self.0.reply).replace(reply);
        assert!(previous.is_none(), "a oneshot is sent once");
    }
}

const DEFAULT_REASON: &str = "the connection was closed";

/// `Shared`, step for step (the event subscriptions are not part of this handoff).
#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<u32, Sender>>,
    /// The `CancellationToken`: tokio-util keeps its state under a mutex.
    closed: Mutex<bool>,
    close_reason: Mutex<Option<String>>,
}

impl Shared {
    fn is_closed(&self) -> bool {
        *lock(&self.closed)
    }

    fn close_reason(&self) -> String {
        lock(&self.close_reason).clone().unwrap_or_else(|| DEFAULT_REASON.to_owned())
    }

    /// `Shared::register`: the close is checked under the lock `shut` drains with.
    fn register(&self, id: u32) -> Result<Arc<Slot>, String> {
        let slot = Arc::new(Slot::default());
        {
            let mut pending = lock(&self.pending);
            if !self.is_closed() {
                pending.insert(id, Sender(slot.clone()));
                return Ok(slot);
            }
        }
        Err(self.close_reason())
    }

    /// The same with the close checked before the lock is taken.
    fn register_checking_first(&self, id: u32) -> Result<Arc<Slot>, String> {
        let slot = Arc::new(Slot::default());
        if self.is_closed() {
            return Err(self.close_reason());
        }
        lock(&self.pending).insert(id, Sender(slot.clone()));
        Ok(slot)
    }

    /// `Shared::shut`: the reason (first one kept), the cancel, then the drain.
    fn shut(&self, reason: &str) {
        lock(&self.close_reason).get_or_insert_with(|| reason.to_owned());
        *lock(&self.closed) = true;
        let reason = self.close_reason();
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        for (_, tx) in pending {
            tx.send(Reply::Closed(reason.clone()));
        }
    }

    /// `Shared::deliver_response`.
    fn deliver_response(&self, id: u32) {
        if let Some(tx) = lock(&self.pending).remove(&id) {
            tx.send(Reply::Response);
        }
    }
}

type Register = fn(&Shared, u32) -> Result<Arc<Slot>, String>;

/// A call registering while the connection closes; then the outcome is checked.
fn call_racing_with_close(register: Register) {
    model(move || {
        let shared = Arc::new(Shared::default());
        let closer = {
            let shared = shared.clone();
            thread::spawn(move || shared.shut("server went away"))
        };
        let registered = register(&shared, 1);
        closer.join().expect("the closer thread");
        match registered {
            Err(reason) => assert_eq!(reason, "server went away", "refused with the close's reason"),
            Ok(slot) => assert_eq!(
                lock(&slot.reply).clone(),
                Some(Reply::Closed("server went away".to_owned())),
                "a registered call is failed by the close, not left waiting"
            ),
        }
        assert!(lock(&shared.pending).is_empty(), "nothing is left in the table");
    });
}

#[test]
fn a_call_racing_with_the_close_is_refused_or_failed_never_left_waiting() {
    call_racing_with_close(Shared::register);
}

#[test]
fn the_model_catches_a_close_checked_outside_the_tables_lock() {
    // The control: if this passed, the test above could not fail.
    let output = run_broken_variant("register-checking-first");
    assert!(output.contains("not left waiting"), "loom found no stranded call in the broken variant:\n{output}");
}

/// Which broken variant [`broken_variant`] runs in a child process.
const BROKEN: &str = "WITRPC_LOOM_BROKEN";

/// Runs a broken variant of a model in a child process (a failing loom model aborts
/// while it unwinds, so it cannot be caught in this process) and returns its output;
/// the child must fail.
fn run_broken_variant(variant: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let output = std::process::Command::new(exe)
        .args(["--exact", "broken_variant", "--nocapture", "--test-threads=1"])
        .env(BROKEN, variant)
        .output()
        .expect("the test binary runs again");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "the broken variant `{variant}` passed:\n{text}");
    text
}

/// The entry point of [`run_broken_variant`]'s child; does nothing in a normal run.
#[test]
fn broken_variant() {
    match std::env::var(BROKEN).as_deref() {
        Ok("register-checking-first") => call_racing_with_close(Shared::register_checking_first),
        Ok(other) => panic!("no broken variant named {other}"),
        Err(_) => {}
    }
}

#[test]
fn a_response_racing_with_the_close_reaches_the_caller_exactly_once() {
    model(|| {
        let shared = Arc::new(Shared::default());
        let slot = shared.register(7).expect("open connection");
        let reader = {
            let shared = shared.clone();
            thread::spawn(move || shared.deliver_response(7))
        };
        let closer = {
            let shared = shared.clone();
            thread::spawn(move || shared.shut("server went away"))
        };
        reader.join().expect("the reader thread");
        closer.join().expect("the closer thread");
        let reply = lock(&slot.reply).clone();
        assert!(
            matches!(&reply, Some(Reply::Response) | Some(Reply::Closed(_))),
            "exactly one reply reaches the caller: {reply:?}"
        );
        assert!(lock(&shared.pending).is_empty());
    });
}

#[test]
fn two_racing_closes_keep_the_first_reason_for_every_caller() {
    model(|| {
        let shared = Arc::new(Shared::default());
        let a = shared.register(1).expect("open connection");
        let b = shared.register(2).expect("open connection");
        let closers: Vec<_> = ["idle timeout", "client disconnected"]
            .into_iter()
            .map(|reason| {
                let shared = shared.clone();
                thread::spawn(move || shared.shut(reason))
            })
            .collect();
        for closer in closers {
            closer.join().expect("a closer thread");
        }
        let kept = shared.close_reason();
        assert_ne!(kept, DEFAULT_REASON);
        for slot in [a, b] {
            assert_eq!(lock(&slot.reply).clone(), Some(Reply::Closed(kept.clone())), "one reason for every caller");
        }
    });
}
