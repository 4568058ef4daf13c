//! SIGINT (Ctrl-C) and SIGTERM.

use tokio::signal::unix::{signal, SignalKind};

/// Returns when SIGINT or SIGTERM arrives; never, if they cannot be watched.
pub async fn interrupted() {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
