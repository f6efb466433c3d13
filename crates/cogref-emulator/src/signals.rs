//! The stop signals of the binaries: SIGINT and SIGTERM (Ctrl-C elsewhere), received as many
//! times as they come, so that a second one can cut a shutdown short.

/// SIGINT and SIGTERM (Ctrl-C where there are no Unix signals), registered when this is made.
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(not(unix))]
    ctrl_c: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl std::fmt::Debug for ShutdownSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShutdownSignals")
    }
}

impl ShutdownSignals {
    /// Registers for the signals **now**: call it before printing anything a script waits
    /// for, since a signal that comes between the print and a later registration would be lost
    /// (and in a shell script, where background jobs start with SIGINT ignored, `kill -INT`
    /// then does nothing).
    pub fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            // Elsewhere registration happens on the first poll: poll from a task at once.
            let (tx, ctrl_c) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
            Ok(Self { ctrl_c })
        }
    }

    /// Completes when the next signal arrives (one that came since the last call counts).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if self.ctrl_c.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
    }
}
