//! Reading several targets back at once, one SHA-256 for all that hold the same bytes.
//!
//! Each target's thread reads its own device (O_DIRECT, page cache dropped), chunk by chunk. When
//! every target still reading has its chunk, a hashing thread compares each target's bytes with
//! those of the first target of its group and hashes only that first target's. Targets that hold
//! the same bytes so share one hash: N sticks cost N reads and one SHA-256 instead of N. A target
//! whose bytes differ leaves its group for a new one that starts from a copy of the hash so far,
//! so every target still gets the digest of exactly what it holds. The targets read their next
//! chunk while the hashing thread works on the last one. A target cancelled alone counts as gone
//! from then on, even while its thread is stuck in a write: the others never wait for it.

use crate::io::medium::Medium;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::fetch::digest::Sha256Digest;
use crate::io::device::{AlignedBuf, ALIGN};
use crate::progress::Reporter;
use crate::verify::{read_chunk, READ_CHUNK};
use crate::CancellationToken;

/// The read-back shared by every target of one flash.
pub(crate) struct ReadBack {
    state: Mutex<State>,
    turn: Condvar,
    /// Each target's own cancel (see `target_cancel`).
    cancels: Vec<CancellationToken>,
}

struct State {
    /// Chunks compared and hashed so far.
    round: u64,
    /// The chunk being collected: the earlier ones are hashed or being hashed.
    next: u64,
    /// Targets that have not left (finished, failed or never verified).
    active: Vec<bool>,
    /// This round's chunk from each target that has read it.
    submitted: Vec<Option<(AlignedBuf, usize)>>,
    /// Buffers given back after their round, per target.
    returned: Vec<Vec<AlignedBuf>>,
    /// Each target's group, and each group's hash so far (out with the hashing thread while it
    /// hashes a round).
    group_of: Vec<usize>,
    groups: Vec<Sha256>,
    /// The digest of the bytes each group's reads start with (targets that start alike share a
    /// group from the start), by group.
    prefixes: Vec<(Sha256Digest, usize)>,
}

impl ReadBack {
    pub(crate) fn new(cancels: Vec<CancellationToken>) -> Self {
        let targets = cancels.len();
        Self {
            cancels,
            state: Mutex::new(State {
                round: 0,
                next: 0,
                active: vec![true; targets],
                submitted: (0..targets).map(|_| None).collect(),
                returned: (0..targets).map(|_| Vec::new()).collect(),
                group_of: vec![0; targets],
                groups: Vec::new(),
                prefixes: Vec::new(),
            }),
            turn: Condvar::new(),
        }
    }

    /// Target `me` takes no further part (done, failed, or not verifying); the others go on.
    pub(crate) fn leave(&self, me: usize) {
        let mut state = self.state.lock().expect("read-back lock");
        state.active[me] = false;
        self.turn.notify_all();
    }

    /// The hashing thread: hashes each chunk once every target still reading has handed it in,
    /// until every target has left.
    pub(crate) fn hash_rounds(&self) {
        loop {
            let (chunks, mut groups, mut group_of) = {
                let mut state = self.state.lock().expect("read-back lock");
                loop {
                    if self.complete(&state) {
                        break;
                    }
                    if !(0..state.active.len()).any(|t| self.reading(&state, t)) {
                        return;
                    }
                    // A cancel does not wake the condition: looked at again each tick.
                    state = self
                        .turn
                        .wait_timeout(state, Duration::from_millis(100))
                        .expect("read-back lock")
                        .0;
                }
                let chunks: Vec<(usize, AlignedBuf, usize)> = (0..state.submitted.len())
                    .filter_map(|t| state.submitted[t].take().map(|(buf, len)| (t, buf, len)))
                    .collect();
                state.next += 1;
                self.turn.notify_all();
                (
                    chunks,
                    std::mem::take(&mut state.groups),
                    std::mem::take(&mut state.group_of),
                )
            };
            hash_round(&chunks, &mut groups, &mut group_of);
            let mut state = self.state.lock().expect("read-back lock");
            (state.groups, state.group_of) = (groups, group_of);
            for (t, buf, _) in chunks {
                state.returned[t].push(buf);
            }
            state.round += 1;
            self.turn.notify_all();
        }
    }

