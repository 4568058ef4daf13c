//! Long-running work started from the window: each job has a cancel token the UI can trip, and a
//! flash job its drives' own cancels, to drop one drive while the others go on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use labflash_core::flash::target_cancel::TargetCancels;
use labflash_core::{CancellationToken, Error};

#[derive(Default)]
pub struct Jobs {
    running: Mutex<HashMap<u32, Running>>,
}

struct Running {
    token: CancellationToken,
    /// A flash's drives, each cancellable alone; empty for other work.
    targets: TargetCancels,
}

impl Jobs {
    /// Registers job `id`; the guard forgets it when the work ends.
    pub fn start(&self, id: u32) -> JobGuard<'_> {
        self.start_flash(id, TargetCancels::default())
    }

    /// Registers flash job `id` with its drives' own cancels (see `cancel_target`).
    pub fn start_flash(&self, id: u32, targets: TargetCancels) -> JobGuard<'_> {
        let token = CancellationToken::new();
        let running = Running {
            token: token.clone(),
            targets,
        };
        self.running.lock().expect("jobs lock").insert(id, running);
        JobGuard {
            jobs: self,
            id,
            token,
        }
    }

    /// Trips job `id`'s cancel token; false when no such job runs.
    pub fn cancel(&self, id: u32) -> bool {
        match self.running.lock().expect("jobs lock").get(&id) {
            Some(running) => {
                running.token.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops the drive `path` of flash job `id` alone; false when no such job runs or it
    /// writes no such drive; an error when that drive cannot be stopped alone.
    pub fn cancel_target(&self, id: u32, path: &Path) -> Result<bool, Error> {
        match self.running.lock().expect("jobs lock").get(&id) {
            Some(running) => running.targets.cancel(path),
            None => Ok(false),
        }
    }
}

pub struct JobGuard<'a> {
    jobs: &'a Jobs,
    id: u32,
    pub token: CancellationToken,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        self.jobs
            .running
            .lock()
            .expect("jobs lock")
            .remove(&self.id);
    }
}
