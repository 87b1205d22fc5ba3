//! `chatcart lag`: how far behind every chatcart consumer group is, per
//! partition, and whether it is catching up, by Burrow's evaluation rules
//! (`runtime::lag::status`) over a window of readings a second apart.
//!
//! The analytics sink's position is where ClickHouse's rows end, not its
//! Kafka commit: it resumes from ClickHouse after a crash, so that is the
//! position that counts. Its Kafka commit (made after each durable insert,
//! for Burrow, KEDA and `kafka-consumer-groups`) is shown beside it.
//!
//! Lag in seconds is the lag divided by the rate the group committed at
//! over the window: how long the backlog takes to clear at the current
//! pace. It is absent when the group committed nothing in the window.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connectors::clickhouse::store::stored_positions;
use runtime::Settings;
use runtime::lag::Position;
use runtime::lag::groups::{Group, GroupSampler, Reading, SINK, groups};
use runtime::lag::status::{Status, evaluate};
use runtime::topics::TopicNames;
use serde::Serialize;
use stages::Topic;

/// What to read and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only this group: its part (`intent`, …, `analytics`) or its id.
    pub group: Option<String>,
    /// Readings span this long.
    pub window: Duration,
    /// Between readings.
    pub every: Duration,
}

/// One reading, with the sink's position in ClickHouse when it was read.
#[derive(Debug, Clone)]
pub struct Sample {
    pub reading: Reading,
    /// The last offset ClickHouse holds per topic and partition; `None`
    /// without `clickhouse.url`.
    pub held: Option<HashMap<(Topic, i32), i64>>,
    /// Why ClickHouse could not be read, when it was asked and failed.
    pub clickhouse_error: Option<String>,
}

/// Reads samples.
pub struct Sampler {
    groups: Arc<GroupSampler>,
    names: TopicNames,
    clickhouse: Option<connectors::ClickHouseClient>,
}

impl Sampler {
    /// A sampler of the groups `options` names.
    pub fn new(settings: &Settings, options: &Options) -> anyhow::Result<Self> {
        let mut chosen = groups(settings);
        if let Some(want) = &options.group {
            chosen.retain(|g| g.part == want || &g.id == want);
            if chosen.is_empty() {
                let known: Vec<String> = groups(settings)
                    .into_iter()
                    .map(|g| g.part.to_owned())
                    .collect();
                anyhow::bail!(
                    "no chatcart group is called {want:?}; name one of {} (or its id, <kafka.group_prefix>.<name>)",
                    known.join(", ")
                );
            }
        }
        let sink = chosen.iter().any(|g| g.part == SINK);
        Ok(Self {
            groups: Arc::new(GroupSampler::new(settings, chosen)?),
            names: TopicNames::new(&settings.kafka),
            clickhouse: (sink && settings.clickhouse.enabled())
                .then(|| settings.clickhouse.client()),
        })
    }

    /// The groups sampled.
    pub fn groups(&self) -> &[Group] {
        self.groups.groups()
    }

    /// Reads every group now, and the sink's position in ClickHouse.
    pub async fn sample(&self) -> anyhow::Result<Sample> {
        let groups = Arc::clone(&self.groups);
        let reading = tokio::task::spawn_blocking(move || groups.sample())
            .await?
            .context("reading the groups' offsets from the broker")?;
        let (mut held, mut clickhouse_error) = (None, None);
        if let Some(client) = &self.clickhouse {
            let names: Vec<&str> = Topic::ANALYTICS
                .iter()
                .map(|t| self.names.name(*t))
                .collect();
            // The stages' lag is worth showing without ClickHouse: the
            // sink's row then falls back to its Kafka commit.
            match stored_positions(client, &names).await {
                Ok(stored) => {
                    held = Some(
                        stored
                            .into_iter()
                            .filter_map(|((name, p), offset)| {
                                Some(((self.names.topic_of(&name)?, p), offset))
                            })
                            .collect(),
                    );
                }
                Err(e) => clickhouse_error = Some(e.to_string()),
            }
        }
        Ok(Sample {
            reading,
            held,
            clickhouse_error,
        })
    }
}

/// Samples once every `options.every` until `options.window` is covered,
/// and evaluates.
pub async fn measure(settings: &Settings, options: &Options) -> anyhow::Result<LagReport> {
    let sampler = Sampler::new(settings, options)?;
    let mut window = Window::new(options);
    loop {
        let sample = sampler.sample().await?;
        window.push(sample);
        if window.covered() {
            return Ok(evaluate_window(sampler.groups(), &window.samples()));
        }
        tokio::time::sleep(options.every).await;
    }
}

