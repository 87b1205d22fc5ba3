//! Runs a surge against a live pipeline: one task sends prompts on the
//! profile's schedule, one thread reads `chat.replies` and tallies what
//! comes back, and a progress bar shows both. Through a gateway
//! (`via_gateway`), each prompt is an HTTP request instead, whose answer
//! comes back on its own stream ([`super::via_gateway`]).
//!
//! The schedule is open-loop: request `n` is due at the profile's
//! `due_at(n)` whatever happened to earlier ones, and its prompt carries
//! that intended time as its event time. When the sender falls behind (the
//! producer's queue is full, the machine is busy), the late requests still
//! count their latency from when they were meant to go out, so a stall
//! shows up in the figures instead of being hidden (no coordinated
//! omission), and the report says how far behind the sender fell.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connectors::kafka::{Tail, end_offsets, enqueue};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer};
use schemas::{Codec, Record};

use super::profile::Profile;
use super::report::{Behind, Sending, SurgeReport};
use super::tally::{SeenAnswer, Tally};
use super::traffic::{Kind, Mix, Traffic, seq_of};
use super::via_gateway::{Sender, ViaGateway};
use extract::catalog::Catalog;
use runtime::app;
use runtime::config::Settings;
use runtime::now_ms;
use runtime::topics::TopicNames;
use stages::Topic;

/// A request sent this much after its intended time counts as late.
const LATE: Duration = Duration::from_millis(10);

/// Deliveries awaiting the broker's acknowledgement, beyond the producer's
/// own queue: the sender waits when this many are outstanding.
const MAX_UNACKED: usize = 65_536;

/// What to send, and how long to wait for the answers.
#[derive(Debug, Clone)]
pub struct Surge {
    pub profile: Profile,
    pub mix: Mix,
    pub seed: u64,
    /// Names the run: its request and user ids start with it.
    pub run: String,
    /// After the last send, how long to wait for the remaining answers.
    pub drain_timeout: Duration,
    /// Draw a live progress bar on stderr (hidden when it is not a terminal).
    pub progress: bool,
    /// Send through `chatcart gateway` instead of straight to Kafka.
    pub via_gateway: Option<ViaGateway>,
}

/// What the sender and the reader share while the surge runs.
struct Shared {
    tally: Arc<Mutex<Tally>>,
    /// Distinct requests made; `u64::MAX` until the last one is sent.
    expected: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        // A panic while holding the lock leaves counts that are still
        // counts; keep reporting them.
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Sends `surge` to `chat.prompts` and measures the answers on
/// `chat.replies` (or, for the benchmark's relay, the prompts arriving
/// there).
pub async fn run(settings: &Settings, surge: Surge) -> anyhow::Result<SurgeReport> {
    let mut running = LiveSurge::start(settings, surge).await?;
    running.send().await?;
    running.finish().await
}

/// A surge under way: the answers are being read from the moment it starts.
pub struct LiveSurge {
    settings: Settings,
    surge: Surge,
    shared: Arc<Shared>,
    /// Reads `chat.replies`; none through a gateway, whose answers come on
    /// the requests' own streams.
    reader: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    gateway: Option<Sender>,
    start_ms: i64,
    sending: Option<Sending>,
    bars: Bars,
}

impl LiveSurge {
    /// Notes where the answers topic ends and starts reading from there.
    pub async fn start(settings: &Settings, surge: Surge) -> anyhow::Result<Self> {
        surge.mix.validate()?;
        let codec = Arc::new(app::codec(settings)?);
        let kafka = settings.kafka.clone();
        let replies = TopicNames::new(&kafka).name(Topic::Replies).to_owned();
        let partitions = Topic::Replies.partitions(kafka.partitions);
        let (replies_c, kafka_c) = (replies.clone(), kafka.clone());
        let starts =
            tokio::task::spawn_blocking(move || end_offsets(&kafka_c, &replies_c, partitions))
                .await?
                .context("reading where chat.replies ends")?;
        let start_ms = now_ms();
        let shared = Arc::new(Shared {
            tally: Arc::new(Mutex::new(Tally::new(start_ms))),
            expected: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
        });
        let reader = if surge.via_gateway.is_some() {
            None
        } else {
            let (shared, run) = (Arc::clone(&shared), surge.run.clone());
            Some(
                std::thread::Builder::new()
                    .name("surge-answers".into())
                    .spawn(move || read_answers(&kafka, &replies, &starts, &codec, &run, &shared))
                    .context("starting the reader thread")?,
            )
        };
        let gateway = surge.via_gateway.as_ref().map(Sender::new).transpose()?;
        Ok(Self {
            settings: settings.clone(),
            shared,
            reader,
            gateway,
            start_ms,
            sending: None,
            bars: Bars::new(surge.profile.total(), surge.progress),
            surge,
        })
    }

