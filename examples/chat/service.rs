//! The chat service behind `examples/chat`: rooms are server groups, users come from
//! access tokens.
//!
//! ```text
//! string[] Join(string room)                 // the caller joins; returns the room's members
//! void     Leave(string room)                // the caller leaves (a no-op when not in it)
//! void     Send(string room, string text)    // Message(room, sender, text) to the room
//! string[] Members(string room)              // user names in the room (the caller must be in it)
//! events: Message(room, user, text), Joined(room, user), Left(room, user)
//! ```
//!
//! The sender of a `Message` is the caller's identity (from its token `user:<name>`),
//! never a name the client sends. Events reach the room's connections only. A user with
//! several connections in a room is one member: `Joined` is raised when the first of them
//! joins, `Left` when the last one leaves or closes.
//!
//! `cargo xtask gen-ts` turns this file into `examples/chat/web/src/generated/chat_service.ts`;
//! keep every type the contract uses in this file.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use witrpc::protocol::{ConnectionClosed, Uuid};
use witrpc::server::{AccessTokenValidator, Authorization};
use witrpc::{CallContext, GroupError, Identity};

/// Longest room name, in characters. Room names are group names, so they are bounded
/// well inside the server's own group-name limit (256 bytes).
pub(crate) const MAX_ROOM_NAME_CHARS: usize = 64;
/// Longest message text, in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 1000;
/// Longest user name (the part of the token after `user:`), in characters.
pub(crate) const MAX_USER_NAME_CHARS: usize = 32;
/// Most rooms one connection may be in at once.
pub(crate) const MAX_ROOMS_PER_CONNECTION: usize = 16;
/// The prefix of a chat token: `user:<name>` authorizes as `<name>`.
pub(crate) const TOKEN_PREFIX: &str = "user:";

/// The chat contract.
#[witrpc::service(contract = "WitRpc.Chat.IChatService")]
pub(crate) trait ChatService {
    /// Joins `room` (a no-op when already in it) and returns its members, sorted; raises
    /// `Joined` to the others when the caller's user was not in the room yet.
    async fn join(&self, room: String) -> Result<Vec<String>, ChatError>;
    /// Leaves `room` (a no-op when not in it); raises `Left` to the others when this was
    /// the user's last connection in the room.
    async fn leave(&self, room: String) -> Result<(), ChatError>;
    /// Raises `Message(room, <caller's user name>, text)` to every connection in `room`,
    /// the caller's included; the caller must be in the room.
    async fn send(&self, room: String, text: String) -> Result<(), ChatError>;
    /// The user names in `room`, sorted, each once; the caller must be in the room.
    async fn members(&self, room: String) -> Result<Vec<String>, ChatError>;

    /// `user` said `text` in `room`.
    #[event]
    fn message(&self, room: String, user: String, text: String);
    /// `user` joined `room`.
    #[event]
    fn joined(&self, room: String, user: String);
    /// `user` left `room` (its last connection in the room left or closed).
    #[event]
    fn left(&self, room: String, user: String);
}

