//! A terminal progress bar on stderr, fed by the engine's progress sink.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use labflash_core::io::drives::human_size;
use labflash_core::progress::{NoProgress, Progress, ProgressSink, Stage};
use std::sync::Mutex;

/// Draws one bar that follows the current stage; cleared when dropped.
pub struct Bar {
    bar: ProgressBar,
    stage: Mutex<Option<Progress>>,
}

impl ProgressSink for Bar {
    fn report(&self, p: Progress) {
        // Said over whatever the bar shows (a stream's writes wait for the download too); the
        // next report of bytes says what it shows again.
        if let Some(secs) = p.waiting {
            self.bar
                .set_message(format!("waiting for the server ({secs} s)"));
            return;
        }
        let mut stage = self.stage.lock().expect("progress lock");
        // While a stream is written, the archive being read (whose size is known) tells more
        // than the writes (whose total is not): the bar stays with it until it ends. Writes
        // whose total is known (the archive records the image's size) tell more: the bar stays
        // with them.
        if let Some(last) = stage.as_ref() {
            let read = |p: &Progress| {
                matches!(
                    p.stage,
                    Stage::Download | Stage::CheckCache | Stage::Decompress
                )
            };
            let reading = read(last) && last.total.is_some_and(|t| last.done < t);
            if reading && p.stage == Stage::Write && p.total.is_none() {
                return;
            }
            if last.stage == Stage::Write && last.total.is_some() && read(&p) {
                return;
            }
        }
        let changed = stage.as_ref().map(|s| s.stage) != Some(p.stage);
        *stage = Some(p.clone());
        if changed {
            self.bar.reset();
        }
        match p.skipped {
            // Chunks the drive already held count as done without being written.
            Some(held) => self
                .bar
                .set_message(format!("writing ({} held)", human_size(held))),
            None => self.bar.set_message(p.stage.describe()),
        }
        match p.total {
            Some(total) => {
                self.bar.set_style(bytes_style());
                self.bar.set_length(total);
            }
            None => self.bar.set_style(spinner_style()),
        }
        self.bar.set_position(p.done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The sink for this run: a bar when a person watches stderr, else nothing.
pub fn sink(show: bool) -> Arc<dyn ProgressSink> {
    if !show {
        return Arc::new(NoProgress);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    // Until the first report (a sidecar being fetched, a drive being opened): a spinner, not
    // indicatif's default empty bar reading "0/0".
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    bar.set_message("starting");
    bar.enable_steady_tick(Duration::from_millis(200));
    Arc::new(Bar {
        bar,
        stage: Mutex::new(None),
    })
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg:26} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg:24} {bytes} {binary_bytes_per_sec}")
        .expect("valid template")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stage: Stage, done: u64, total: Option<u64>) -> Progress {
        Progress {
            stage,
            done,
            total,
            target: None,
            skipped: None,
            waiting: None,
        }
    }

    fn bar() -> Bar {
        Bar {
            bar: ProgressBar::hidden(),
            stage: Mutex::new(None),
        }
    }

    #[test]
    fn a_silent_server_is_said_until_bytes_come() {
        let bar = bar();
        bar.report(report(Stage::Download, 10, Some(100)));
        bar.report(Progress {
            waiting: Some(3),
            ..report(Stage::Download, 10, Some(100))
        });
        assert_eq!(bar.bar.message(), "waiting for the server (3 s)");
        assert_eq!(bar.bar.position(), 10);
        bar.report(report(Stage::Download, 20, Some(100)));
        assert_eq!(bar.bar.message(), "downloading");
    }

    /// A stream's download and writes report in turns: the bar follows the one with a total.
    #[test]
    fn a_stream_s_bar_follows_what_has_a_total() {
        let bar = bar();
        bar.report(report(Stage::Download, 10, Some(100)));
        bar.report(report(Stage::Write, 5, None));
        assert_eq!(bar.bar.message(), "downloading");
        bar.report(report(Stage::Write, 5, Some(400)));
        bar.report(report(Stage::Download, 20, Some(100)));
        assert_eq!(bar.bar.message(), "writing");
        assert_eq!((bar.bar.position(), bar.bar.length()), (5, Some(400)));
    }
}
