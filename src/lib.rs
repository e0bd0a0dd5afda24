//! The demo service: the contract `WitRpc.Demo.IDemoService` that `examples/demo_server`
//! hosts and that outside clients (.NET, browser, Rust) are tested against.
//!
//! The contract is a public interface: keep the names, signatures and behaviour stable.
//!
//! ```text
//! int  Add(int a, int b)
//! string Echo(string text)
//! byte[] EchoBytes(byte[] data)
//! void Fail(string message)            // throws: status 500, details = message
//! Task<int>  Delay(int milliseconds)   // sleeps, returns its argument
//! Task<bool> StartProcessing(int steps) // true at once (1..=100000); then ProgressChanged(100*i/steps)
//!                                      // for i = 1..=steps, then ProcessingCompleted(steps)
//! void Broadcast(string text)          // raises Message(text) to every client (every node)
//! void JoinGroup(string group)          // the caller joins `group` (cluster-wide)
//! void LeaveGroup(string group)         // the caller leaves `group`
//! void SendToGroup(string group, string text) // Message(text) to the group's connections
//! void SendToUser(string user, string text)   // Message(text) to every connection of `user`
//! string WhoAmI()                       // the caller's user name, "" when anonymous
//! int  GroupSize(string group)          // connections in `group` on every node
//! events: ProgressChanged(double), ProcessingCompleted(int), Message(string)
//! ```

use std::time::Duration;

pub mod dashboard;

/// The demo contract, as a .NET client declares it (`WitRpc.Demo.IDemoService`).
#[witrpc::service(contract = "WitRpc.Demo.IDemoService")]
pub trait DemoService {
    /// Returns `a + b` (wrapping, as .NET `int` arithmetic does).
    async fn add(&self, a: i32, b: i32) -> i32;
    /// Returns `text`.
    async fn echo(&self, text: String) -> String;
    /// Returns `data`.
    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8>;
    /// Always fails with `message` (status 500, error details = `message`).
    async fn fail(&self, message: String) -> Result<(), String>;
    /// Sleeps `milliseconds` (negative = 0) and returns it.
    async fn delay(&self, milliseconds: i32) -> i32;
    /// Returns `true` at once when `1 <= steps <= 100_000` (else `false`), then raises
    /// `ProgressChanged` once per step and `ProcessingCompleted(steps)`; the job stops
    /// early if the caller's connection closes.
    async fn start_processing(&self, steps: i32) -> bool;
    /// Raises `Message(text)` to every connected, authorized client.
    async fn broadcast(&self, text: String);
    /// Adds the caller to `group` (on every node of a cluster once it returns).
    async fn join_group(&self, group: String) -> Result<(), String>;
    /// Removes the caller from `group`.
    async fn leave_group(&self, group: String) -> Result<(), String>;
    /// Raises `Message(text)` to the connections in `group`, on every node.
    async fn send_to_group(&self, group: String, text: String) -> Result<(), String>;
    /// Raises `Message(text)` to every connection of user `user`, on every node.
    async fn send_to_user(&self, user: String, text: String) -> Result<(), String>;
    /// The caller's user name (its identity), `""` when anonymous.
    async fn who_am_i(&self) -> String;
    /// How many connections are in `group`, on every node.
    async fn group_size(&self, group: String) -> Result<i32, String>;

    /// Progress of a `StartProcessing` job, in percent.
    #[event]
    fn progress_changed(&self, percent: f64);
    /// A `StartProcessing` job finished.
    #[event]
    fn processing_completed(&self, steps: i32);
    /// A broadcast message.
    #[event]
    fn message(&self, text: String);
}

/// The demo's `--user-tokens` validator: a token `user:<name>` authorizes as user
/// `<name>`; any other token is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserTokens;

/// The prefix of a `--user-tokens` token.
pub const USER_TOKEN_PREFIX: &str = "user:";

#[witrpc::server::async_trait]
impl witrpc::server::AccessTokenValidator for UserTokens {
    async fn validate(&self, token: &str) -> bool {
        token.strip_prefix(USER_TOKEN_PREFIX).is_some_and(|name| !name.is_empty())
    }

    async fn authorize(&self, token: &str, _connection: &witrpc::CallContext) -> witrpc::server::Authorization {
        match token.strip_prefix(USER_TOKEN_PREFIX) {
            Some(name) if !name.is_empty() => witrpc::server::Authorization::Allow(Some(witrpc::Identity::new(name))),
            _ => witrpc::server::Authorization::Deny,
        }
    }
}

