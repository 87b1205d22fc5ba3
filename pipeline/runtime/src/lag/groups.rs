//! Every chatcart consumer group's committed offsets on each of its input
//! partitions, with where those partitions start and end and how many
//! members the group has: one reading of what `chatcart lag` evaluates.
//! Read without joining any group, so reading changes nothing.

use std::time::{Duration, Instant};

use connectors::ConnectorError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use stages::Topic;

use super::STAGES;
use crate::Settings;
use crate::topics::TopicNames;

/// The analytics sink's part of the group names (`<prefix>.analytics`).
pub const SINK: &str = "analytics";

/// A chatcart consumer group and the topics it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group id, `<group_prefix>.<part>`.
    pub id: String,
    /// `intent`, `coupon`, `fulfillment`, `reply` or `analytics`.
    pub part: &'static str,
    pub inputs: Vec<Topic>,
}

/// Every chatcart group of `settings`, in flow order, the sink last.
pub fn groups(settings: &Settings) -> Vec<Group> {
    let prefix = &settings.kafka.group_prefix;
    let stages = STAGES.iter().map(|(stage, inputs)| Group {
        id: format!("{prefix}.{}", stage.name()),
        part: stage.name(),
        inputs: inputs.to_vec(),
    });
    let sink = Group {
        id: format!("{prefix}.{SINK}"),
        part: SINK,
        inputs: Topic::ANALYTICS.to_vec(),
    };
    stages.chain(std::iter::once(sink)).collect()
}

/// Where a group stands on one partition of one of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionReading {
    pub topic: Topic,
    pub partition: i32,
    /// The next offset the group will read, as committed; `None` when it
    /// never committed there.
    pub committed: Option<i64>,
    /// The partition's first offset still in the log.
    pub start: i64,
    /// The partition's end (its high watermark).
    pub end: i64,
}

/// One group at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReading {
    /// Members now; `None` when the broker says the group is active but
    /// not how many it has, or would not answer.
    pub members: Option<usize>,
    pub partitions: Vec<PartitionReading>,
}

/// Every group at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub at: Instant,
    /// In the order of the groups the sampler was made for.
    pub groups: Vec<GroupReading>,
}

/// Reads [`Reading`]s. Blocking: call it from a blocking thread.
pub struct GroupSampler {
    groups: Vec<Group>,
    partitions: i32,
    topics: TopicNames,
    /// One client per group, never joining it, to fetch its offsets.
    clients: Vec<BaseConsumer>,
    meta: BaseConsumer,
    timeout: Duration,
}

impl GroupSampler {
    pub fn new(settings: &Settings, groups: Vec<Group>) -> Result<Self, ConnectorError> {
        let kafka = &settings.kafka;
        let clients = groups
            .iter()
            .map(|g| {
                let mut cfg = kafka.client_config();
                cfg.set("group.id", &g.id)
                    .set("enable.auto.commit", "false");
                cfg.create().map_err(ConnectorError::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            groups,
            partitions: kafka.partitions,
            topics: TopicNames::new(kafka),
            clients,
            meta: kafka.client_config().create()?,
            timeout: Duration::from_secs(5),
        })
    }

    /// The groups read, in order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Reads every group's offsets, members and its partitions' bounds.
    pub fn sample(&self) -> Result<Reading, ConnectorError> {
        // Each topic's bounds once, however many groups read it.
        let mut bounds: Vec<(Topic, Vec<(i64, i64)>)> = Vec::new();
        for group in &self.groups {
            for topic in &group.inputs {
                if bounds.iter().any(|(t, _)| t == topic) {
                    continue;
                }
                let name = self.topics.name(*topic);
                let per = (0..topic.partitions(self.partitions))
                    .map(|p| self.meta.fetch_watermarks(name, p, self.timeout))
                    .collect::<Result<Vec<_>, _>>()?;
                bounds.push((*topic, per));
            }
        }
        let mut groups = Vec::with_capacity(self.groups.len());
        for (group, client) in self.groups.iter().zip(&self.clients) {
            let mut tpl = TopicPartitionList::new();
            for topic in &group.inputs {
                for p in 0..topic.partitions(self.partitions) {
                    tpl.add_partition(self.topics.name(*topic), p);
                }
            }
            let committed = client.committed_offsets(tpl, self.timeout)?;
            let mut partitions = Vec::new();
            for topic in &group.inputs {
                let name = self.topics.name(*topic);
                let per = bounds
                    .iter()
                    .find(|(t, _)| t == topic)
                    .map(|(_, per)| per.as_slice())
                    .unwrap_or_default();
                for (p, (start, end)) in (0..).zip(per) {
                    let committed =
                        committed
                            .find_partition(name, p)
                            .and_then(|e| match e.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            });
                    partitions.push(PartitionReading {
                        topic: *topic,
                        partition: p,
                        committed,
                        start: *start,
                        end: *end,
                    });
                }
            }
            groups.push(GroupReading {
                members: self.members(&group.id),
                partitions,
            });
        }
        Ok(Reading {
            at: Instant::now(),
            groups,
        })
    }

    /// How many members `group` has: `Some(0)` when the broker says it is
    /// empty, `None` when it is active but does not say how many (Tansu 0.6
    /// reports a group's state without its members) or would not answer.
    fn members(&self, group: &str) -> Option<usize> {
        let list = self.meta.fetch_group_list(Some(group), self.timeout).ok()?;
        let Some(found) = list.groups().iter().find(|g| g.name() == group) else {
            // A group the broker does not know has no members.
            return Some(0);
        };
        match (found.members().len(), found.state()) {
            (0, "Empty" | "Dead" | "") => Some(0),
            (0, _) => None,
            (n, _) => Some(n),
        }
    }
}
