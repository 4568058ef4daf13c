//! Sticks with bytes of their own over one shared image (a lab's nodes, each with its own GPT
//! head and cidata partition), written from one read of it, in memory.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use super::tests::{drive, head_wiped, image, Memory};
use super::*;
use crate::flash::one_stick;
use crate::progress::NoProgress;

/// An overlay given as the whole stream its target must end up holding: its first `head`
/// bytes and `blank` are laid over the image, and from `image_end` on the bytes are its own.
struct Own {
    stream: Vec<u8>,
    image_end: u64,
    head: u64,
    blank: Range<u64>,
    tail: Option<Tail>,
    ends: Ends,
}

/// How the reader of an overlay's own bytes ends.
#[derive(Clone, Copy, PartialEq)]
enum Ends {
    Whole,
    /// They changed after planning: the reader fails as a changed config image's does.
    Changed,
    /// A reader that breaks the contract: 100 bytes short, or 100 bytes more.
    Short,
    Long,
}

impl Overlay for Own {
    fn size(&self) -> u64 {
        self.stream.len() as u64
    }

    fn image_end(&self) -> u64 {
        self.image_end
    }

    fn patches(&self, offset: u64, len: usize) -> bool {
        let end = offset + len as u64;
        offset < self.head || (offset < self.blank.end && self.blank.start < end)
    }

    fn patch(&self, offset: u64, bytes: &mut [u8]) {
        for (i, b) in bytes.iter_mut().enumerate() {
            let at = offset + i as u64;
            if at < self.head || self.blank.contains(&at) {
                *b = self.stream[at as usize];
            }
        }
    }

    fn own_bytes(&self, from: u64) -> Result<Box<dyn Read + Send + '_>> {
        let own = &self.stream[from as usize..];
        match self.ends {
            Ends::Whole => return Ok(Box::new(own)),
            Ends::Short => return Ok(Box::new(&own[..own.len() - 100])),
            Ends::Long => return Ok(Box::new(own.chain(&[7u8; 100][..]))),
            Ends::Changed => {}
        }
        let changed = std::io::Error::other(Error::DigestMismatch {
            what: "config image (it changed after the flash was planned)",
            expected: "a".into(),
            actual: "b".into(),
        });
        Ok(Box::new(own.chain(Failing(Some(changed)))))
    }

    fn tail(&self) -> Option<Tail> {
        self.tail.clone()
    }
}

struct Failing(Option<std::io::Error>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| std::io::Error::other("again")))
    }
}

/// The stream of a stick whose own bytes (`seed`) start at `image_end`: a head of its own, the
/// image's bytes in `blank` zeroed, zeros to the next 4 KiB (as a cidata partition starts on a
/// MiB), then `own_len` bytes of its own.
fn own(image: &[u8], image_end: u64, blank: Range<u64>, own_len: usize, seed: u8) -> Own {
    let head = 17 * 1024;
    let mut stream = image[..image_end as usize].to_vec();
    for (i, b) in stream[..head].iter_mut().enumerate() {
        *b = seed ^ (i % 253) as u8;
    }
    stream[blank.start as usize..blank.end as usize].fill(0);
    stream.resize(device::round_up(image_end, ALIGN as u64) as usize, 0);
    stream.extend((0..own_len).map(|i| (i * 13 + seed as usize) as u8));
    Own {
        stream,
        image_end,
        head: head as u64,
        blank,
        tail: None,
        ends: Ends::Whole,
    }
}

fn sha(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest::of_bytes(bytes)
}

fn flash_onto(
    bytes: &[u8],
    expected: Sha256Digest,
    targets: Vec<(Target, Option<&dyn Overlay>)>,
) -> (Result<Arc<Sent>>, Vec<TargetReport>) {
    let expect = Expect {
        name: "image".into(),
        sha256: Some(expected),
        check_source: false,
        size: Some(bytes.len() as u64),
        announced_size: None,
        tail: None,
    };
    let cancel = CancellationToken::new();
    let options = FlashOptions::default();
    let outcome = flash_stream(
        &expect,
        &mut &bytes[..],
        targets.into_iter().map(|(t, o)| Onto::new(t, o)).collect(),
        &options,
        &cancel,
        &NoProgress,
    );
    (outcome.source, outcome.targets)
}

