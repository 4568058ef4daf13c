//! Dropping one drive of a flash while the others go on. Every approved target carries a
//! [`TargetCancel`]; a front end takes them all from the plan ([`TargetCancels`], by path) before
//! it runs the plan, and trips one to stop that drive alone. The writer gives each target a token
//! of its own, a child of the whole run's (see `writer::flash_stream`): tripping either stops it,
//! its first MiB left wiped, and the shared reader no longer waits for it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::CancellationToken;

/// One target's own cancel, shared by every copy of its approval.
#[derive(Clone, Debug, Default)]
pub struct TargetCancel(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    requested: bool,
    /// Written by the privileged helper, which takes one stream for all its drives: it cannot
    /// drop one of them.
    through_helper: bool,
    /// The token of the run writing this target, once it started.
    running: Option<CancellationToken>,
    /// Groups of targets that stop something once all of them are cancelled.
    groups: Vec<Arc<Group>>,
}

/// Targets not cancelled yet, and what stops when none is left.
#[derive(Debug)]
struct Group {
    remaining: AtomicUsize,
    stop: CancellationToken,
}

impl Group {
    fn one_cancelled(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.stop.cancel();
        }
    }
}

impl TargetCancel {
    /// Stops this target (now, or as soon as its run starts). Refused for a target the
    /// privileged helper writes.
    pub fn cancel(&self) -> Result<()> {
        let mut state = self.0.lock().expect("target cancel lock");
        if state.through_helper {
            return Err(helper_refusal());
        }
        if !state.requested {
            state.requested = true;
            state.groups.iter().for_each(|g| g.one_cancelled());
        }
        if let Some(token) = &state.running {
            token.cancel();
        }
        Ok(())
    }

    /// Trips `stop` once every one of `targets` is cancelled: a stream's source stops then,
    /// rather than when its reader next finds no target to hand a chunk to.
    pub(crate) fn stop_when_all_cancelled<'a>(
        targets: impl IntoIterator<Item = &'a TargetCancel>,
        stop: &CancellationToken,
    ) {
        let targets: Vec<&TargetCancel> = targets.into_iter().collect();
        let group = Arc::new(Group {
            remaining: AtomicUsize::new(targets.len()),
            stop: stop.clone(),
        });
        for target in targets {
            let mut state = target.0.lock().expect("target cancel lock");
            match state.requested {
                true => group.one_cancelled(),
                false => state.groups.push(group.clone()),
            }
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.lock().expect("target cancel lock").requested
    }

    /// The token this target's writer stops on: a child of the run's `cancel`, already tripped
    /// when this target was cancelled before.
    pub(crate) fn token(&self, cancel: &CancellationToken) -> CancellationToken {
        let token = cancel.child_token();
        let mut state = self.0.lock().expect("target cancel lock");
        if state.requested {
            token.cancel();
        }
        state.running = Some(token.clone());
        token
    }

    /// This target goes to the privileged helper: from now on cancelling it alone is refused,
    /// and so is the helper's run when it was cancelled already.
    pub(crate) fn through_helper(&self) -> Result<()> {
        let mut state = self.0.lock().expect("target cancel lock");
        if state.requested {
            return Err(helper_refusal());
        }
        state.through_helper = true;
        Ok(())
    }
}

fn helper_refusal() -> Error {
    Error::BadInput(
        "the privileged helper writes every drive of this flash from one stream: one drive cannot be cancelled alone (cancel the whole flash)".into(),
    )
}

/// Every target's own cancel in a plan (a two-sticks plan's config stick and a lab's nodes
/// included), by the target's path as approved (what progress reports and results name).
#[derive(Clone, Debug, Default)]
pub struct TargetCancels(Vec<(PathBuf, TargetCancel)>);

impl TargetCancels {
    pub(crate) fn new(targets: impl IntoIterator<Item = (PathBuf, TargetCancel)>) -> Self {
        Self(targets.into_iter().collect())
    }

    /// Cancels the target named `path` (as approved, or another name of the same file or
    /// drive); `Ok(false)` when the plan has no such target.
    pub fn cancel(&self, path: &Path) -> Result<bool> {
        let real = std::fs::canonicalize(path).ok();
        let found = self
            .0
            .iter()
            .find(|(p, _)| p == path || real.as_deref() == Some(p.as_path()));
        match found {
            Some((_, cancel)) => cancel.cancel().map(|()| true),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_cancelled_before_its_run_stops_as_the_run_starts_and_the_run_stops_it_too() {
        let early = TargetCancel::default();
        early.cancel().unwrap();
        let run = CancellationToken::new();
        assert!(early.token(&run).is_cancelled());

        let later = TargetCancel::default();
        let token = later.token(&run);
        assert!(!token.is_cancelled());
        run.cancel();
        assert!(token.is_cancelled(), "the whole run's cancel stops it");
        assert!(!later.is_cancelled(), "but it was not cancelled alone");
    }

    #[test]
    fn a_group_stops_once_its_last_target_is_cancelled() {
        let (a, b) = (TargetCancel::default(), TargetCancel::default());
        a.cancel().unwrap();
        let stop = CancellationToken::new();
        TargetCancel::stop_when_all_cancelled([&a, &b], &stop);
        a.cancel().unwrap();
        assert!(!stop.is_cancelled(), "one target is left");
        b.cancel().unwrap();
        assert!(stop.is_cancelled());
    }

    #[test]
    fn a_target_the_helper_writes_cannot_be_cancelled_alone() {
        let cancel = TargetCancel::default();
        cancel.through_helper().unwrap();
        let err = cancel.cancel().unwrap_err();
        assert!(err.to_string().contains("privileged helper"), "{err}");
        let cancelled = TargetCancel::default();
        cancelled.cancel().unwrap();
        assert!(cancelled.through_helper().is_err());
    }

    #[test]
    fn targets_are_found_by_their_path() {
        let (a, b) = (TargetCancel::default(), TargetCancel::default());
        let all = TargetCancels::new([("/dev/a".into(), a.clone()), ("/dev/b".into(), b.clone())]);
        assert!(all.cancel(Path::new("/dev/b")).unwrap());
        assert!(!all.cancel(Path::new("/dev/c")).unwrap());
        assert!(b.is_cancelled() && !a.is_cancelled());
    }
}
