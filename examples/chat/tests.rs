//! The chat service end to end: the example's own server on 127.0.0.1 port 0, real
//! WebSocket clients with `user:<name>` tokens (`cargo test -p witrpc-demo --example chat`).
//!
//! Exactness is checked negatively with a fence: events of one connection arrive in the
//! order the server queued them, and a targeted event is queued before the call that
//! raised it returns. So once a call has returned, a connection that must not get its
//! event sees a later fence (a message to its own room) first.

use std::time::Duration;

use futures_util::StreamExt;
use witrpc::EventStream;
use witrpc::prelude::*;

use crate::service::{ChatServiceClient, MAX_ROOMS_PER_CONNECTION, MAX_TEXT_CHARS};

/// Bound on any single await (a hang guard for a loaded machine, not a timing assertion).
const LIMIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {LIMIT:?} waiting for {what}"),
    }
}

struct Server {
    server: WitServer,
    url: String,
}

impl Server {
    async fn start() -> Self {
        let server = super::build("127.0.0.1:0", 100).expect("valid server");
        within("server start", server.start_waiting_for_connection()).await.expect("server starts");
        let url = server.client_url().expect("running server has a URL");
        Self { server, url }
    }

    async fn connect(&self, token: &str) -> Result<WitClient, ClientError> {
        let builder = WitClientBuilder::new().with_websocket(&self.url).with_access_token(token);
        within("connect", builder.connect(Duration::from_secs(10))).await
    }

    async fn user(&self, name: &str) -> User {
        let client = self.connect(&format!("user:{name}")).await.expect("a user token is accepted");
        let chat = ChatServiceClient::new(client.clone());
        User { messages: chat.message(), joined: chat.joined(), left: chat.left(), chat, client }
    }
}

/// One connection of a user, subscribed to every chat event.
struct User {
    client: WitClient,
    chat: ChatServiceClient<WitClient>,
    messages: EventStream<(String, String, String)>,
    joined: EventStream<(String, String)>,
    left: EventStream<(String, String)>,
}

fn triple(room: &str, user: &str, text: &str) -> (String, String, String) {
    (room.to_owned(), user.to_owned(), text.to_owned())
}

fn pair(room: &str, user: &str) -> (String, String) {
    (room.to_owned(), user.to_owned())
}

impl User {
    async fn join(&self, room: &str) -> Vec<String> {
        within("Join", self.chat.join(room.to_owned())).await.expect("join succeeds")
    }

    async fn send(&self, room: &str, text: &str) {
        within("Send", self.chat.send(room.to_owned(), text.to_owned())).await.expect("send succeeds");
    }

    async fn members(&self, room: &str) -> Vec<String> {
        within("Members", self.chat.members(room.to_owned())).await.expect("members succeeds")
    }

    async fn next_message(&mut self) -> (String, String, String) {
        within("Message", self.messages.next()).await.expect("stream open").expect("event decodes")
    }

    async fn next_joined(&mut self) -> (String, String) {
        within("Joined", self.joined.next()).await.expect("stream open").expect("event decodes")
    }

    async fn next_left(&mut self) -> (String, String) {
        within("Left", self.left.next()).await.expect("stream open").expect("event decodes")
    }
}

