//! Stages running inside the test process, as one `chatcart run` would.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use runtime::app::{self, StageName};
use runtime::shutdown::Trigger;
use runtime::{Ready, Settings, Shutdown};
use tokio::task::JoinHandle;

/// The four stages of the pipeline, without the analytics sink.
pub const STAGES: [StageName; 4] = [
    StageName::Intent,
    StageName::Coupon,
    StageName::Fulfillment,
    StageName::Reply,
];

/// Stages running in this process, as one `chatcart run` would.
pub struct Running {
    trigger: Trigger,
    task: JoinHandle<anyhow::Result<()>>,
    ready: Arc<Ready>,
    stages: usize,
}

impl Running {
    /// Starts `stages` with `settings`.
    pub fn start(settings: &Settings, stages: &[StageName]) -> Self {
        let (trigger, shutdown) = Shutdown::new();
        let ready = Arc::new(Ready::default());
        let task = tokio::spawn(app::run(
            stages.to_vec(),
            settings.clone(),
            trigger.clone(),
            shutdown,
            Arc::clone(&ready),
        ));
        Self {
            trigger,
            task,
            ready,
            stages: app::stage_count(stages, settings),
        }
    }

    /// Waits until every stage holds partitions.
    pub async fn ready(&self) {
        assert!(
            self.ready
                .wait_for(self.stages, Duration::from_secs(60))
                .await,
            "stages did not join their consumer groups within 60 s"
        );
    }

    /// Drains the stages as SIGTERM would and waits for them to exit.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .context("stages did not drain within 60 s")??
    }

    /// Drops the stages without a drain, as a crash would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Creates the test's topics.
pub async fn create_topics(settings: &Settings) {
    app::create_topics(settings).await.expect("topics created");
}