/// Image ends around the boundaries the overlay path has: an image that ends off a 4 KiB
/// boundary, own bytes that start inside the image (the cidata partition in its free space),
/// and inside the held first MiB.
#[test]
fn sticks_with_their_own_bytes_each_get_theirs_from_one_read() {
    let cases = [
        (9 * MIB as usize + 7, 9 * MIB + 7, 3 * MIB as usize + 5),
        (9 * MIB as usize, 6 * MIB, 2 * MIB as usize),
        (100 * 1024, 100 * 1024, 3 * MIB as usize),
    ];
    for (len, image_end, own_len) in cases {
        let bytes = image(len);
        let blank = image_end - 8192..image_end - 4096;
        let mut a = own(&bytes, image_end, blank.clone(), own_len, 0xA5);
        a.tail = Some(Tail {
            offset: 30 * MIB,
            bytes: vec![0x42; 1024],
        });
        let b = own(&bytes, image_end, blank.clone(), own_len, 0x5A);
        let case = format!("a {len}-byte image, own bytes from {image_end}");
        let memories: Vec<Arc<Memory>> = (0..4).map(|_| Arc::new(Memory::default())).collect();
        let targets: Vec<(Target, Option<&dyn Overlay>)> = vec![
            (drive(&memories[0], 32 * MIB, 512, true), Some(&a)),
            (drive(&memories[1], 32 * MIB, 512, true), None),
            (drive(&memories[2], 32 * MIB, 4096, true), Some(&b)),
            (drive(&memories[3], 32 * MIB, 512, false), Some(&a)),
        ];
        let (source, reports) = flash_onto(&bytes, sha(&bytes), targets);
        assert!(source.is_ok(), "{case}: {:?}", source.err());
        for (i, (report, stream)) in reports
            .iter()
            .zip([Some(&a), None, Some(&b), Some(&a)])
            .enumerate()
        {
            assert!(report.ok, "{case}, target {i}: {:?}", report.error);
            let held = memories[i].bytes.lock().unwrap();
            let want = stream.map_or(&bytes[..], |s| &s.stream[..]);
            assert!(
                held[..want.len()] == *want,
                "{case}, target {i} holds other bytes"
            );
            assert_eq!(
                report.verified_sha256,
                Some(sha(want)),
                "{case}, target {i}"
            );
            assert_eq!(
                report.given_sha256,
                stream.map(|_| sha(want)),
                "{case}, {i}"
            );
        }
        let held = memories[0].bytes.lock().unwrap();
        assert_eq!(
            &held[30 * MIB as usize..][..1024],
            &[0x42; 1024],
            "{case}: tail"
        );
    }
}

#[test]
fn a_config_that_changed_fails_its_stick_only_with_its_first_mib_wiped() {
    let bytes = image(5 * MIB as usize);
    let good = own(&bytes, 5 * MIB, 0..0, MIB as usize, 1);
    let mut changed = own(&bytes, 5 * MIB, 0..0, MIB as usize, 2);
    changed.ends = Ends::Changed;
    let memories: Vec<Arc<Memory>> = (0..2).map(|_| Arc::new(Memory::default())).collect();
    let targets: Vec<(Target, Option<&dyn Overlay>)> = vec![
        (drive(&memories[0], 16 * MIB, 512, true), Some(&good)),
        (drive(&memories[1], 16 * MIB, 512, true), Some(&changed)),
    ];
    let (_, reports) = flash_onto(&bytes, sha(&bytes), targets);
    assert!(reports[0].ok, "{:?}", reports[0].error);
    assert!(!reports[1].ok);
    assert_eq!(reports[1].error_kind, Some(ErrorKind::DigestMismatch));
    assert!(reports[1]
        .error
        .as_deref()
        .unwrap()
        .contains("config image"));
    assert!(
        head_wiped(&memories[1]),
        "a stick with the wrong config looks bootable"
    );
}

