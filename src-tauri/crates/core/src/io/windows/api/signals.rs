//! Ctrl-C, Ctrl-Break and the console window closing.

use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};

/// Returns when one of them arrives; never, if they cannot be watched.
pub async fn interrupted() {
    let (Ok(mut c), Ok(mut brk), Ok(mut close)) = (ctrl_c(), ctrl_break(), ctrl_close()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = c.recv() => {}
        _ = brk.recv() => {}
        _ = close.recv() => {}
    }
}
