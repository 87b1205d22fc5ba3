//! The drain signal. One [`Shutdown`] sender per process; every task holds a
//! receiver and selects on [`Shutdown::wait`] next to its work, so SIGINT or
//! SIGTERM stops fetching everywhere while in-flight work finishes.

use tokio::sync::watch;

/// A handle that says when to stop; clone it for every task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side: [`Trigger::fire`] starts the drain.
#[derive(Debug, Clone)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal, not yet fired.
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger { tx }, Shutdown { rx })
    }

    /// Whether the drain has started.
    pub fn is_fired(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once the drain has started. Cancel-safe, so it can sit in a
    /// `select!` beside the work.
    pub async fn wait(&mut self) {
        // An error means every trigger was dropped: nobody can ask for a
        // drain any more, which we treat as one.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

impl Trigger {
    /// Starts the drain.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    /// Fires on the first SIGINT or SIGTERM.
    pub async fn fire_on_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT drains");
                        let _ = ctrl_c.await;
                        self.fire();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received: draining");
        self.fire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_completes_after_fire() {
        let (trigger, mut shutdown) = Shutdown::new();
        assert!(!shutdown.is_fired());
        trigger.fire();
        shutdown.wait().await;
        assert!(shutdown.is_fired());
        // Waiting again after firing returns at once.
        shutdown.wait().await;
    }
}
