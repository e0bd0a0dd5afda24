//! Loom model of the outbox (`src/outbox.rs`): the handoff between the tasks that queue
//! items for a connection (running calls, the event hub, shutdown) and the connection's
//! own task, which drains them.
//!
//! The outbox is tokio code (`Notify`, `CancellationToken`), which loom cannot run, so
//! this file rebuilds its protocol step by step from loom primitives around the real
//! `witrpc_core::session::OutQueue`, each method in the order `outbox.rs` does it. When
//! `outbox.rs` changes the order of its steps, change the model with it. Checked:
//! - no lost wake-up: every item queued while the connection is open is drained, in
//!   each sender's order;
//! - a close racing with sends: the connection task always finds the reason it was
//!   closed with (never a default), the first of two closes wins, and nothing is
//!   written after the close was seen;
//! - an emitter waiting for room is always woken by the drain that makes room, and the
//!   same model with the check made before the wait is registered is caught.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p witrpc-server --test loom_outbox`
//! (`cargo xtask matrix` does, in its own target directory).
#![cfg(loom)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use loom::sync::{Arc, Condvar, Mutex, MutexGuard, Notify};
use loom::thread;
use uuid::Uuid;
use witrpc_core::WitResponse;
use witrpc_core::session::{
    CloseCode, CloseReason, EventPushed, EventTag, OutQueue, QueueLimits, Queued, SlowConsumerPolicy,
};

/// Explores every interleaving up to three preemptions unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise (bounded, as tokio's loom tests are, so the run stays short).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// `tokio::sync::Notify::notify_waiters` with `notified()`: a waiter registered before
/// the notification is woken; one registered after it waits for the next. (No permit
/// is stored, unlike `notify_one`.)
#[derive(Debug)]
struct Waiters {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Waiters {
    fn new() -> Self {
        Self { generation: Mutex::new(0), changed: Condvar::new() }
    }

    /// `notified()` (+ `enable()`): registers; the token is what `wait` waits past.
    fn register(&self) -> u64 {
        *lock(&self.generation)
    }

    fn notify_waiters(&self) {
        *lock(&self.generation) += 1;
        self.changed.notify_all();
    }

