//! A stream whose size is only announced (an archive's records): the Write stage's reports carry
//! it as their total, and never a share past 100 % when the image turns out longer; the image
//! is written and proven whatever was announced.

use std::sync::Mutex;
use std::time::Duration;

use super::tests::{drive, image, Memory};
use super::*;
use crate::progress::Progress;

/// Writes `bytes` as a stream of unknown size announced as `announced`; returns the report and
/// the Write stage's (done, total) reports.
fn stream_announced(
    bytes: &[u8],
    announced: Option<u64>,
) -> (TargetReport, Vec<(u64, Option<u64>)>) {
    let expect = Expect {
        name: "image".into(),
        sha256: None,
        check_source: false,
        size: None,
        announced_size: announced,
        tail: None,
    };
    let seen = Mutex::new(Vec::new());
    let progress = |p: Progress| {
        if p.stage == Stage::Write {
            seen.lock().unwrap().push((p.done, p.total));
        }
    };
    // Slower than the reports' throttle: every chunk is reported.
    let memory = Arc::new(Memory::paced(Duration::from_millis(110)));
    let onto = vec![Onto::new(drive(&memory, 32 * MIB, 512, true), None)];
    let options = FlashOptions::default();
    let cancel = CancellationToken::new();
    let outcome = flash_stream(&expect, &mut &bytes[..], onto, &options, &cancel, &progress);
    let report = outcome.targets.into_iter().next().unwrap();
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.verified_sha256, Some(Sha256Digest::of_bytes(bytes)));
    (report, seen.into_inner().unwrap())
}

#[test]
fn the_announced_size_is_the_writes_total() {
    let bytes = image(13 * MIB as usize + 5);
    let size = bytes.len() as u64;
    let (_, seen) = stream_announced(&bytes, Some(size));
    assert!(
        seen.iter().all(|(_, total)| *total == Some(size)),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&(size, Some(size))));
    // Nothing announced (a gzip's records are only a lower bound): no total.
    let (_, unknown) = stream_announced(&bytes, None);
    assert!(
        unknown.iter().all(|(_, total)| total.is_none()),
        "{unknown:?}"
    );
}

#[test]
fn an_announced_size_the_image_outgrows_or_falls_short_of_is_only_progress() {
    let bytes = image(13 * MIB as usize + 5);
    let size = bytes.len() as u64;
    // Announced 6 MiB: the image is still written whole, and no report says more than 100 %.
    let (report, seen) = stream_announced(&bytes, Some(6 * MIB));
    assert_eq!(report.bytes_written, size);
    assert!(
        seen.iter()
            .all(|(done, total)| total.is_none_or(|t| *done <= t)),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(_, total)| total.is_none()), "{seen:?}");
    // Announced more than it holds: the last report says what it was.
    let (_, seen) = stream_announced(&bytes, Some(20 * MIB));
    assert_eq!(seen.last(), Some(&(size, Some(size))));
}
