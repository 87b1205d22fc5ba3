//! The pipeline's topics and their full names.
//!
//! Every pipeline topic has the same partition count and is keyed by user id,
//! so partition `p` of every topic is one independent shard of the pipeline.
//! `campaign.treasury` is the exception: one partition, a single log order
//! for leases of campaign budget and stock. `chatcart.checkpoints` holds
//! images of stage state (see `runtime::checkpoint`), not events.

use connectors::KafkaConfig;

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
}

impl Topic {
    /// Every topic, in flow order.
    pub const ALL: [Topic; 8] = [
        Topic::Prompts,
        Topic::Intents,
        Topic::Decisions,
        Topic::Orders,
        Topic::Replies,
        Topic::Treasury,
        Topic::Dlq,
        Topic::Checkpoints,
    ];

    /// The topics that carry events (every one but the checkpoints): what
    /// analytics records and the auditor reads.
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
        }
    }

    /// How many partitions the topic has when the pipeline has `partitions`.
    pub const fn partitions(self, partitions: i32) -> i32 {
        match self {
            Topic::Treasury => 1,
            _ => partitions,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Full topic names, with the configured prefix, computed once.
#[derive(Debug, Clone)]
pub struct TopicNames {
    names: [String; 8],
    partitions: i32,
}

impl TopicNames {
    pub fn new(kafka: &KafkaConfig) -> Self {
        Self {
            names: Topic::ALL.map(|t| kafka.topic(t.base_name())),
            partitions: kafka.partitions,
        }
    }

    /// The full name of `topic`.
    pub fn name(&self, topic: Topic) -> &str {
        &self.names[topic.index()]
    }

    /// Which topic a full name refers to.
    pub fn topic_of(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| self.name(*t) == name)
    }

    /// `(name, partitions)` for every topic, as `topics create` makes them.
    pub fn layout(&self) -> Vec<(String, i32)> {
        Topic::ALL
            .iter()
            .map(|t| (self.name(*t).to_owned(), t.partitions(self.partitions)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_round_trip() {
        let kafka = KafkaConfig {
            topic_prefix: "t1.".into(),
            partitions: 4,
            ..KafkaConfig::default()
        };
        let names = TopicNames::new(&kafka);
        assert_eq!(names.name(Topic::Replies), "t1.chat.replies");
        for t in Topic::ALL {
            assert_eq!(names.topic_of(names.name(t)), Some(t));
        }
        assert_eq!(names.topic_of("chat.replies"), None);
        let layout = names.layout();
        assert!(layout.contains(&("t1.campaign.treasury".to_owned(), 1)));
        assert!(layout.contains(&("t1.chat.prompts".to_owned(), 4)));
    }
}
