//! Channel and key names, all under the configured prefix (see `ARCHITECTURE.md`).
//!
//! Keys carry the prefix as a hash tag (`{P}`), so on a Redis Cluster they share one
//! hash slot and the scripts and pipelines over them stay legal; channels do not, so
//! sharded pub/sub spreads the topics over the cluster's shards. History keys carry
//! their topic's channel as the hash tag instead: a stream's keys and the channel its
//! events are published to share a slot, as the append script needs.

/// The pub/sub channel of hub topic `topic`.
pub(crate) fn channel(prefix: &str, topic: &str) -> String {
    Channel { prefix, topic }.to_string()
}

/// [`channel`]'s name, written where it is needed (a command argument) rather than
/// allocated: the append of every event with history names three keys.
pub(crate) struct Channel<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) topic: &'a str,
}

impl std::fmt::Display for Channel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:t:{}", self.prefix, self.topic)
    }
}

/// [`history`] (`meta: false`) or [`history_meta`] (`meta: true`), written where it is
/// needed.
pub(crate) struct HistoryKey<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) stream: &'a str,
    pub(crate) meta: bool,
}

impl std::fmt::Display for HistoryKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channel = Channel { prefix: self.prefix, topic: stream_topic(self.stream) };
        write!(f, "{{{channel}}}:{}:{}", if self.meta { "hm" } else { "h" }, self.stream)
    }
}

/// A `Display` value as one Redis command argument, formatted into the command's own
/// buffer.
pub(crate) struct Arg<T>(pub(crate) T);

impl<T: std::fmt::Display> redis::ToRedisArgs for Arg<T> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        out.write_arg_fmt(&self.0);
    }
}

/// The sorted set of live nodes: member = node id, score = last heartbeat (Redis time, ms).
pub(crate) fn nodes(prefix: &str) -> String {
    format!("{{{prefix}}}:nodes")
}

/// The hash of one node's members under a presence key: field = connection id, value =
/// `=` + user name, or empty for no identity.
pub(crate) fn presence(prefix: &str, node: &str, kind: char, name: &str) -> String {
    format!("{{{prefix}}}:p:{node}:{kind}:{name}")
}

/// The set of presence keys node `node` has written (so a node that starts again under
/// the same id removes what its previous run left: it was never closed if it crashed).
pub(crate) fn presence_index(prefix: &str, node: &str) -> String {
    format!("{{{prefix}}}:pk:{node}")
}

/// The capped stream (`XADD`) of history stream `stream`: entry id `<offset>-0`, fields
/// `t` (Redis time, ms) and `f` (the signed frame).
pub(crate) fn history(prefix: &str, stream: &str) -> String {
    HistoryKey { prefix, stream, meta: false }.to_string()
}

/// The hash of history stream `stream`: `e` epoch, `o` offset of its last event, `a`
/// max age (ms).
pub(crate) fn history_meta(prefix: &str, stream: &str) -> String {
    HistoryKey { prefix, stream, meta: true }.to_string()
}

/// The session record of a closed connection.
pub(crate) fn session(prefix: &str, connection: &str) -> String {
    format!("{{{prefix}}}:s:{connection}")
}

/// What starts a positioned message (a frame appended to the history), followed by
/// `<stream>\t<epoch>\t<offset>\n` and the signed frame.
pub(crate) const POSITIONED: &[u8; 4] = b"WRH\x01";

/// Appends a frame to a history stream and publishes it with its position, atomically.
/// KEYS[1] = meta, KEYS[2] = stream; ARGV[1] = channel, ARGV[2] = signed frame,
/// ARGV[3] = max events, ARGV[4] = max age ms, ARGV[5] = epoch for a new stream,
/// ARGV[6] = stream name, ARGV[7] = `PUBLISH` or (Redis Cluster) `SPUBLISH`. A stream whose meta expired (unwritten for twice its age)
/// starts again at offset 1 in a new epoch. Returns the offset.
pub(crate) const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0, 'a', ARGV[4])
end
local age = math.max(tonumber(redis.call('HGET', KEYS[1], 'a') or '0'), tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'a', string.format('%d', age))
local top = redis.call('HINCRBY', KEYS[1], 'o', 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], string.format('%d-0', top), 't', string.format('%d', now), 'f', ARGV[2])
redis.call('PEXPIRE', KEYS[2], age)
redis.call('PEXPIRE', KEYS[1], 2 * age)
redis.call(ARGV[7], ARGV[1], 'WRH\1' .. ARGV[6] .. '\t' .. epoch .. '\t' .. string.format('%d', top) .. '\n' .. ARGV[2])
return top
";

/// Reads a history stream from an offset on. KEYS[1] = meta, KEYS[2] = stream;
/// ARGV[1] = first offset wanted, ARGV[2] = most entries. Returns `{}` for no stream,
/// else `{epoch, top, max age ms, now ms, entries}` (entries as `XRANGE` gives them).
pub(crate) const SINCE: &str = r"
local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'a')
if not m[1] then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
return {m[1], tonumber(m[2]), tonumber(m[3]), now, entries}
";

/// Takes a resumed connection's session record: returns it, and deletes it when it
/// starts with the owner's bytes (someone else's stays). KEYS[1] = the record, ARGV[1] =
/// the owner prefix.
pub(crate) const TAKE_SESSION: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return v
";

use witrpc_server::broker::stream_topic;

/// Whether `id` is a valid node id (it is part of keys, so no `:`).
pub(crate) fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Records this node's heartbeat with Redis's own clock (no skew between nodes) and
/// prunes nodes silent for ten ttls. KEYS[1] = nodes, ARGV[1] = node, ARGV[2] = ttl ms.
pub(crate) const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * tonumber(ARGV[2]))
return now
";

/// The nodes whose heartbeat is younger than the ttl. KEYS[1] = nodes, ARGV[1] = ttl ms.
pub(crate) const LIVE_NODES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_cannot_break_key_names() {
        assert!(valid_node_id("node-1.eu_west"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id("a:b"));
        assert!(!valid_node_id(&"n".repeat(65)));
        assert_eq!(presence("w", "n1", 'g', "a:b"), "{w}:p:n1:g:a:b");
        assert_eq!(nodes("w"), "{w}:nodes");
        assert_eq!(presence_index("w", "n1"), "{w}:pk:n1");
        assert_eq!(channel("w", "g:x"), "w:t:g:x");
        // A stream's keys share the slot of its topic's channel.
        assert_eq!(history("w", "g:x"), "{w:t:g:x}:h:g:x");
        assert_eq!(history_meta("w", "c:1"), "{w:t:all}:hm:c:1");
        // As command arguments they are the same bytes.
        let mut cmd = redis::cmd("X");
        cmd.arg(Arg(HistoryKey { prefix: "w", stream: "g:x", meta: true }))
            .arg(Arg(Channel { prefix: "w", topic: "u:a" }));
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .skip(1)
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(args, [b"{w:t:g:x}:hm:g:x".to_vec(), b"w:t:u:a".to_vec()]);
    }
}
