//! The pipeline's topics.
//!
//! Every pipeline topic has the same partition count and is keyed by user id,
//! so partition `p` of every topic is one independent shard of the pipeline.
//! `campaign.treasury` is the exception: one partition, a single log order
//! for leases of campaign budget and stock. `chatcart.checkpoints` holds
//! images of stage state (the runner's checkpoints), not events.
//! `chat.gateway.replies` holds copies of the replies to requests that came
//! through a `chatcart gateway`, each on the partition its gateway instance
//! reads, so no instance reads every reply. `chat.gateway.decisions` holds
//! what the gateways admitted and shed: analytics reads it, no stage does.

/// One of chatcart's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Prompts,
    Intents,
    Decisions,
    Orders,
    Replies,
    Treasury,
    Dlq,
    Checkpoints,
    GatewayReplies,
    GatewayDecisions,
}

impl Topic {
    /// Every topic, in flow order.
    pub const ALL: [Topic; 10] = [
        Topic::Prompts,
        Topic::Intents,
        Topic::Decisions,
        Topic::Orders,
        Topic::Replies,
        Topic::Treasury,
        Topic::Dlq,
        Topic::Checkpoints,
        Topic::GatewayReplies,
        Topic::GatewayDecisions,
    ];

    /// What the analytics sink stores: the events and the gateways'
    /// decisions.
    pub const ANALYTICS: [Topic; 8] = [
        Topic::Prompts,
        Topic::Intents,
        Topic::Decisions,
        Topic::Orders,
        Topic::Replies,
        Topic::Treasury,
        Topic::Dlq,
        Topic::GatewayDecisions,
    ];

    /// The topics that carry the pipeline's events (every one but the
    /// checkpoints and the gateways' topics): what the auditor reads.
    pub const EVENTS: [Topic; 7] = [
        Topic::Prompts,
        Topic::Intents,
        Topic::Decisions,
        Topic::Orders,
        Topic::Replies,
        Topic::Treasury,
        Topic::Dlq,
    ];

    /// The topic's name without the configured prefix.
    pub const fn base_name(self) -> &'static str {
        match self {
            Topic::Prompts => "chat.prompts",
            Topic::Intents => "commerce.intents",
            Topic::Decisions => "commerce.decisions",
            Topic::Orders => "commerce.orders",
            Topic::Replies => "chat.replies",
            Topic::Treasury => "campaign.treasury",
            Topic::Dlq => "chatcart.dlq",
            Topic::Checkpoints => "chatcart.checkpoints",
            Topic::GatewayReplies => "chat.gateway.replies",
            Topic::GatewayDecisions => "chat.gateway.decisions",
        }
    }

    /// How many partitions the topic has when the pipeline has `partitions`.
    pub const fn partitions(self, partitions: i32) -> i32 {
        match self {
            Topic::Treasury => 1,
            _ => partitions,
        }
    }
}

/// The partition of `partitions` a record keyed `key` belongs to: Kafka's
/// default partitioner for keyed records (murmur2 of the key, positive,
/// modulo the count), so that the Java client and librdkafka's
/// `murmur2_random` put a user's records where chatcart does.
pub fn shard_of(key: &[u8], partitions: i32) -> i32 {
    let n = partitions.max(1);
    // `& 0x7fff_ffff` makes it non-negative, as Kafka's `toPositive`.
    ((murmur2(key) & 0x7fff_ffff) as i32) % n
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, seed `0x9747b28c`).
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(first) = rest.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of the Java client's `Utils.murmur2` (its unit test's
    /// vectors) and of `toPositive(murmur2(key)) % n`.
    #[test]
    fn shards_match_kafkas_default_partitioner() {
        assert_eq!(murmur2(b"21") as i32, -973_932_308);
        assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
        assert_eq!(
            murmur2(b"a-little-bit-longer-string") as i32,
            -1_486_304_829
        );
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58_897_971
        );
        assert_eq!(murmur2(b"abc") as i32, 479_470_107);
        for key in [&b"u1"[..], b"alice", b"", "用户".as_bytes()] {
            let p = shard_of(key, 12);
            assert!((0..12).contains(&p));
            assert_eq!(p, shard_of(key, 12));
        }
        assert_eq!(shard_of(b"anything", 1), 0);
    }
}