/// Why a chat call failed; its text is what the caller sees as the error details.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChatError {
    /// The room name is empty, too long, padded with spaces or has control characters.
    #[error(
        "room name must be 1 to {MAX_ROOM_NAME_CHARS} characters, without control characters or surrounding spaces"
    )]
    InvalidRoom,
    /// The message is empty or only spaces.
    #[error("message is empty; type something first")]
    EmptyText,
    /// The message is too long.
    #[error("message has {chars} characters, more than {MAX_TEXT_CHARS}; send it in parts")]
    TextTooLong {
        /// The text's length in characters.
        chars: usize,
    },
    /// The caller is in too many rooms.
    #[error("you are already in {MAX_ROOMS_PER_CONNECTION} rooms; leave one first")]
    TooManyRooms,
    /// The call needs the caller to be in the room.
    #[error("you are not in room {room:?}; join it first")]
    NotInRoom {
        /// The room named.
        room: String,
    },
    /// The connection has no user (the server runs without [`ChatTokens`]).
    #[error("this connection has no user name; connect with the token `user:<name>`")]
    Anonymous,
    /// The connection closed while the call ran.
    #[error("the connection closed")]
    Closed,
    /// The method ran outside a server (no caller to act for).
    #[error("not called through a server")]
    NotServed,
    /// The server's group membership refused or failed.
    #[error("room membership failed: {0}")]
    Group(#[source] GroupError),
    /// An event argument could not be encoded (a bug).
    #[error("cannot raise the event: {0}")]
    Event(#[source] witrpc::ParameterError),
}

/// The chat's access-token validator: `user:<name>` authorizes as user `<name>` (1 to
/// [`MAX_USER_NAME_CHARS`] characters, no control characters, no surrounding spaces);
/// any other token is refused.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChatTokens;

impl ChatTokens {
    /// The user name `token` stands for, if it is a valid chat token.
    pub(crate) fn user_name(token: &str) -> Option<&str> {
        let name = token.strip_prefix(TOKEN_PREFIX)?;
        valid_name(name, MAX_USER_NAME_CHARS).then_some(name)
    }
}

#[witrpc::server::async_trait]
impl AccessTokenValidator for ChatTokens {
    async fn validate(&self, token: &str) -> bool {
        Self::user_name(token).is_some()
    }

    async fn authorize(&self, token: &str, _connection: &CallContext) -> Authorization {
        match Self::user_name(token) {
            Some(name) => Authorization::Allow(Some(Identity::new(name))),
            None => Authorization::Deny,
        }
    }
}

fn valid_name(name: &str, max_chars: usize) -> bool {
    let chars = name.chars().count();
    (1..=max_chars).contains(&chars) && name.trim() == name && !name.chars().any(char::is_control)
}

fn check_room(room: &str) -> Result<(), ChatError> {
    if valid_name(room, MAX_ROOM_NAME_CHARS) { Ok(()) } else { Err(ChatError::InvalidRoom) }
}

fn check_text(text: &str) -> Result<(), ChatError> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ChatError::TextTooLong { chars });
    }
    if text.trim().is_empty() {
        return Err(ChatError::EmptyText);
    }
    Ok(())
}

/// The caller's context and user name.
fn caller() -> Result<(CallContext, String), ChatError> {
    let context = CallContext::current().ok_or(ChatError::NotServed)?;
    let user = context.identity.as_ref().map(|i| i.name().to_owned()).ok_or(ChatError::Anonymous)?;
    Ok((context, user))
}

/// The chat implementation; clones share their state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chat {
    events: ChatServiceEvents,
    state: Arc<Mutex<State>>,
}

/// Who is where, on this server: enough to raise `Joined` and `Left` once per user and
/// room, and `Left` for the rooms of a connection that closes. Bounded by the
/// connections times [`MAX_ROOMS_PER_CONNECTION`].
#[derive(Debug, Default)]
struct State {
    /// Connections in at least one room: their user and rooms.
    connections: HashMap<Uuid, Joined>,
    /// Per room, per user: how many of the user's connections are in it.
    rooms: HashMap<String, HashMap<String, usize>>,
    /// One task per connection in `connections`, waiting for it to close.
    watchers: tokio::task::JoinSet<()>,
}

#[derive(Debug)]
struct Joined {
    user: String,
    rooms: BTreeSet<String>,
}

impl State {
    /// Counts `user` in `room` once more; whether it was not there yet.
    fn enter(&mut self, room: &str, user: &str) -> bool {
        let users = self.rooms.entry(room.to_owned()).or_default();
        let count = users.entry(user.to_owned()).or_default();
        *count += 1;
        *count == 1
    }

    /// Counts `user` in `room` once less; whether that was its last connection there.
    fn exit(&mut self, room: &str, user: &str) -> bool {
        let Some(users) = self.rooms.get_mut(room) else { return false };
        let Some(count) = users.get_mut(user) else { return false };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            self.rooms.remove(room);
        }
        true
    }
}