/// The newest samples spanning a window; bounded by it.
#[derive(Debug)]
pub struct Window {
    span: Duration,
    samples: VecDeque<Sample>,
}

impl Window {
    pub fn new(options: &Options) -> Self {
        Self {
            span: options.window,
            samples: VecDeque::new(),
        }
    }

    /// Adds `sample`, dropping those the window no longer needs.
    pub fn push(&mut self, sample: Sample) {
        let newest = sample.reading.at;
        self.samples.push_back(sample);
        while self.samples.len() > 2 && self.samples[1].reading.at + self.span <= newest {
            self.samples.pop_front();
        }
    }

    /// Whether the samples span the whole window.
    pub fn covered(&self) -> bool {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) => b.reading.at.duration_since(a.reading.at) >= self.span,
            _ => false,
        }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }
}

/// Every group evaluated over a window.
#[derive(Debug, Clone, Serialize)]
pub struct LagReport {
    /// How long the readings span, in seconds.
    pub window_secs: f64,
    pub readings: usize,
    pub groups: Vec<GroupLag>,
    /// Why the sink's position is its Kafka commit rather than
    /// ClickHouse's, when ClickHouse was asked and could not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clickhouse_error: Option<String>,
}

/// One group over the window.
#[derive(Debug, Clone, Serialize)]
pub struct GroupLag {
    pub group: String,
    pub part: &'static str,
    /// Members at the newest reading; `null` when the broker says the
    /// group is active but not how many it has, or would not answer.
    pub members: Option<usize>,
    /// The worst status of its partitions.
    pub status: Status,
    pub total_lag: i64,
    /// The partition with the most lag (none while nothing lags).
    pub worst: Option<PartitionLag>,
    /// `clickhouse` for the sink when ClickHouse was read, else `kafka`.
    pub position_from: &'static str,
    pub partitions: Vec<PartitionLag>,
}

/// One partition over the window, at its newest reading.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub topic: &'static str,
    pub partition: i32,
    /// The next offset the group reads.
    pub committed: i64,
    pub end: i64,
    pub lag: i64,
    pub lag_seconds: Option<f64>,
    pub status: Status,
    /// The sink's Kafka commit, when its position came from ClickHouse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_committed: Option<i64>,
}

/// Evaluates `samples` (oldest first) for `groups`, the groups they were
/// read for. Pure.
pub fn evaluate_window(groups: &[Group], samples: &[Sample]) -> LagReport {
    let span = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.reading.at.duration_since(a.reading.at),
        _ => Duration::ZERO,
    };
    let mut out = Vec::with_capacity(groups.len());
    for (g, group) in groups.iter().enumerate() {
        let from_clickhouse = group.part == SINK && samples.iter().all(|s| s.held.is_some());
        let Some(newest) = samples.last().and_then(|s| s.reading.groups.get(g)) else {
            continue;
        };
        let mut partitions = Vec::with_capacity(newest.partitions.len());
        for (i, now) in newest.partitions.iter().enumerate() {
            let positions: Vec<Position> = samples
                .iter()
                .filter_map(|s| {
                    let r = s.reading.groups.get(g)?.partitions.get(i)?;
                    // Never committed: the group starts at the log's start.
                    let mut committed = r.committed.unwrap_or(r.start);
                    if from_clickhouse {
                        let held = s.held.as_ref()?.get(&(r.topic, r.partition));
                        committed = held.map_or(r.start, |last| last + 1);
                    }
                    Some(Position {
                        committed,
                        end: r.end,
                    })
                })
                .collect();
            let Some(last) = positions.last().copied() else {
                continue;
            };
            let lag = last.lag();
            let moved = last.committed - positions[0].committed;
            let lag_seconds = if lag == 0 {
                Some(0.0)
            } else if moved > 0 && !span.is_zero() {
                Some(lag as f64 / (moved as f64 / span.as_secs_f64()))
            } else {
                None
            };
            partitions.push(PartitionLag {
                topic: now.topic.base_name(),
                partition: now.partition,
                committed: last.committed,
                end: last.end,
                lag,
                lag_seconds,
                // Unknown counts as someone there: a stall, not a stop.
                status: evaluate(&positions, newest.members.unwrap_or(1)),
                kafka_committed: from_clickhouse.then_some(now.committed).flatten(),
            });
        }
        let worst = partitions
            .iter()
            .filter(|p| p.lag > 0)
            .max_by_key(|p| p.lag)
            .cloned();
        out.push(GroupLag {
            group: group.id.clone(),
            part: group.part,
            members: newest.members,
            status: partitions
                .iter()
                .map(|p| p.status)
                .max()
                .unwrap_or(Status::Ok),
            total_lag: partitions.iter().map(|p| p.lag).sum(),
            worst,
            position_from: if from_clickhouse {
                "clickhouse"
            } else {
                "kafka"
            },
            partitions,
        });
    }
    LagReport {
        window_secs: span.as_secs_f64(),
        readings: samples.len(),
        groups: out,
        clickhouse_error: samples
            .iter()
            .rev()
            .find_map(|s| s.clickhouse_error.clone()),
    }
}