    /// When the surge started (Unix milliseconds).
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// Sends every delivery of the profile on schedule and waits until the
    /// broker has acknowledged them.
    pub async fn send(&mut self) -> anyhow::Result<()> {
        let (settings, surge, shared, bars) =
            (&self.settings, &self.surge, &self.shared, &self.bars);
        let mut gateway = self.gateway.as_mut();
        let catalog =
            Catalog::load(settings.intent.catalog.as_deref()).context("loading the catalog")?;
        let mut traffic = Traffic::new(&catalog, surge.mix.clone(), &surge.run, surge.seed)?;
        let codec = app::codec(settings)?;
        let prompts = TopicNames::new(&settings.kafka)
            .name(Topic::Prompts)
            .to_owned();
        let producer = settings.kafka.producer()?;
        let total = surge.profile.total();
        let (acks, acked) = tokio::sync::mpsc::channel::<DeliveryFuture>(MAX_UNACKED);
        let ack_task = tokio::spawn(count_failures(acked));

        let faults = Faults::from_env();
        let started = Instant::now();
        let mut behind = Behind::default();
        let mut kinds = std::collections::BTreeMap::<Kind, u64>::new();
        let mut last_draw = Instant::now();
        for n in 0..total {
            let Some(due) = surge.profile.due_at(n) else {
                break;
            };
            let due = Duration::from_secs_f64(due);
            faults.stall(started).await;
            let now = started.elapsed();
            if due > now {
                tokio::time::sleep(due - now).await;
            } else if now - due > LATE {
                behind.late_sends += 1;
                behind.max_late_ms = behind.max_late_ms.max((now - due).as_secs_f64() * 1e3);
            }
            let intended = if faults.stamps_send_time {
                now_ms()
            } else {
                self.start_ms + due.as_millis() as i64
            };
            let delivery = traffic.next(intended);
            *kinds.entry(delivery.kind).or_default() += 1;
            if let Some(gw) = gateway.as_mut() {
                let due_at = started + due;
                gw.send(delivery, due_at, Arc::clone(&shared.tally)).await?;
                shared.tally().sent(now_ms());
                if last_draw.elapsed() > Duration::from_millis(100) {
                    bars.draw(n + 1, shared);
                    last_draw = Instant::now();
                }
                continue;
            }
            let payload = codec.encode(&Record::Prompt(delivery.prompt.clone()))?;
            let record = FutureRecord::to(&prompts)
                .key(delivery.prompt.user_id.as_str())
                .payload(&payload[..]);
            let ack = enqueue(&producer, record).await?;
            acks.send(ack)
                .await
                .context("the acknowledgement counter stopped")?;
            shared.tally().sent(now_ms());
            if last_draw.elapsed() > Duration::from_millis(100) {
                bars.draw(n + 1, shared);
                last_draw = Instant::now();
            }
        }
        let send_secs = started.elapsed().as_secs_f64();
        drop(acks);
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(60)))
            .await?
            .context("flushing the prompts")?;
        let failed_sends = ack_task.await?;
        let requests = traffic.requests();
        shared.expected.store(requests, Ordering::Release);
        bars.draw(total, shared);
        bars.sent.finish();
        self.sending = Some(Sending {
            sent: total,
            requests,
            kinds,
            failed_sends,
            send_secs,
            behind,
        });
        Ok(())
    }

    /// Waits for the answers, up to the drain timeout, and reports.
    pub async fn finish(self) -> anyhow::Result<SurgeReport> {
        let Self {
            settings,
            surge,
            shared,
            reader,
            gateway,
            sending,
            bars,
            ..
        } = self;
        let sending = sending.context("finish() before send()")?;
        let mut front = None;
        if let Some(gw) = gateway {
            let tally = Arc::clone(&gw.front);
            gw.finish(surge.drain_timeout).await;
            let secs = shared
                .tally()
                .last_answer_after_ms()
                .map_or(sending.send_secs, |ms| ms as f64 / 1e3);
            let via = surge.via_gateway.as_ref();
            let report = tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .report(secs, via.and_then(|v| v.capacity));
            front = Some(report);
        }
        if let Some(reader) = reader {
            let drain_deadline = Instant::now() + surge.drain_timeout;
            while !reader.is_finished() && Instant::now() < drain_deadline {
                bars.draw(sending.sent, &shared);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            shared.stop.store(true, Ordering::Release);
            let read = tokio::task::spawn_blocking(move || reader.join())
                .await?
                .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
            read.context("reading chat.replies")?;
        }
        bars.finish(&shared);
        let tally = shared.tally();
        let mut report = SurgeReport::new(&surge.run, &surge.profile, &settings, &tally, sending);
        if let Some(front) = front {
            // Through a gateway, only admitted requests are owed an answer.
            report.unanswered = front.unanswered_admitted + front.lost;
            report.front_door = Some(front);
        }
        Ok(report)
    }
}