    /// Reads bytes `[start, start + len)` of target `me` from `file` and returns the SHA-256 of
    /// `prefix` (the image's first MiB, held in memory) followed by them. Blocking; every active
    /// target must call this from the same `start`, or leave; prefixes and lengths may differ
    /// (a lab's sticks, each with its own GPT head and config).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hash_target(
        &self,
        me: usize,
        prefix: &[u8],
        file: &dyn Medium,
        path: &Path,
        start: u64,
        len: u64,
        cancel: &CancellationToken,
        reporter: &mut Reporter<'_>,
    ) -> Result<Sha256Digest> {
        debug_assert_eq!(start % ALIGN as u64, 0);
        {
            // Before this target hands in a chunk no round can be complete (unless it was
            // cancelled: rounds go on without it), so the groups are here, not out with the
            // hashing thread.
            let key = Sha256Digest::of_bytes(prefix);
            let mut state = self.state.lock().expect("read-back lock");
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let group = match state.prefixes.iter().find(|(k, _)| *k == key) {
                Some((_, group)) => *group,
                None => {
                    state.groups.push(Sha256::new_with_prefix(prefix));
                    let group = state.groups.len() - 1;
                    state.prefixes.push((key, group));
                    group
                }
            };
            state.group_of[me] = group;
        }
        let mut spare = vec![
            AlignedBuf::zeroed(READ_CHUNK),
            AlignedBuf::zeroed(READ_CHUNK),
        ];
        let mut done = 0u64;
        let mut round = 0u64;
        while done < len {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let mut buf = match spare.pop() {
                Some(buf) => buf,
                None => self.take_returned(me, cancel)?,
            };
            let want = (len - done).min(READ_CHUNK as u64);
            read_chunk(file, path, &mut buf, start + done, want)?;
            self.submit(me, round, buf, want as usize, cancel)?;
            round += 1;
            done += want;
            reporter.update(done);
        }
        // Wait for the last chunk to be hashed, then finish this target's copy of its hash.
        let state = self.wait(|s| s.round >= round, cancel)?;
        Ok(Sha256Digest::of_hasher(
            state.groups[state.group_of[me]].clone(),
        ))
    }

    /// Hands in target `me`'s chunk for `round` once the previous round is taken for hashing.
    fn submit(
        &self,
        me: usize,
        round: u64,
        buf: AlignedBuf,
        len: usize,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let mut state = self.wait(|s| s.next == round, cancel)?;
        state.submitted[me] = Some((buf, len));
        self.turn.notify_all();
        Ok(())
    }

    fn take_returned(&self, me: usize, cancel: &CancellationToken) -> Result<AlignedBuf> {
        let mut state = self.wait(|s| !s.returned[me].is_empty(), cancel)?;
        Ok(state.returned[me].pop().expect("waited for it"))
    }

    /// Waits for `ready`, giving up when cancelled (also when ready: a cancelled target's
    /// group may be out with the hashing thread).
    fn wait(
        &self,
        ready: impl Fn(&State) -> bool,
        cancel: &CancellationToken,
    ) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut state = self.state.lock().expect("read-back lock");
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if ready(&state) {
                break;
            }
            state = self
                .turn
                .wait_timeout(state, Duration::from_millis(100))
                .expect("read-back lock")
                .0;
        }
        Ok(state)
    }
}

impl ReadBack {
    /// Target `t` still takes part: it has not left and is not cancelled.
    fn reading(&self, state: &State, t: usize) -> bool {
        state.active[t] && !self.cancels[t].is_cancelled()
    }

    /// Every target still reading has handed in this round's chunk (and someone has).
    fn complete(&self, state: &State) -> bool {
        let any = state.submitted.iter().any(Option::is_some);
        let all = (0..state.active.len())
            .all(|t| !self.reading(state, t) || state.submitted[t].is_some());
        any && all
    }
}

