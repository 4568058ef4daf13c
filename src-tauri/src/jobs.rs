//! Long-running work started from the window: each job has a cancel token the UI can trip.

use std::collections::HashMap;
use std::sync::Mutex;

use labflash_core::CancellationToken;

#[derive(Default)]
pub struct Jobs {
    running: Mutex<HashMap<u32, CancellationToken>>,
}

impl Jobs {
    /// Registers job `id`; the guard forgets it when the work ends.
    pub fn start(&self, id: u32) -> JobGuard<'_> {
        let token = CancellationToken::new();
        self.running
            .lock()
            .expect("jobs lock")
            .insert(id, token.clone());
        JobGuard {
            jobs: self,
            id,
            token,
        }
    }

    /// Trips job `id`'s cancel token; false when no such job runs.
    pub fn cancel(&self, id: u32) -> bool {
        match self.running.lock().expect("jobs lock").get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
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
