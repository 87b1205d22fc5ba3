//! The topics' full names, with the configured prefix. (The topics
//! themselves, [`Topic`], belong to the stages.)

use connectors::KafkaConfig;
use stages::Topic;

/// Full topic names, with the configured prefix, computed once.
#[derive(Debug, Clone)]
pub struct TopicNames {
    names: [String; Topic::ALL.len()],
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
        &self.names[topic as usize]
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