/// Hashes each group's bytes for one round and splits off the targets whose bytes differ from
/// their group's. Comparing is cheaper than hashing but not free: a second thread compares while
/// this one hashes, so a second and third stick do not slow the read-back down.
fn hash_round(
    chunks: &[(usize, AlignedBuf, usize)],
    groups: &mut Vec<Sha256>,
    group_of: &mut [usize],
) {
    let bytes = |i: usize| &chunks[i].1[..chunks[i].2];
    // Each group's first chunk this round: its bytes are the group's.
    let mut first_of: Vec<Option<usize>> = vec![None; groups.len()];
    for (i, (t, _, _)) in chunks.iter().enumerate() {
        first_of[group_of[*t]].get_or_insert(i);
    }
    let firsts = first_of.iter().flatten().count();
    // A target that differs starts a new group from its group's hash before this round.
    let before = if chunks.len() > firsts {
        groups.clone()
    } else {
        Vec::new()
    };
    let differ: Vec<usize> = std::thread::scope(|scope| {
        let compare = (chunks.len() > firsts).then(|| {
            scope.spawn(|| {
                (0..chunks.len())
                    .filter(|&i| {
                        let first = first_of[group_of[chunks[i].0]].expect("group has a first");
                        first != i && bytes(first) != bytes(i)
                    })
                    .collect()
            })
        });
        // Each group on a thread of its own (a lab's sticks each start with their own GPT head:
        // a group each), the last on this one.
        let mut hashing: Vec<(&mut Sha256, &[u8])> = groups
            .iter_mut()
            .zip(&first_of)
            .filter_map(|(group, first)| Some((group, bytes((*first)?))))
            .collect();
        let here = hashing.pop();
        for (group, chunk) in hashing {
            scope.spawn(move || group.update(chunk));
        }
        if let Some((group, chunk)) = here {
            group.update(chunk);
        }
        compare.map_or_else(Vec::new, |c| c.join().expect("compare thread"))
    });
    // Targets that differ from their group the same way share their new group.
    let mut split: Vec<(usize, usize, usize)> = Vec::new(); // (old group, new group, first chunk)
    for i in differ {
        let t = chunks[i].0;
        let old = group_of[t];
        group_of[t] = match split
            .iter()
            .find(|(o, _, f)| *o == old && bytes(*f) == bytes(i))
        {
            Some((_, g, _)) => *g,
            None => {
                let mut hasher = before[old].clone();
                hasher.update(bytes(i));
                groups.push(hasher);
                split.push((old, groups.len() - 1, i));
                groups.len() - 1
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{NoProgress, Stage};

    const LEN: usize = 3 * READ_CHUNK + 1000;

    fn sha(parts: &[&[u8]]) -> Sha256Digest {
        let mut hasher = Sha256::new();
        for p in parts {
            hasher.update(p);
        }
        Sha256Digest::of_hasher(hasher)
    }

    /// Reads every file back together; `None` where the target left instead.
    fn read_back(files: &[Option<&Path>], prefix: &[u8]) -> Vec<Option<Sha256Digest>> {
        let shared = ReadBack::new(vec![CancellationToken::new(); files.len()]);
        let cancel = CancellationToken::new();
        std::thread::scope(|scope| {
            scope.spawn(|| shared.hash_rounds());
            let handles: Vec<_> = files
                .iter()
                .enumerate()
                .map(|(me, path)| {
                    let (shared, cancel) = (&shared, &cancel);
                    scope.spawn(move || {
                        let digest = path.map(|path| {
                            let file = std::fs::File::open(path).unwrap();
                            let mut reporter = Reporter::new(&NoProgress, Stage::ReadBack, None);
                            shared
                                .hash_target(
                                    me,
                                    prefix,
                                    &file,
                                    path,
                                    0,
                                    LEN as u64,
                                    cancel,
                                    &mut reporter,
                                )
                                .unwrap()
                        });
                        shared.leave(me);
                        digest
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn each_target_gets_the_digest_of_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
        let mut late = image.clone();
        late[2 * READ_CHUNK + 5] ^= 1;
        let mut early = image.clone();
        early[10] ^= 1;
        // "late" and "late2" differ from the others the same way: they split off together.
        let paths: Vec<_> = ["a", "b", "late", "c", "early", "late2"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        for (path, bytes) in paths
            .iter()
            .zip([&image, &image, &late, &image, &early, &late])
        {
            std::fs::write(path, bytes).unwrap();
        }
        let files: Vec<Option<&Path>> = paths.iter().map(|p| Some(p.as_path())).collect();
        let got = read_back(&files, b"head");
        let good = sha(&[b"head", &image]);
        assert_eq!(got[0], Some(good));
        assert_eq!(got[1], Some(good));
        assert_eq!(got[2], Some(sha(&[b"head", &late])));
        assert_eq!(got[3], Some(good));
        assert_eq!(got[4], Some(sha(&[b"head", &early])));
        assert_eq!(got[5], got[2]);
    }

    /// A target cancelled alone is not waited for; when its thread reaches the read-back late
    /// (its rounds go on without it, the groups out with the hashing thread), it is told so.
    #[test]
    fn a_target_cancelled_alone_is_not_waited_for_and_is_told_so() {
        let dir = tempfile::tempdir().unwrap();
        let image = vec![3u8; LEN];
        let path = dir.path().join("a");
        std::fs::write(&path, &image).unwrap();
        let cancels = vec![CancellationToken::new(), CancellationToken::new()];
        cancels[1].cancel();
        let shared = ReadBack::new(cancels.clone());
        let reading = std::sync::atomic::AtomicBool::new(true);
        let (digest, late) = std::thread::scope(|scope| {
            scope.spawn(|| shared.hash_rounds());
            let late = scope.spawn(|| {
                let mut tries = 0;
                while reading.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut reporter = Reporter::new(&NoProgress, Stage::ReadBack, None);
                    let file = std::fs::File::open(&path).unwrap();
                    let got = shared.hash_target(
                        1,
                        b"",
                        &file,
                        &path,
                        0,
                        LEN as u64,
                        &cancels[1],
                        &mut reporter,
                    );
                    assert!(matches!(got, Err(Error::Cancelled)), "{got:?}");
                    tries += 1;
                }
                shared.leave(1);
                tries
            });
            let file = std::fs::File::open(&path).unwrap();
            let mut reporter = Reporter::new(&NoProgress, Stage::ReadBack, None);
            let digest = shared
                .hash_target(
                    0,
                    b"",
                    &file,
                    &path,
                    0,
                    LEN as u64,
                    &cancels[0],
                    &mut reporter,
                )
                .unwrap();
            reading.store(false, std::sync::atomic::Ordering::SeqCst);
            shared.leave(0);
            (digest, late.join().unwrap())
        });
        assert_eq!(digest, sha(&[&image]));
        assert!(late > 0);
    }

    #[test]
    fn a_target_that_leaves_does_not_hold_up_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let image = vec![9u8; LEN];
        let path = dir.path().join("a");
        std::fs::write(&path, &image).unwrap();
        let got = read_back(&[None, Some(&path), None], b"");
        assert_eq!(got, vec![None, Some(sha(&[&image])), None]);
    }
}