impl Chat {
    /// A chat raising its events through `events`.
    pub(crate) fn new(events: ChatServiceEvents) -> Self {
        Self { events, state: Arc::default() }
    }

    /// The service ready for `WitServerBuilder::with_service` (serve it with
    /// [`ChatTokens`] as the access-token validator).
    pub(crate) fn server() -> ChatServiceServer<Chat> {
        let events = ChatServiceEvents::new();
        ChatServiceServer::new(Chat::new(events.clone())).with_events(&events)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic mid-update elsewhere; the maps are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for `connection` to close, then raises `Left` for the rooms it was the
    /// user's last connection in (the server has already taken it out of its groups).
    fn watch(
        state: &mut State,
        weak: Weak<Mutex<State>>,
        events: ChatServiceEvents,
        id: Uuid,
        closed: ConnectionClosed,
    ) {
        while state.watchers.try_join_next().is_some() {}
        state.watchers.spawn(async move {
            closed.wait().await;
            let Some(state) = weak.upgrade() else { return };
            let left: Vec<(String, String)> = {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                let Some(joined) = state.connections.remove(&id) else { return };
                joined
                    .rooms
                    .into_iter()
                    .filter(|room| state.exit(room, &joined.user))
                    .map(|room| (room, joined.user.clone()))
                    .collect()
            };
            for (room, user) in left {
                tracing::debug!(%room, %user, "left on close");
                if let Err(e) = events.to_group(room.clone()).left(room, user) {
                    tracing::error!(error = %e, "cannot raise Left");
                }
            }
        });
    }

    /// Whether connection `id` is in `room`.
    fn is_in(&self, id: Uuid, room: &str) -> bool {
        in_room(&self.lock(), id, room)
    }

    /// How many rooms connection `id` is in, besides `room`.
    fn room_count(&self, id: Uuid, room: &str) -> usize {
        room_count(&self.lock(), id, room)
    }
}

fn in_room(state: &State, id: Uuid, room: &str) -> bool {
    state.connections.get(&id).is_some_and(|c| c.rooms.contains(room))
}

fn room_count(state: &State, id: Uuid, room: &str) -> usize {
    state.connections.get(&id).map_or(0, |c| c.rooms.iter().filter(|r| *r != room).count())
}

/// The user names of `members`, sorted, each once.
fn user_names(members: Vec<witrpc::Member>) -> Vec<String> {
    let names: BTreeSet<String> = members.into_iter().filter_map(|m| m.user).collect();
    names.into_iter().collect()
}

impl ChatService for Chat {
    async fn join(&self, room: String) -> Result<Vec<String>, ChatError> {
        check_room(&room)?;
        let (context, user) = caller()?;
        let id = context.connection_id;
        if self.room_count(id, &room) >= MAX_ROOMS_PER_CONNECTION {
            return Err(ChatError::TooManyRooms);
        }
        context.join_group(&room).await.map_err(ChatError::Group)?;
        let first = {
            let mut state = self.lock();
            // Checked under the lock the close watcher takes: a connection that closed
            // while joining is not recorded (its watcher has run or will find nothing).
            if context.closed.is_closed() {
                return Err(ChatError::Closed);
            }
            // Again under the lock: concurrent joins of one connection stay in the bound.
            if room_count(&state, id, &room) >= MAX_ROOMS_PER_CONNECTION {
                None
            } else {
                if !state.connections.contains_key(&id) {
                    let weak = Arc::downgrade(&self.state);
                    Chat::watch(&mut state, weak, self.events.clone(), id, context.closed.clone());
                    state.connections.insert(id, Joined { user: user.clone(), rooms: BTreeSet::new() });
                }
                let newly = state.connections.get_mut(&id).is_some_and(|c| c.rooms.insert(room.clone()));
                Some(newly && state.enter(&room, &user))
            }
        };
        match first {
            None => {
                context.leave_group(&room).await.map_err(ChatError::Group)?;
                return Err(ChatError::TooManyRooms);
            }
            Some(true) => {
                let others = self.events.to_group(room.clone()).except_caller();
                others.joined(room.clone(), user).map_err(ChatError::Event)?;
            }
            Some(false) => {}
        }
        let members = context.group_members(&room).await.map_err(ChatError::Group)?;
        Ok(user_names(members))
    }