/// No read-back proves the shared image when every stick lays its own bytes over it: the image
/// is checked on the way, and a wrong one fails every stick before its first MiB is written.
#[test]
fn a_shared_image_that_is_not_its_digest_fails_every_stick() {
    let bytes = image(5 * MIB as usize);
    let a = own(&bytes, 5 * MIB, 0..0, MIB as usize, 1);
    let memories: Vec<Arc<Memory>> = (0..2).map(|_| Arc::new(Memory::default())).collect();
    let targets: Vec<(Target, Option<&dyn Overlay>)> = vec![
        (drive(&memories[0], 16 * MIB, 512, true), Some(&a)),
        (drive(&memories[1], 16 * MIB, 512, true), None),
    ];
    let (source, reports) = flash_onto(&bytes, sha(b"another image"), targets);
    assert!(
        matches!(source, Err(Error::DigestMismatch { .. })),
        "{source:?}"
    );
    for (i, report) in reports.iter().enumerate() {
        assert!(!report.ok, "target {i} was called done");
        assert!(head_wiped(&memories[i]), "target {i} looks bootable");
    }
}

/// A boot image with a GPT holding one partition (1 to 2 MiB), and a config image, in `dir`:
/// the shape of a fuzzer regression, made sane (as gpt.rs's tests do).
fn boot_and_config(dir: &Path) -> (Image, Vec<u8>, std::path::PathBuf) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/gpt_plan/needed-bytes-times-sector");
    let mut boot = std::fs::read(fixture).unwrap();
    boot[1024 + 40..1024 + 48].copy_from_slice(&4095u64.to_le_bytes());
    assert!(boot.len() <= MIB as usize);
    boot.resize(3 * MIB as usize, 0);
    boot[MIB as usize..2 * MIB as usize].copy_from_slice(&image(MIB as usize));
    let boot_path = dir.join("boot.img");
    std::fs::write(&boot_path, &boot).unwrap();
    let config_path = dir.join("cidata.img");
    std::fs::write(&config_path, image(3 * MIB as usize + 512)).unwrap();
    let boot_image = Image {
        path: boot_path,
        sha256: sha(&boot),
        size: boot.len() as u64,
        tail: None,
    };
    (boot_image, boot, config_path)
}

/// The writer lays a real one-stick layout over the boot image exactly as the layout's own
/// stream (the privileged helper's) has it: one definition of the stick's bytes.
#[test]
fn a_one_stick_layout_over_the_shared_image_is_its_whole_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (boot_image, boot, config_path) = boot_and_config(dir.path());
    let cancel = CancellationToken::new();
    let layout = one_stick::layout(&boot_image, &config_path, 64 * MIB, 512, &cancel).unwrap();
    let mut whole = Vec::new();
    layout.reader().unwrap().read_to_end(&mut whole).unwrap();
    assert_eq!(layout.image(&cancel).unwrap().sha256, sha(&whole));

    let memory = Arc::new(Memory::default());
    let targets: Vec<(Target, Option<&dyn Overlay>)> =
        vec![(drive(&memory, 64 * MIB, 512, true), Some(&layout))];
    let (_, reports) = flash_onto(&boot, sha(&boot), targets);
    assert!(reports[0].ok, "{:?}", reports[0].error);
    assert_eq!(reports[0].given_sha256, Some(sha(&whole)));
    let held = memory.bytes.lock().unwrap();
    assert!(
        held[..whole.len()] == whole[..],
        "the stick is not the layout's stream"
    );
    let tail = layout.tail().unwrap();
    let at = tail.offset as usize;
    assert_eq!(&held[at..at + tail.bytes.len()], &tail.bytes[..]);
}

