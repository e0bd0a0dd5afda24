//! Channel and key names, all under the configured prefix (see `ARCHITECTURE.md`).
//!
//! Keys carry the prefix as a hash tag (`{P}`), so on a Redis Cluster they share one
//! hash slot and the scripts and pipelines over them stay legal; channels do not, so
//! sharded pub/sub spreads the topics over the cluster's shards.

/// The pub/sub channel of hub topic `topic`.
pub(crate) fn channel(prefix: &str, topic: &str) -> String {
    format!("{prefix}:t:{topic}")
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
        assert_eq!(channel("w", "g:x"), "w:t:g:x");
    }
}
