//! The accept loop, and a shutdown with a deadline.
//!
//! axum's `serve` spawns every connection as a detached task and, on a graceful shutdown,
//! waits for all of them without limit: a client that has sent half a request, or a response
//! held back by an injected delay, would keep the emulator from ever stopping. Here every
//! connection lives in a [`JoinSet`] the server owns: on stop, the listener closes and each
//! connection is asked to finish its request in flight; whatever is still open at the
//! deadline is dropped, and so is everything if the server task itself is aborted.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// How long a shutdown lets the requests in flight finish before it drops their connections.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop` fires (or its sender is dropped), then shuts down
/// within `deadline`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    mut stop: oneshot::Receiver<()>,
    deadline: Duration,
) {
    let mut connections = JoinSet::new();
    let (draining, drain) = watch::channel(());
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = TowerToHyperService::new(app.clone());
                    let mut drain = drain.clone();
                    connections.spawn(async move {
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(connection);
                        tokio::select! {
                            _ = connection.as_mut() => return,
                            _ = drain.changed() => connection.as_mut().graceful_shutdown(),
                        }
                        let _ = connection.await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = draining.send(());
    let drained = tokio::time::timeout(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "emulator: shutdown deadline passed, dropping the open connections"
        );
        connections.shutdown().await;
    }
}
