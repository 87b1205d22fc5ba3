//! The pipeline's topics.
//!
//! Every pipeline topic has the same partition count and is keyed by user id,
//! so partition `p` of every topic is one independent shard of the pipeline.
//! `campaign.treasury` is the exception: one partition, a single log order
//! for leases of campaign budget and stock. `chatcart.checkpoints` holds
//! images of stage state (the runner's checkpoints), not events.
//! `chat.gateway.replies` holds copies of the replies to requests that came
//! through a `chatcart gateway`, each on the partition its gateway instance
//! reads, so no instance reads every reply.

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
}

impl Topic {
    /// Every topic, in flow order.
    pub const ALL: [Topic; 9] = [
        Topic::Prompts,
        Topic::Intents,
        Topic::Decisions,
        Topic::Orders,
        Topic::Replies,
        Topic::Treasury,
        Topic::Dlq,
        Topic::Checkpoints,
        Topic::GatewayReplies,
    ];

    /// The topics that carry events (every one but the checkpoints and the
    /// gateways' copies of replies): what analytics records and the auditor
    /// reads.
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