/// The error details of a failed call.
fn details<T: std::fmt::Debug>(result: Result<T, ClientError>) -> String {
    match result {
        Err(ClientError::Remote { details: Some(details), .. }) => details,
        other => panic!("expected a failed call with details, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_reaches_its_room_with_the_senders_identity_and_no_other_room() {
    let server = Server::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    assert_eq!(alice.join("lobby").await, ["alice"]);
    assert_eq!(bob.join("lobby").await, ["alice", "bob"]);
    assert_eq!(carol.join("garden").await, ["carol"]);

    alice.send("lobby", "hello bob").await;
    assert_eq!(bob.next_message().await, triple("lobby", "alice", "hello bob"));
    assert_eq!(alice.next_message().await, triple("lobby", "alice", "hello bob"), "the sender sees its own message");

    // Carol, in another room, must see her fence first: alice's message never reached her.
    carol.send("garden", "fence").await;
    assert_eq!(carol.next_message().await, triple("garden", "carol", "fence"));
    // And the garden's message reached neither lobby member: their next one is the lobby's.
    bob.send("lobby", "fence").await;
    assert_eq!(alice.next_message().await, triple("lobby", "bob", "fence"));
    assert_eq!(bob.next_message().await, triple("lobby", "bob", "fence"));
    server.server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn members_and_joins_are_seen_by_the_room_only() {
    let server = Server::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    alice.join("lobby").await;
    carol.join("garden").await;
    bob.join("lobby").await;
    assert_eq!(alice.next_joined().await, pair("lobby", "bob"));
    assert_eq!(alice.members("lobby").await, ["alice", "bob"]);
    assert_eq!(bob.members("lobby").await, ["alice", "bob"]);
    assert_eq!(carol.members("garden").await, ["carol"]);

    // Presence of a room is for its members.
    let refused = details(within("Members", carol.chat.members("lobby".to_owned())).await);
    assert!(refused.contains("not in room \"lobby\""), "{refused}");

    // Nobody but alice heard of bob's join: a later join in each room comes first.
    let dave = server.user("dave").await;
    dave.join("garden").await;
    assert_eq!(carol.next_joined().await, pair("garden", "dave"), "carol heard of a lobby join");
    alice.client.disconnect().await;
    assert_eq!(bob.next_left().await, pair("lobby", "alice"));
    let erin = server.user("erin").await;
    erin.join("lobby").await;
    assert_eq!(bob.next_joined().await, pair("lobby", "erin"), "bob was told of his own join, or carol's");
    server.server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_closed_connection_leaves_its_rooms_and_the_others_are_told() {
    let server = Server::start().await;
    let mut alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    alice.join("lobby").await;
    alice.join("kitchen").await;
    bob.join("lobby").await;
    bob.join("kitchen").await;
    carol.join("garden").await;
    assert_eq!(alice.next_joined().await, pair("lobby", "bob"));
    assert_eq!(alice.next_joined().await, pair("kitchen", "bob"));

    bob.client.disconnect().await;
    let mut left = vec![alice.next_left().await, alice.next_left().await];
    left.sort();
    assert_eq!(left, [pair("kitchen", "bob"), pair("lobby", "bob")]);
    assert_eq!(alice.members("lobby").await, ["alice"]);
    assert_eq!(alice.members("kitchen").await, ["alice"]);

    // Carol was in neither room: a later leave in her own room is her first.
    let dave = server.user("dave").await;
    dave.join("garden").await;
    assert_eq!(carol.next_joined().await, pair("garden", "dave"));
    within("Leave", dave.chat.leave("garden".to_owned())).await.expect("leave succeeds");
    assert_eq!(carol.next_left().await, pair("garden", "dave"), "carol was told of bob leaving rooms she is not in");
    server.server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_user_with_two_connections_is_one_member_until_the_last_leaves() {
    let server = Server::start().await;
    let mut alice = server.user("alice").await;
    let bob_phone = server.user("bob").await;
    let bob_laptop = server.user("bob").await;
    alice.join("lobby").await;
    bob_phone.join("lobby").await;
    assert_eq!(bob_laptop.join("lobby").await, ["alice", "bob"]);
    assert_eq!(alice.next_joined().await, pair("lobby", "bob"));

    bob_phone.client.disconnect().await;
    within("Leave", bob_laptop.chat.leave("lobby".to_owned())).await.expect("leave succeeds");
    // One Joined and one Left for bob, however many connections he had in the room.
    assert_eq!(alice.next_left().await, pair("lobby", "bob"));
    let carol = server.user("carol").await;
    carol.join("lobby").await;
    assert_eq!(alice.next_joined().await, pair("lobby", "carol"), "a second Joined or Left was raised for bob");
    assert_eq!(alice.members("lobby").await, ["alice", "carol"]);

    // Having left, bob can no longer post there.
    let refused = details(within("Send", bob_laptop.chat.send("lobby".to_owned(), "hi".to_owned())).await);
    assert!(refused.contains("join it first"), "{refused}");
    server.server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn only_user_tokens_log_in() {
    let server = Server::start().await;
    for token in ["", "alice", "user:", "user: alice", "admin:alice", &format!("user:{}", "x".repeat(33))] {
        let refused = server.connect(token).await;
        assert!(matches!(refused, Err(ClientError::Unauthorized)), "{token:?} gave {refused:?}");
    }
    server.user("alice").await.join("lobby").await;
    server.server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn room_names_texts_and_rooms_per_connection_are_bounded() {
    let server = Server::start().await;
    let mut alice = server.user("alice").await;
    let chat = &alice.chat;
    let long_room = details(within("Join", chat.join("r".repeat(65))).await);
    assert!(long_room.contains("1 to 64 characters"), "{long_room}");
    assert!(details(within("Join", chat.join(String::new())).await).contains("room name"));
    alice.join("lobby").await;
    let long_text = details(within("Send", chat.send("lobby".to_owned(), "x".repeat(MAX_TEXT_CHARS + 1))).await);
    assert!(long_text.contains("1001 characters, more than 1000"), "{long_text}");
    assert!(details(within("Send", chat.send("lobby".to_owned(), "   ".to_owned())).await).contains("empty"));
    let not_joined = details(within("Send", chat.send("garden".to_owned(), "hi".to_owned())).await);
    assert!(not_joined.contains("not in room \"garden\""), "{not_joined}");

    for i in 1..MAX_ROOMS_PER_CONNECTION {
        alice.join(&format!("room-{i}")).await;
    }
    let too_many = details(within("Join", chat.join("one-too-many".to_owned())).await);
    assert!(too_many.contains("leave one first"), "{too_many}");
    assert_eq!(alice.join("lobby").await, ["alice"], "joining a room again is not one more room");

    // Nothing refused was delivered: the first message alice gets is this one.
    alice.send("lobby", "x".repeat(MAX_TEXT_CHARS).as_str()).await;
    assert_eq!(alice.next_message().await.2.len(), MAX_TEXT_CHARS);
    server.server.shutdown(Duration::from_secs(1)).await;
}

/// One HTTP/1.1 request to `addr`; the whole response as text.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = within("HTTP connect", tokio::net::TcpStream::connect(addr)).await.expect("connects");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    within("HTTP write", stream.write_all(request.as_bytes())).await.expect("writes");
    let mut response = Vec::new();
    within("HTTP response", stream.read_to_end(&mut response)).await.expect("reads");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn the_page_is_served_on_the_endpoints_port() {
    let server = Server::start().await;
    let addr = server.server.local_addr().expect("bound address");
    let page = http(addr, "GET", "/").await.to_ascii_lowercase();
    assert!(page.starts_with("http/1.1 200"), "{page}");
    assert!(page.contains("content-type: text/html"), "{page}");
    assert!(page.contains("<title>witrpc chat</title>"), "{page}");
    let script = http(addr, "GET", "/app.js").await.to_ascii_lowercase();
    assert!(script.starts_with("http/1.1 200") && script.contains("content-type: text/javascript"), "{script}");
    assert!(script.contains("witrpc.chat.ichatservice"), "the bundle is not the chat page's");
    assert!(http(addr, "GET", "/secrets").await.starts_with("HTTP/1.1 404"));
    assert!(http(addr, "POST", "/").await.starts_with("HTTP/1.1 405"));
    server.server.shutdown(Duration::from_secs(1)).await;
}