/// Awaits every delivery in order; returns how many the broker refused.
async fn count_failures(mut acked: tokio::sync::mpsc::Receiver<DeliveryFuture>) -> u64 {
    let mut failed = 0;
    while let Some(ack) = acked.recv().await {
        if !matches!(ack.await, Ok(Ok(_))) {
            failed += 1;
        }
    }
    failed
}

/// Reads the final topic from `starts` until every expected request is
/// answered or told to stop; blocking, on its own thread.
fn read_answers(
    kafka: &connectors::KafkaConfig,
    topic: &str,
    starts: &[i64],
    codec: &Codec,
    run: &str,
    shared: &Shared,
) -> anyhow::Result<()> {
    let tail = Tail::new(kafka, topic)?;
    let from: Vec<(i32, i64)> = starts
        .iter()
        .enumerate()
        .map(|(p, o)| (p as i32, *o))
        .collect();
    tail.assign(&from)?;
    let done = || {
        shared.stop.load(Ordering::Acquire)
            || shared.tally().answered() >= shared.expected.load(Ordering::Acquire)
    };
    while !done() {
        let Some(message) = tail.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let at = now_ms();
        let Ok(record) = codec.decode(message.payload().unwrap_or_default()) else {
            continue;
        };
        let Some(answer) = SeenAnswer::of(&record) else {
            continue;
        };
        // Other runs' traffic on the same topic is not ours to count.
        if let Some(seq) = seq_of(run, answer.request_id) {
            shared.tally().answer(seq, &answer, at);
        }
    }
    Ok(())
}

/// The live progress: one bar for sending, one for answers.
struct Bars {
    _multi: MultiProgress,
    sent: ProgressBar,
    answered: ProgressBar,
}

impl Bars {
    fn new(total: u64, visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = |what: &str| {
            ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} {what:>8} [{{bar:32}}] {{human_pos:>9}}/{{human_len}} {{per_sec:>12}} {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        let sent = multi.add(ProgressBar::new(total).with_style(style("sent")));
        let answered = multi.add(ProgressBar::new(total).with_style(style("answered")));
        Self {
            _multi: multi,
            sent,
            answered,
        }
    }

    fn draw(&self, sent: u64, shared: &Shared) {
        self.sent.set_position(sent);
        let tally = shared.tally();
        self.answered.set_position(tally.answered());
        self.answered
            .set_message(format!("p99 {} ms", tally.quantiles().p99));
    }

    fn finish(&self, shared: &Shared) {
        let answered = shared.tally().answered();
        self.answered.set_position(answered);
        self.answered.abandon();
    }
}

/// Faults the tests inject to show they catch coordinated omission.
struct Faults {
    /// `CHATCART_FAULT_SURGE_STALL=AT_MS:FOR_MS`: the sender stops for
    /// `FOR_MS` once `AT_MS` have passed, as a busy machine would stop it.
    stall: Option<(Duration, Duration)>,
    /// `CHATCART_FAULT_SURGE_STAMPS_SEND_TIME=1`: stamp prompts with when
    /// they were actually sent, the mistake that hides stalls.
    stamps_send_time: bool,
}

impl Faults {
    fn from_env() -> Self {
        let stall = std::env::var("CHATCART_FAULT_SURGE_STALL")
            .ok()
            .and_then(|v| {
                let (at, pause) = v.split_once(':')?;
                Some((
                    Duration::from_millis(at.parse().ok()?),
                    Duration::from_millis(pause.parse().ok()?),
                ))
            });
        Self {
            stall,
            stamps_send_time: std::env::var_os("CHATCART_FAULT_SURGE_STAMPS_SEND_TIME").is_some(),
        }
    }

    async fn stall(&self, started: Instant) {
        if let Some((at, pause)) = self.stall {
            if started.elapsed() >= at && started.elapsed() < at + pause {
                tokio::time::sleep(at + pause - started.elapsed()).await;
            }
        }
    }
}