/// [`UserTokens`] whose tokens expire `ttl` after each authorization (the demo's
/// `--user-tokens --token-ttl <secs>`): a connection is closed shortly after, unless its
/// client refreshes the token in-band (the Rust and TypeScript clients with a token
/// provider do).
#[derive(Debug, Clone, Copy)]
pub struct ExpiringUserTokens {
    /// How long each accepted token lives.
    pub ttl: std::time::Duration,
}

#[witrpc::server::async_trait]
impl witrpc::server::AccessTokenValidator for ExpiringUserTokens {
    async fn validate(&self, token: &str) -> bool {
        UserTokens.validate(token).await
    }

    async fn authorize(&self, token: &str, connection: &witrpc::CallContext) -> witrpc::server::Authorization {
        match UserTokens.authorize(token, connection).await {
            witrpc::server::Authorization::Allow(identity) => witrpc::server::Authorization::AllowUntil {
                identity,
                expires_at: std::time::SystemTime::now() + self.ttl,
            },
            other => other,
        }
    }
}

/// The calling connection's context, or a failure naming the method.
fn caller() -> Result<witrpc::CallContext, String> {
    witrpc::CallContext::current().ok_or_else(|| "not called through a server".to_owned())
}

/// Most steps a `StartProcessing` job may have; more returns `false` (a bound, so one
/// call cannot occupy the server for hours).
pub const MAX_PROCESSING_STEPS: i32 = 100_000;

/// The demo implementation.
#[derive(Debug, Clone, Default)]
pub struct Demo {
    events: DemoServiceEvents,
}

impl Demo {
    /// A demo service raising its events through `events`.
    pub fn new(events: DemoServiceEvents) -> Self {
        Self { events }
    }

    /// The service ready for `WitServerBuilder::with_service`.
    pub fn server() -> DemoServiceServer<Demo> {
        let events = DemoServiceEvents::new();
        DemoServiceServer::new(Demo::new(events.clone())).with_events(&events)
    }
}

impl DemoService for Demo {
    async fn add(&self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    async fn echo(&self, text: String) -> String {
        text
    }

    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn fail(&self, message: String) -> Result<(), String> {
        Err(message)
    }

    async fn delay(&self, milliseconds: i32) -> i32 {
        tokio::time::sleep(Duration::from_millis(milliseconds.max(0) as u64)).await;
        milliseconds
    }

    async fn start_processing(&self, steps: i32) -> bool {
        if !(1..=MAX_PROCESSING_STEPS).contains(&steps) {
            return false;
        }
        let events = self.events.clone();
        // The job stops when the caller's connection closes.
        let caller = witrpc::CallContext::current().map(|c| c.closed).unwrap_or_default();
        tokio::spawn(async move {
            // Let the response go first: the contract says "true at once, then events".
            tokio::task::yield_now().await;
            for i in 1..=steps {
                if caller.is_closed() {
                    tracing::debug!(step = i, steps, "caller gone; job stopped");
                    return;
                }
                if let Err(e) = events.progress_changed(100.0 * f64::from(i) / f64::from(steps)) {
                    tracing::error!(error = %e, "cannot raise ProgressChanged");
                    return;
                }
                // One step at a time: a long job never holds a worker thread.
                tokio::task::yield_now().await;
            }
            if let Err(e) = events.processing_completed(steps) {
                tracing::error!(error = %e, "cannot raise ProcessingCompleted");
            }
        });
        true
    }

    async fn broadcast(&self, text: String) {
        if let Err(e) = self.events.message(text) {
            tracing::error!(error = %e, "cannot raise Message");
        }
    }

    async fn join_group(&self, group: String) -> Result<(), String> {
        caller()?.join_group(&group).await.map_err(|e| e.to_string())
    }

    async fn leave_group(&self, group: String) -> Result<(), String> {
        caller()?.leave_group(&group).await.map_err(|e| e.to_string())
    }

    async fn send_to_group(&self, group: String, text: String) -> Result<(), String> {
        witrpc::protocol::check_group_name(&group).map_err(|e| e.to_string())?;
        self.events.to_group(group).message(text).map_err(|e| e.to_string())
    }

    async fn send_to_user(&self, user: String, text: String) -> Result<(), String> {
        self.events.to_user(user).message(text).map_err(|e| e.to_string())
    }

    async fn who_am_i(&self) -> String {
        witrpc::CallContext::current().and_then(|c| c.identity).map(|i| i.name().to_owned()).unwrap_or_default()
    }

    async fn group_size(&self, group: String) -> Result<i32, String> {
        let members = caller()?.group_members(&group).await.map_err(|e| e.to_string())?;
        Ok(i32::try_from(members.len()).unwrap_or(i32::MAX))
    }
}