    async fn leave(&self, room: String) -> Result<(), ChatError> {
        check_room(&room)?;
        let (context, user) = caller()?;
        context.leave_group(&room).await.map_err(ChatError::Group)?;
        let last = {
            let mut state = self.lock();
            let removed = state.connections.get_mut(&context.connection_id).is_some_and(|c| c.rooms.remove(&room));
            removed && state.exit(&room, &user)
        };
        if last {
            self.events.to_group(room.clone()).left(room, user).map_err(ChatError::Event)?;
        }
        Ok(())
    }

    async fn send(&self, room: String, text: String) -> Result<(), ChatError> {
        check_room(&room)?;
        check_text(&text)?;
        let (context, user) = caller()?;
        if !self.is_in(context.connection_id, &room) {
            return Err(ChatError::NotInRoom { room });
        }
        self.events.to_group(room.clone()).message(room, user, text).map_err(ChatError::Event)
    }

    async fn members(&self, room: String) -> Result<Vec<String>, ChatError> {
        check_room(&room)?;
        let (context, _) = caller()?;
        if !self.is_in(context.connection_id, &room) {
            return Err(ChatError::NotInRoom { room });
        }
        let members = context.group_members(&room).await.map_err(ChatError::Group)?;
        Ok(user_names(members))
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn tokens_name_bounded_users_and_refuse_the_rest() {
        assert_eq!(ChatTokens::user_name("user:alice"), Some("alice"));
        assert_eq!(ChatTokens::user_name("user:Zoë Ω"), Some("Zoë Ω"));
        assert_eq!(ChatTokens::user_name(&format!("user:{}", "é".repeat(MAX_USER_NAME_CHARS))).map(str::len), Some(64));
        for refused in ["", "alice", "user:", "user: alice", "user:alice ", "user:a\nb", "User:alice", "admin:alice"] {
            assert_eq!(ChatTokens::user_name(refused), None, "{refused:?}");
        }
        assert_eq!(ChatTokens::user_name(&format!("user:{}", "x".repeat(MAX_USER_NAME_CHARS + 1))), None);
    }

    #[test]
    fn room_names_and_texts_are_bounded() {
        assert!(check_room("lobby").is_ok());
        assert!(check_room(&"r".repeat(MAX_ROOM_NAME_CHARS)).is_ok());
        for bad in ["", " lobby", "lobby ", "lob\tby"] {
            assert!(matches!(check_room(bad), Err(ChatError::InvalidRoom)), "{bad:?}");
        }
        assert!(matches!(check_room(&"r".repeat(MAX_ROOM_NAME_CHARS + 1)), Err(ChatError::InvalidRoom)));
        assert!(check_text("hi").is_ok());
        assert!(check_text(&"ü".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(matches!(check_text("  \n"), Err(ChatError::EmptyText)));
        let long = check_text(&"x".repeat(MAX_TEXT_CHARS + 1));
        assert!(matches!(long, Err(ChatError::TextTooLong { chars }) if chars == MAX_TEXT_CHARS + 1));
    }

    #[test]
    fn a_user_counts_once_per_room_however_many_connections() {
        let mut state = State::default();
        assert!(state.enter("r", "ann"));
        assert!(!state.enter("r", "ann"));
        assert!(state.enter("r", "bob"));
        assert!(!state.exit("r", "ann"));
        assert!(state.exit("r", "ann"));
        assert!(!state.exit("r", "ann"), "a user not in the room leaves nothing");
        assert!(state.exit("r", "bob"));
        assert!(state.rooms.is_empty(), "empty rooms are forgotten");
    }
}