    fn wait(&self, registered: u64) {
        let mut generation = lock(&self.generation);
        while *generation == registered {
            generation = self.changed.wait(generation).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Outbox`, step for step. `wake` stands for the two wake-ups the connection task
/// selects over: `item_ready` (`notify_one`, which stores one permit, as loom's
/// `Notify` does) and the closer's `cancelled()`.
#[derive(Debug)]
struct Outbox {
    queue: Mutex<OutQueue>,
    wake: Notify,
    room: Waiters,
    capacity: usize,
    /// The `CancellationToken`: tokio-util keeps its state under a mutex.
    cancelled: Mutex<bool>,
    reason: Mutex<Option<CloseReason>>,
}

/// `outbox::Closed`.
#[derive(Debug, PartialEq)]
struct Closed;

impl Outbox {
    fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(OutQueue::new(QueueLimits::new(capacity, 1 << 20, Duration::from_secs(5)))),
            wake: Notify::new(),
            room: Waiters::new(),
            capacity,
            cancelled: Mutex::new(false),
            reason: Mutex::new(None),
        }
    }

    fn is_cancelled(&self) -> bool {
        *lock(&self.cancelled)
    }

    fn cancel(&self) {
        *lock(&self.cancelled) = true;
        self.wake.notify();
    }

    /// `Outbox::send`: refuse once closing; push under the lock; then wake.
    fn send(&self, item: Queued) -> Result<(), Closed> {
        if self.is_cancelled() {
            return Err(Closed);
        }
        lock(&self.queue).push(item);
        self.wake.notify();
        Ok(())
    }

    /// `Outbox::send_event` (a slow consumer closes the outbox).
    fn send_event(&self, item: Queued) {
        if self.is_cancelled() {
            return;
        }
        let pushed = lock(&self.queue).push_event(item, Instant::now());
        match pushed {
            EventPushed::Queued { .. } => self.wake.notify(),
            EventPushed::Slow(slow) => self.close(CloseReason::new(CloseCode::Policy, slow.reason)),
        }
    }

    /// `Outbox::close`: the reason first, then the cancel.
    fn close(&self, reason: CloseReason) {
        lock(&self.reason).get_or_insert(reason);
        self.cancel();
    }

    fn take_reason(&self) -> Option<CloseReason> {
        lock(&self.reason).take()
    }

    fn len(&self) -> usize {
        lock(&self.queue).len()
    }

    /// `Outbox::drain_into`: drain under the lock, then wake every emitter waiting for room.
    fn drain_into(&self, out: &mut VecDeque<Queued>) {
        {
            let mut queue = lock(&self.queue);
            if queue.is_empty() {
                return;
            }
            queue.drain_into(out);
        }
        self.room.notify_waiters();
    }

    /// `Outbox::wait_for_room`: register for the drain's wake-up *before* checking, so
    /// a drain between the check and the wait cannot be missed. (Closing is not part of
    /// the room scenario: the model's emitter waits for the drain only.)
    fn wait_for_room(&self) {
        loop {
            let registered = self.room.register();
            if self.is_cancelled() || self.len() < self.capacity {
                return;
            }
            self.room.wait(registered);
        }
    }

    /// The same with the wait registered *after* the check: a lost wake-up.
    fn wait_for_room_checking_first(&self) {
        loop {
            if self.is_cancelled() || self.len() < self.capacity {
                return;
            }
            let registered = self.room.register();
            self.room.wait(registered);
        }
    }
}

/// What the connection task wrote, and the reason it closed with, if it saw a close.
#[derive(Debug, Default)]
struct Written {
    items: Vec<u128>,
    closed_with: Option<Option<CloseReason>>,
}

/// The connection task (`ConnectionTask::run`, `write_out`, `finish`): the `closed`
/// branch is polled first; a wake-up drains the queue; items drained in the round that
/// sees the close are dropped with the session (`close_now`), and `finish` drains
/// nothing once closed. Stops when it saw a close or wrote `until` items.
fn connection_task(outbox: &Outbox, until: usize) -> Written {
    let mut written = Written::default();
    let mut batch = VecDeque::new();
    loop {
        if outbox.is_cancelled() {
            written.closed_with = Some(outbox.take_reason());
            return written;
        }
        if written.items.len() >= until {
            return written;
        }
        outbox.wake.wait();
        outbox.drain_into(&mut batch);
        if outbox.is_cancelled() {
            batch.clear();
            continue;
        }
        written.items.extend(batch.drain(..).map(|item| id_of(&item)));
    }
}

fn response(n: u128) -> Queued {
    Queued::Response { id: Uuid::from_u128(n), response: WitResponse::ok(None) }
}

fn event(n: u128) -> Queued {
    let tag = EventTag { key: (1, "Tick"), policy: SlowConsumerPolicy::Disconnect };
    Queued::Event { id: Uuid::from_u128(n), payload: Bytes::from_static(b"tick"), tag }
}

fn id_of(item: &Queued) -> u128 {
    match item {
        Queued::Response { id, .. } | Queued::Event { id, .. } => id.as_u128(),
        _ => 0,
    }
}

#[test]
fn every_item_queued_while_open_is_drained_in_each_senders_order() {
    model(|| {
        let outbox = Arc::new(Outbox::new(16));
        let call = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                assert_eq!(outbox.send(response(1)), Ok(()));
                assert_eq!(outbox.send(response(2)), Ok(()));
            })
        };
        let hub = {
            let outbox = outbox.clone();
            thread::spawn(move || outbox.send_event(event(3)))
        };
        // A lost wake-up leaves this waiting forever: loom reports the deadlock.
        let written = connection_task(&outbox, 3);
        call.join().expect("the call thread");
        hub.join().expect("the hub thread");
        assert!(written.closed_with.is_none());
        let mut sorted = written.items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 2, 3], "every item arrives exactly once");
        let first = written.items.iter().position(|&i| i == 1);
        let second = written.items.iter().position(|&i| i == 2);
        assert!(first < second, "one sender's items keep their order: {:?}", written.items);
    });
}

#[test]
fn a_close_racing_with_sends_is_seen_with_its_reason_and_ends_writing() {
    model(|| {
        let outbox = Arc::new(Outbox::new(16));
        let call = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                let first = outbox.send(response(1));
                let second = outbox.send(response(2));
                // Once a send is refused, every later one is too.
                assert!(!(first.is_err() && second.is_ok()));
            })
        };
        let shutdown = {
            let outbox = outbox.clone();
            thread::spawn(move || outbox.close(CloseReason::new(CloseCode::Policy, "slow consumer")))
        };
        let written = connection_task(&outbox, usize::MAX);
        call.join().expect("the call thread");
        shutdown.join().expect("the shutdown thread");
        let reason = written.closed_with.expect("the close is seen");
        assert_eq!(
            reason.map(|r| (r.code, r.reason)),
            Some((CloseCode::Policy, "slow consumer".to_owned())),
            "the connection closes with the reason it was given, not a default"
        );
        assert!(written.items.iter().all(|&i| i == 1 || i == 2));
        // After the close: refused, and nobody drains the queue any more.
        assert_eq!(outbox.send(response(3)), Err(Closed));
    });
}

#[test]
fn two_racing_closes_leave_the_task_one_of_their_reasons() {
    model(|| {
        let outbox = Arc::new(Outbox::new(16));
        let closers: Vec<_> = ["slow consumer", "hard shutdown"]
            .into_iter()
            .map(|text| {
                let outbox = outbox.clone();
                thread::spawn(move || outbox.close(CloseReason::new(CloseCode::Policy, text)))
            })
            .collect();
        let written = connection_task(&outbox, usize::MAX);
        for closer in closers {
            closer.join().expect("a closer thread");
        }
        let seen = written.closed_with.expect("a close is seen").expect("with a reason");
        assert!(["slow consumer", "hard shutdown"].contains(&seen.reason.as_str()));
        // A close that comes after the task took its reason leaves its own behind,
        // unread (the task is done); it is the other one, never a second copy.
        if let Some(left) = outbox.take_reason() {
            assert_ne!(left.reason, seen.reason);
        }
    });
}

#[test]
fn a_slow_consumer_close_from_the_hub_is_seen_with_its_reason() {
    model(|| {
        // Capacity 1 and a 4-byte hard bound: the second event crosses it.
        let outbox = Arc::new(Outbox {
            queue: Mutex::new(OutQueue::new(QueueLimits::new(1, 4, Duration::from_secs(5)))),
            ..Outbox::new(1)
        });
        let hub = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                outbox.send_event(event(1));
                outbox.send_event(event(2));
            })
        };
        let written = connection_task(&outbox, 2);
        hub.join().expect("the hub thread");
        // Either the task drained the first event before the second came, or the
        // second found the queue full and closed the outbox; never a silent gap.
        match written.closed_with {
            None => assert_eq!(written.items, [1, 2]),
            Some(reason) => {
                let reason = reason.expect("the slow-consumer reason");
                assert_eq!(reason.code, CloseCode::Policy);
                assert!(!written.items.contains(&2), "nothing written after the close: {:?}", written.items);
            }
        }
    });
}

fn room_scenario(wait: fn(&Outbox)) {
    model(move || {
        let outbox = Arc::new(Outbox::new(1));
        lock(&outbox.queue).push(response(1));
        let emitter = {
            let outbox = outbox.clone();
            thread::spawn(move || wait(&outbox))
        };
        let mut batch = VecDeque::new();
        outbox.drain_into(&mut batch);
        // A missed wake-up leaves the emitter waiting forever: loom reports the deadlock.
        emitter.join().expect("the emitter thread");
        assert_eq!(batch.len(), 1);
    });
}

#[test]
fn an_emitter_waiting_for_room_is_woken_by_the_drain() {
    room_scenario(Outbox::wait_for_room);
}

#[test]
fn the_model_catches_a_room_check_made_before_the_wait_is_registered() {
    // The control: if this passed, the scenario above could not fail.
    let output = run_broken_variant("room-check-first");
    assert!(output.contains("deadlock"), "loom found no lost wake-up in the broken variant:\n{output}");
}

/// Which broken variant [`broken_variant`] runs in a child process.
const BROKEN: &str = "WITRPC_LOOM_BROKEN";

/// Runs a broken variant of a model in a child process (loom reports a deadlock from
/// inside its scheduler, which cannot be caught in this process) and returns its
/// output; the child must fail.
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
        Ok("room-check-first") => room_scenario(Outbox::wait_for_room_checking_first),
        Ok(other) => panic!("no broken variant named {other}"),
        Err(_) => {}
    }
}