impl fmt::Display for LagReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chatcart lag: {} groups, {} readings over {:.1} s",
            self.groups.len(),
            self.readings,
            self.window_secs
        )?;
        for g in &self.groups {
            let members = g.members.map_or_else(|| "?".to_owned(), |m| m.to_string());
            let worst = g.worst.as_ref().map_or_else(
                || "-".to_owned(),
                |w| format!("{}[{}] {}", w.topic, w.partition, w.lag),
            );
            writeln!(
                f,
                "\n{:<6} {}  members {members}  total lag {}  worst {worst}{}",
                g.status.name(),
                g.group,
                g.total_lag,
                if g.position_from == "clickhouse" {
                    "  (position: ClickHouse)"
                } else {
                    ""
                }
            )?;
            writeln!(
                f,
                "  {:<22} {:>4} {:>12} {:>12} {:>9} {:>8}  status",
                "topic", "part", "committed", "end", "lag", "lag s"
            )?;
            for p in &g.partitions {
                let secs = p
                    .lag_seconds
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
                let kafka = p
                    .kafka_committed
                    .map(|k| format!("  (kafka {k})"))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "  {:<22} {:>4} {:>12} {:>12} {:>9} {:>8}  {}{kafka}",
                    p.topic,
                    p.partition,
                    p.committed,
                    p.end,
                    p.lag,
                    secs,
                    p.status.name()
                )?;
            }
        }
        if let Some(e) = &self.clickhouse_error {
            writeln!(
                f,
                "\nThe analytics sink's position is its Kafka commit: ClickHouse could not be read ({e})."
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use runtime::lag::groups::{GroupReading, PartitionReading};

    use super::*;

    fn group(part: &'static str, inputs: Vec<Topic>) -> Group {
        Group {
            id: format!("g.{part}"),
            part,
            inputs,
        }
    }

    fn reading(committed: [Option<i64>; 2], end: [i64; 2]) -> GroupReading {
        GroupReading {
            members: Some(1),
            partitions: (0..2)
                .map(|p| PartitionReading {
                    topic: Topic::Prompts,
                    partition: p as i32,
                    committed: committed[p],
                    start: 0,
                    end: end[p],
                })
                .collect(),
        }
    }

    fn sample(at: Instant, groups: Vec<GroupReading>, held: Option<[i64; 2]>) -> Sample {
        Sample {
            reading: Reading { at, groups },
            held: held.map(|h| (0..2).map(|p| ((Topic::Prompts, p as i32), h[p])).collect()),
            clickhouse_error: None,
        }
    }

    #[test]
    fn groups_take_their_worst_partition_and_the_sink_its_clickhouse_position() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let groups = [
            group("intent", vec![Topic::Prompts]),
            group(SINK, vec![Topic::Prompts]),
        ];
        // Intent: partition 0 keeps up, partition 1 moves 10/s but its lag
        // grows. The sink: Kafka says 0 committed, ClickHouse holds up to
        // offset 49 and 19.
        let samples: Vec<Sample> = (0..=2)
            .map(|s| {
                let s_i = s as i64;
                sample(
                    at(s),
                    vec![
                        reading([Some(5), Some(10 * s_i)], [5, 100 + 20 * s_i]),
                        reading([None, None], [60, 30]),
                    ],
                    Some([49, 19]),
                )
            })
            .collect();
        let report = evaluate_window(&groups, &samples);
        let intent = &report.groups[0];
        assert_eq!(intent.status, Status::Warn);
        assert_eq!(intent.total_lag, 120);
        let worst = intent.worst.as_ref().expect("a worst partition");
        assert_eq!((worst.partition, worst.lag), (1, 120));
        // 120 behind at 10 a second.
        assert_eq!(worst.lag_seconds, Some(12.0));
        assert_eq!(intent.partitions[0].lag_seconds, Some(0.0));
        let sink = &report.groups[1];
        assert_eq!(sink.position_from, "clickhouse");
        assert_eq!(sink.partitions[0].committed, 50);
        assert_eq!(sink.partitions[1].lag, 10);
        assert_eq!(sink.status, Status::Stall, "held, not moving, behind");
        assert!(report.to_string().contains("WARN   g.intent"), "{report}");
    }
}