/// The privileged helper takes one stream: a one-stick flash sends the layout whole, its digest
/// first; sticks that each get their own config cannot share one stream and are refused.
#[test]
fn the_helper_is_given_the_layout_whole_or_refused_several() {
    let dir = tempfile::tempdir().unwrap();
    let (boot_image, _, config_path) = boot_and_config(dir.path());
    let cancel = CancellationToken::new();
    let roots = crate::io::drives::SystemRoots::default();
    let plan = |name: &str| {
        crate::flash::plan_writing(
            boot_image.clone(),
            &[crate::flash::rules::Chosen::path(dir.path().join(name))],
            Some(&config_path),
            &Default::default(),
            &[],
            &roots,
            &cancel,
        )
        .unwrap()
    };
    let one = plan("a.img");
    let (whole, mut source) = one.whole(&cancel).unwrap();
    let mut stream = Vec::new();
    source.read_to_end(&mut stream).unwrap();
    let layout = one.layouts[0].as_ref().unwrap();
    assert_eq!(whole.image.sha256, sha(&stream));
    assert_eq!(whole.image.size, stream.len() as u64);
    assert_eq!(whole.image.size, layout.size());
    assert_eq!(
        whole.image.tail.unwrap().offset,
        layout.tail().unwrap().offset
    );
    assert!(whole.layouts.iter().all(Option::is_none));

    let mut two = plan("b.img");
    two.targets.extend(plan("c.img").targets);
    two.layouts.extend(plan("c.img").layouts);
    let Err(refused) = two.whole(&cancel) else {
        panic!("two sticks with their own configs went to the helper as one stream")
    };
    assert!(
        refused.to_string().contains("privileged helper"),
        "{refused}"
    );
}

/// An overlay whose own bytes end early or run on fails its stick (first MiB wiped), not the
/// others.
#[test]
fn own_bytes_that_end_early_or_run_on_fail_their_stick() {
    let bytes = image(5 * MIB as usize);
    for (ends, said) in [(Ends::Short, "ended 100 bytes early"), (Ends::Long, "grew")] {
        let good = own(&bytes, 5 * MIB, 0..0, MIB as usize, 1);
        let mut bad = own(&bytes, 5 * MIB, 0..0, MIB as usize, 2);
        bad.ends = ends;
        let memories: Vec<Arc<Memory>> = (0..2).map(|_| Arc::new(Memory::default())).collect();
        let targets: Vec<(Target, Option<&dyn Overlay>)> = vec![
            (drive(&memories[0], 16 * MIB, 512, true), Some(&good)),
            (drive(&memories[1], 16 * MIB, 512, true), Some(&bad)),
        ];
        let (_, reports) = flash_onto(&bytes, sha(&bytes), targets);
        assert!(reports[0].ok, "{:?}", reports[0].error);
        let error = reports[1].error.as_deref().unwrap_or("ok");
        assert!(error.contains(said), "{said}: {error}");
        assert!(head_wiped(&memories[1]), "{said}: the stick looks bootable");
    }
}

/// The helper's one stream is taken from the boot image as it is when written: one that changed
/// since it was checked is refused, not sent with a digest of its own.
#[test]
fn the_helper_is_not_given_a_boot_image_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (boot_image, mut boot, config_path) = boot_and_config(dir.path());
    let cancel = CancellationToken::new();
    let layout = one_stick::layout(&boot_image, &config_path, 64 * MIB, 512, &cancel).unwrap();
    layout.image(&cancel).unwrap();
    boot[MIB as usize + 4242] ^= 0xFF;
    std::fs::write(&boot_image.path, &boot).unwrap();
    let Err(refused) = layout.image(&cancel) else {
        panic!("a changed boot image was laid out for the helper")
    };
    assert_eq!(refused.kind(), ErrorKind::DigestMismatch, "{refused}");
}

/// A config image that cannot be read when it is written is named in the error, not the stick.
#[test]
fn a_config_image_that_cannot_be_read_is_named_not_the_stick() {
    let dir = tempfile::tempdir().unwrap();
    let (boot_image, boot, config_path) = boot_and_config(dir.path());
    let cancel = CancellationToken::new();
    let layout = one_stick::layout(&boot_image, &config_path, 64 * MIB, 512, &cancel).unwrap();
    std::fs::remove_file(&config_path).unwrap();
    std::fs::create_dir(&config_path).unwrap();
    let memory = Arc::new(Memory::default());
    let (_, reports) = flash_onto(
        &boot,
        sha(&boot),
        vec![(drive(&memory, 64 * MIB, 512, true), Some(&layout))],
    );
    let error = reports[0].error.as_deref().unwrap_or("ok");
    assert!(error.contains("cidata.img"), "{error}");
    assert!(head_wiped(&memory));
}
