//! One target cancelled alone (its own [`TargetCancel`]) while the others are written and
//! proven, in memory.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::tests::{drive, head_wiped, image, Memory};
use super::*;
use crate::progress::Progress;

const SIZE: usize = 40 * MIB as usize;

fn named(memory: &Arc<Memory>, name: &str) -> Target {
    Target {
        path: PathBuf::from(name),
        ..drive(memory, SIZE as u64 + 8 * MIB, 512, true)
    }
}

fn flash_all(
    bytes: &[u8],
    targets: Vec<(Target, TargetCancel)>,
    progress: &dyn ProgressSink,
) -> Outcome {
    let expect = Expect {
        name: "image".into(),
        sha256: None,
        check_source: false,
        size: Some(bytes.len() as u64),
        announced_size: None,
        tail: None,
    };
    let onto = targets
        .into_iter()
        .map(|(target, cancel)| Onto {
            cancel,
            ..Onto::new(target, None)
        })
        .collect();
    let options = FlashOptions::default();
    let cancel = CancellationToken::new();
    flash_stream(&expect, &mut &bytes[..], onto, &options, &cancel, progress)
}

fn assert_proven(report: &TargetReport, memory: &Memory, bytes: &[u8]) {
    assert!(report.ok, "{}: {:?}", report.path, report.error);
    assert_eq!(report.verified_sha256, Some(Sha256Digest::of_bytes(bytes)));
    assert_eq!(&memory.bytes.lock().unwrap()[..bytes.len()], bytes);
}

/// Cancelled after its first chunk: it is written no more, its first MiB stays wiped, and the
/// two others are written whole and read back.
#[test]
fn a_target_cancelled_mid_write_stops_and_the_others_are_proven() {
    let bytes = image(SIZE);
    let memories: Vec<Arc<Memory>> = (0..3).map(|_| Arc::new(Memory::default())).collect();
    let cancels: Vec<TargetCancel> = (0..3).map(|_| TargetCancel::default()).collect();
    let at_cancel = Mutex::new(None);
    // Runs on b's own writer thread, right after one of its writes.
    let progress = |p: Progress| {
        if p.stage == Stage::Write && p.target.as_deref() == Some("b") && p.done > 0 {
            let mut at = at_cancel.lock().unwrap();
            if at.is_none() {
                cancels[1].cancel().unwrap();
                *at = Some((memories[1].writes(), p.done));
            }
        }
    };
    let targets = ["a", "b", "c"]
        .iter()
        .zip(&memories)
        .zip(&cancels)
        .map(|((name, memory), cancel)| (named(memory, name), cancel.clone()))
        .collect();
    let outcome = flash_all(&bytes, targets, &progress);
    let (writes, done) = at_cancel.into_inner().unwrap().expect("b was cancelled");
    assert!(outcome.source.is_ok(), "{:?}", outcome.source.err());
    let b = &outcome.targets[1];
    assert_eq!(b.error_kind, Some(ErrorKind::Cancelled), "{b:?}");
    assert!(!b.ok && b.verified_sha256.is_none());
    assert!(
        head_wiped(&memories[1]),
        "the cancelled stick looks bootable"
    );
    assert_eq!(
        memories[1].writes(),
        writes,
        "b was written after its cancel"
    );
    assert!(done < SIZE as u64 && b.bytes_written < SIZE as u64);
    assert_proven(&outcome.targets[0], &memories[0], &bytes);
    assert_proven(&outcome.targets[2], &memories[2], &bytes);
}

/// A stick whose write hangs is cancelled: the reader stops waiting for room in its queue, and
/// the others finish while that write still hangs.
#[test]
fn a_cancelled_target_whose_write_hangs_does_not_hold_up_the_others() {
    let bytes = image(SIZE);
    let memories: Vec<Arc<Memory>> = vec![
        Arc::new(Memory::default()),
        // Its third chunk's write hangs: its queue fills behind it.
        Arc::new(Memory::hanging_at(9 * MIB)),
        Arc::new(Memory::default()),
    ];
    let cancels: Vec<TargetCancel> = (0..3).map(|_| TargetCancel::default()).collect();
    let finished = Mutex::new(HashSet::new());
    let progress = |p: Progress| {
        if p.stage == Stage::Write && p.done == SIZE as u64 {
            finished.lock().unwrap().extend(p.target);
        }
    };
    let targets = ["a", "b", "c"]
        .iter()
        .zip(&memories)
        .zip(&cancels)
        .map(|((name, memory), cancel)| (named(memory, name), cancel.clone()))
        .collect();
    let (outcome, others_done) = std::thread::scope(|scope| {
        let flash = scope.spawn(|| flash_all(&bytes, targets, &progress));
        let waited = |what: &dyn Fn() -> bool| {
            let start = Instant::now();
            while !what() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            what()
        };
        assert!(waited(&|| memories[1].hung.load(Ordering::SeqCst)));
        cancels[1].cancel().unwrap();
        let others_done = waited(&|| finished.lock().unwrap().len() == 2);
        memories[1].release();
        (flash.join().unwrap(), others_done)
    });
    assert!(
        others_done,
        "the others waited for the hung stick: {:?}",
        finished.into_inner().unwrap()
    );
    assert_eq!(outcome.targets[1].error_kind, Some(ErrorKind::Cancelled));
    assert!(head_wiped(&memories[1]));
    assert_proven(&outcome.targets[0], &memories[0], &bytes);
    assert_proven(&outcome.targets[2], &memories[2], &bytes);
}

/// Targets cancelled before the run starts get their first MiB wiped and nothing more; when
/// every target is, the flash is cancelled.
#[test]
fn when_every_target_is_cancelled_the_flash_is() {
    let bytes = image(SIZE);
    let memories: Vec<Arc<Memory>> = (0..2).map(|_| Arc::new(Memory::default())).collect();
    let targets = memories
        .iter()
        .enumerate()
        .map(|(i, memory)| {
            let cancel = TargetCancel::default();
            cancel.cancel().unwrap();
            (named(memory, &format!("t{i}")), cancel)
        })
        .collect();
    let outcome = flash_all(&bytes, targets, &crate::progress::NoProgress);
    for (report, memory) in outcome.targets.iter().zip(&memories) {
        assert_eq!(report.error_kind, Some(ErrorKind::Cancelled));
        assert_eq!(report.bytes_written, 0);
        assert!(head_wiped(memory));
        assert_eq!(
            memory.writes(),
            2,
            "more than the wipes of its start and end"
        );
    }
    let Err(err) = outcome.sent() else {
        panic!("no target was written")
    };
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
}
