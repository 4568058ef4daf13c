//! Writing one image to several targets at once and proving each by reading it back.
//!
//! One reader feeds every target's writer thread, and a hashing thread, through small bounded
//! queues; the image's size and digest may be known only at its end (a stream being decoded).
//! Per target, the phases of `Job`, in order (`write_target` runs them):
//! 1. `wipe` the first MiB, so a cut flash never leaves a drive that looks bootable or keeps its
//!    old partition table;
//! 2. write the `body`, the rest of the image, in large aligned writes (the last padded to the
//!    logical block size when O_DIRECT is on), then fsync; where the target may already hold
//!    the image, each chunk is read first and only its MiB that differ are written (`skip`
//!    decides when reading first pays);
//! 3. `read_back` the rest from the device, skipped MiB included (O_DIRECT, page cache dropped),
//!    and check the image's SHA-256 over the held first MiB followed by what the device returned
//!    (targets holding the same bytes share that hash: see `readback`);
//! 4. write the `tail` (bytes past the image: a one-stick backup GPT), proven the same way;
//! 5. only then write the `head`, the first MiB, fsync, read it back and compare it byte for
//!    byte; then re-read the partition table.
//!
//! The phases write through [`Medium`], so the unit tests below run them all on drives in
//! memory: every size around the block, MiB and chunk boundaries, a failing write, a drive that
//! reads back wrong or short, cancellation between phases.
//!
//! A target may have bytes of its own ([`Overlay`]: a lab's node, its GPT head and cidata
//! partition): it is given the shared image's bytes with its own laid over them, then the rest
//! from the overlay, and the digest of what it was given, taken as it is written, is what its
//! read-back must reproduce. The shared image is then hashed on the way and checked against its
//! digest, since no read-back proves it whole.
//!
//! A failing target is dropped and reported while the others go on. Cancellation stops every
//! target within one write and leaves its first MiB wiped; each target also has a cancel of its
//! own ([`Onto::cancel`]) that stops it alone the same way, the reader then no longer waiting
//! for its queue, even while a write to it hangs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::error::{self, io_at, Error, ErrorKind, Result, TargetFailure};
use crate::fetch::digest::Sha256Digest;
use crate::flash::readback::ReadBack;
use crate::flash::skip::{self, Skipper};
use crate::flash::target_cancel::TargetCancel;
use crate::image::{Image, Tail};
use crate::io::device::{self, Access, AlignedBuf, Target, TargetKind, ALIGN};
use crate::io::medium::Medium;
use crate::progress::{ProgressSink, Reporter, Stage};
use crate::verify;
use crate::CancellationToken;

const MIB: u64 = 1 << 20;
/// Held back and written last.
pub const HEAD: u64 = MIB;
/// Wiped at a drive's end: a backup GPT (header and 128 entries) fits in 64 KiB for 512- and
/// 4096-byte sectors alike.
const END_WIPE: u64 = 64 << 10;
/// Each write: large enough for full speed on USB sticks.
const CHUNK: usize = 4 << 20;
/// Chunks queued per target: bounds memory whatever the image size.
const QUEUE: usize = 3;

/// What the writers know before the first byte: everything for a file, and for a stream being
/// decoded only its name. Unknown size and digest are taken from the bytes as they pass.
#[derive(Clone, Debug)]
pub struct Expect {
    /// Names the source in errors.
    pub name: PathBuf,
    pub sha256: Option<Sha256Digest>,
    /// Hash the image as it is read and fail every target if it is not `sha256`, even when the
    /// read-back would catch that too: the fault is then named as the source's (a cached image
    /// that changed), not each target's.
    pub check_source: bool,
    pub size: Option<u64>,
    /// The size the source announces when `size` is unknown (an archive's records): only the
    /// Write stage's progress total, never trusted to stop or check anything (the records are
    /// the archive's word, and the decoder's bound and the read-back are what keep it honest).
    pub announced_size: Option<u64>,
    pub tail: Option<Tail>,
}

impl From<&Image> for Expect {
    fn from(image: &Image) -> Self {
        Self {
            name: image.path.clone(),
            sha256: Some(image.sha256),
            check_source: false,
            size: Some(image.size),
            announced_size: None,
            tail: image.tail.clone(),
        }
    }
}

/// What one target gets of its own over the shared image (a one-stick layout: see `one_stick`).
pub trait Overlay: Sync {
    /// The target's whole stream, its own bytes included.
    fn size(&self) -> u64;
    /// Where the shared image's bytes stop being this target's.
    fn image_end(&self) -> u64;
    /// Whether [`Overlay::patch`] changes any byte in `[offset, offset + len)`.
    fn patches(&self, offset: u64, len: usize) -> bool;
    /// Lays the target's bytes over the shared image's `bytes` found at `offset`.
    fn patch(&self, offset: u64, bytes: &mut [u8]);
    /// The target's own bytes from `from` (at or past `image_end`) to its end; a reader that
    /// finds them changed fails with the engine error it carries.
    fn own_bytes(&self, from: u64) -> Result<Box<dyn Read + Send + '_>>;
    /// Bytes past its end (its backup GPT), written and proven after its stream.
    fn tail(&self) -> Option<Tail>;
}

/// A target to write, what it gets of its own, if anything, and its own cancel.
pub struct Onto<'a> {
    pub target: Target,
    pub overlay: Option<&'a dyn Overlay>,
    pub cancel: TargetCancel,
}

impl<'a> Onto<'a> {
    /// With a cancel of its own nobody else holds yet.
    pub fn new(target: Target, overlay: Option<&'a dyn Overlay>) -> Self {
        Self {
            target,
            overlay,
            cancel: TargetCancel::default(),
        }
    }
}

/// The image as it was read: its digest and size, and a CRC-32 of each MiB. The CRCs only locate
/// a difference once the read-back's SHA-256 has proven there is one; they cost a tenth of a
/// second SHA-256 pass.
#[derive(Debug)]
pub struct Sent {
    pub sha256: Sha256Digest,
    pub size: u64,
    mib_crcs: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FlashOptions {
    /// Read every target back (the default); off, results say unverified.
    pub verify: bool,
    /// Leave alone the MiB a target already holds (found by reading each chunk before writing
    /// it; the default); off, every byte is written.
    pub skip_equal: bool,
}

impl Default for FlashOptions {
    fn default() -> Self {
        Self {
            verify: true,
            skip_equal: true,
        }
    }
}

/// One target's outcome.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub path: String,
    pub ok: bool,
    /// Bytes of the image written to the target.
    pub bytes_written: u64,
    /// Bytes of the image the target already held, left as they were (and read back like the
    /// rest).
    pub bytes_skipped: u64,
    /// The digest read back from the target; null when not verified or failed.
    #[serde(rename = "verifiedSHA256")]
    pub verified_sha256: Option<Sha256Digest>,
    pub error: Option<String>,
    /// What sort of failure `error` is (a mismatch, bad input, cancelled, any other), for front
    /// ends and exit codes; it crosses the helper's pipe with the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub error_kind: Option<ErrorKind>,
    /// How the target was reached; null when it was never opened.
    pub access: Option<Access>,
    /// The digest of the stream this target was given, when it had bytes of its own (an
    /// [`Overlay`]); the front end's to report (a one-stick flash's `stickSHA256`), never sent.
    #[serde(skip)]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub given_sha256: Option<Sha256Digest>,
}

impl TargetReport {
    /// This target's failure, as the error for a flash no target survived names it.
    fn failure(self) -> TargetFailure {
        TargetFailure {
            path: self.path,
            error: self.error.unwrap_or_else(|| "failed".into()),
            kind: self.error_kind,
        }
    }

    /// A target that failed before any byte reached it.
    pub fn failed(path: &Path, error: &Error) -> Self {
        Self {
            path: path.display().to_string(),
            ok: false,
            bytes_written: 0,
            bytes_skipped: 0,
            verified_sha256: None,
            error: Some(error.to_string()),
            error_kind: Some(error.kind()),
            access: None,
            given_sha256: None,
        }
    }
}

struct Chunk {
    offset: u64,
    len: usize,
    buf: AlignedBuf,
    /// Every byte is zero: a run of zeros in the image, where a target most likely matches.
    zeros: bool,
    /// Where the buffer goes when the last target is done with it.
    home: SyncSender<AlignedBuf>,
}

impl Chunk {
    fn piece(&self) -> Piece<'_> {
        Piece {
            offset: self.offset,
            len: self.len,
            buf: &self.buf,
            zeros: self.zeros,
        }
    }
}

/// Bytes for one target at `offset`: `buf` holds `len` of them, then zeros to the next
/// [`ALIGN`] (the padding of a last write), in a buffer aligned for direct I/O.
struct Piece<'b> {
    offset: u64,
    len: usize,
    buf: &'b [u8],
    zeros: bool,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let _ = self.home.try_send(std::mem::take(&mut self.buf));
    }
}

enum Msg {
    Data(Arc<Chunk>),
    /// The whole image was sent; `Err` when the source failed or the image did not hash to the
    /// expected digest.
    End(std::result::Result<Arc<Sent>, (ErrorKind, String)>),
}

/// What one flash did: the image as read (or why reading it failed) and each target's outcome.
pub struct Outcome {
    pub source: Result<Arc<Sent>>,
    pub targets: Vec<TargetReport>,
}

impl Outcome {
    /// The image as read, or the error to report: when every target failed before the image
    /// was read whole, theirs (each named), not the reader's.
    pub fn sent(self) -> Result<(Arc<Sent>, Vec<TargetReport>)> {
        let cancelled = |t: &TargetReport| t.error_kind == Some(ErrorKind::Cancelled);
        match self.source {
            Ok(sent) => Ok((sent, self.targets)),
            // Each target cancelled on its own: the flash is cancelled.
            Err(Error::NoTargetLeft) if self.targets.iter().all(cancelled) => Err(Error::Cancelled),
            Err(Error::NoTargetLeft) => Err(Error::EveryTargetFailed {
                targets: self
                    .targets
                    .into_iter()
                    .map(TargetReport::failure)
                    .collect(),
            }),
            Err(e) => Err(e),
        }
    }
}

/// Writes `image`, read from `source` (its file, or the helper's stdin), to every target
/// (blocking) and returns a report per target, in order.
pub fn flash(
    image: &Image,
    source: &mut (dyn Read + Send),
    targets: Vec<Onto<'_>>,
    options: &FlashOptions,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Vec<TargetReport> {
    flash_stream(&image.into(), source, targets, options, cancel, progress).targets
}

/// `flash` for a source whose size or digest may be known only at its end (a stream being
/// decoded). A source error that wraps an [`Error`] in its `io::Error` keeps its kind.
pub fn flash_stream(
    expect: &Expect,
    source: &mut (dyn Read + Send),
    targets: Vec<Onto<'_>>,
    options: &FlashOptions,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Outcome {
    // Each target's own: tripped by the whole run's cancel, or by its own alone.
    let cancels: Vec<CancellationToken> = targets.iter().map(|t| t.cancel.token(cancel)).collect();
    let readback = &ReadBack::new(cancels.clone());
    // No read-back proves the shared image whole when a target holds its own bytes over it.
    let expect = &Expect {
        check_source: expect.check_source || targets.iter().any(|t| t.overlay.is_some()),
        ..expect.clone()
    };
    std::thread::scope(|scope| {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        if options.verify {
            scope.spawn(|| readback.hash_rounds());
        }
        for ((me, onto), cancel) in targets.into_iter().enumerate().zip(cancels) {
            let (target, overlay) = (onto.target, onto.overlay);
            let (tx, rx) = sync_channel::<Msg>(QUEUE);
            senders.push(Outlet {
                tx,
                cancel: cancel.clone(),
            });
            handles.push(scope.spawn(move || {
                let mut job = Job {
                    target: &target,
                    overlay,
                    given: overlay.map(|_| Given::default()),
                    given_sha256: None,
                    me,
                    readback,
                    written: 0,
                    skipped: 0,
                    // A file just created holds nothing to find.
                    skipper: (options.skip_equal && target.created.is_none())
                        .then(Skipper::default),
                    head: AlignedBuf::zeroed(HEAD as usize),
                    own_buf: AlignedBuf::default(),
                };
                let result = write_target(&mut job, expect, rx, options, &cancel, progress);
                // Done or failed: the other targets' read-back no longer waits for this one.
                readback.leave(me);
                if result.is_err() {
                    target.remove_created();
                }
                report(&target, &job, result)
            }));
        }
        let source = feed(expect, source, senders, options, cancel);
        let targets = handles
            .into_iter()
            .map(|h| h.join().expect("a writer thread panicked"))
            .collect();
        Outcome { source, targets }
    })
}

fn report(target: &Target, job: &Job, result: Result<Option<Sha256Digest>>) -> TargetReport {
    let path = target.path.display().to_string();
    let access = Some(target.access);
    let (written, skipped, given) = (job.written, job.skipped, job.given_sha256);
    match result {
        Ok(verified) => TargetReport {
            path,
            ok: true,
            bytes_written: written,
            bytes_skipped: skipped,
            verified_sha256: verified,
            error: None,
            error_kind: None,
            access,
            given_sha256: given,
        },
        Err(e) => TargetReport {
            path,
            ok: false,
            bytes_written: written,
            bytes_skipped: skipped,
            verified_sha256: None,
            error: Some(e.to_string()),
            error_kind: Some(e.kind()),
            access,
            given_sha256: given,
        },
    }
}

/// Reads the image once and hands each chunk to every target still going. The image is hashed on
/// the way unless every target's read-back will prove the expected digest anyway (the hash
/// would finish no earlier than the writes, so checking it first protects nothing more). If it
/// is not the image the digest names, or the source fails, every target is told to fail. A
/// source that ends early (the helper's client went away) counts as cancellation.
fn feed(
    expect: &Expect,
    source: &mut (dyn Read + Send),
    mut senders: Vec<Outlet>,
    options: &FlashOptions,
    cancel: &CancellationToken,
) -> Result<Arc<Sent>> {
    let trusted = expect
        .sha256
        .filter(|_| options.verify && !expect.check_source);
    let result = read_chunks(expect, trusted, source, &mut senders, cancel).map(Arc::new);
    let end = match &result {
        // Closing the queues without End tells writers to stop.
        Err(Error::Cancelled | Error::NoTargetLeft) => return result,
        Ok(sent) => Ok(sent.clone()),
        Err(e) => Err((e.kind(), e.to_string())),
    };
    for outlet in senders {
        outlet.send(Msg::End(end.clone()));
    }
    result
}

/// A target's queue, as the reader sees it.
struct Outlet {
    tx: SyncSender<Msg>,
    /// The target's own cancel: once tripped, the reader stops waiting for room in its queue.
    cancel: CancellationToken,
}

impl Outlet {
    /// Hands `msg` to the target; false once it is gone or cancelled. A full queue is waited
    /// for in short naps, not a blocking send: a cancelled target whose write hangs (a failing
    /// stick) must not hold up the others.
    fn send(&self, mut msg: Msg) -> bool {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if self.cancel.is_cancelled() {
                        return false;
                    }
                    msg = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// `trusted`: the digest the read-back will prove, so the image need not be hashed here.
fn read_chunks(
    expect: &Expect,
    trusted: Option<Sha256Digest>,
    source: &mut (dyn Read + Send),
    senders: &mut Vec<Outlet>,
    cancel: &CancellationToken,
) -> Result<Sent> {
    std::thread::scope(|scope| {
        // Hashing on its own thread: reading, hashing and writing overlap instead of the reader
        // hashing between reads.
        let (to_hasher, chunks) = sync_channel::<Arc<Chunk>>(QUEUE);
        let hasher = scope.spawn(move || hash_chunks(chunks, trusted.is_none()));
        let size = send_chunks(expect, source, senders, to_hasher, cancel);
        let (hashed, mib_crcs) = hasher.join().expect("the hashing thread panicked");
        let actual = hashed.or(trusted).expect("hashed unless trusted");
        let size = size?;
        if size == 0 {
            return Err(Error::BadInput(format!(
                "the image {} is empty",
                expect.name.display()
            )));
        }
        if let Some(expected) = expect.sha256.filter(|e| *e != actual) {
            return Err(Error::DigestMismatch {
                what: "image (it is not the one whose digest was given, or it changed)",
                expected: expected.hex(),
                actual: actual.hex(),
            });
        }
        Ok(Sent {
            sha256: actual,
            size,
            mib_crcs,
        })
    })
}

/// Reads the image in chunks and hands each to the hasher and every target still going;
/// returns the image's size.
fn send_chunks(
    expect: &Expect,
    source: &mut (dyn Read + Send),
    senders: &mut Vec<Outlet>,
    to_hasher: SyncSender<Arc<Chunk>>,
    cancel: &CancellationToken,
) -> Result<u64> {
    let mut offset = 0u64;
    // Buffers come back once hashed and written everywhere: memory stays at a few chunks and
    // their pages are faulted in once.
    let (home, pool) = sync_channel::<AlignedBuf>(2 * QUEUE + 3);
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let want = match expect.size {
            Some(size) => (size - offset).min(CHUNK as u64) as usize,
            None => CHUNK,
        };
        if want == 0 {
            return Ok(offset);
        }
        let mut buf = pool
            .try_recv()
            .unwrap_or_else(|_| AlignedBuf::zeroed(CHUNK));
        let got =
            read_full(source, &mut buf[..want]).map_err(|e| error::from_io(&expect.name, e))?;
        // The last write is padded to the block size: with zeros, not a recycled chunk's bytes.
        let padded = (device::round_up(got as u64, ALIGN as u64) as usize).min(CHUNK);
        buf[got..padded].fill(0);
        if let Some(size) = expect.size.filter(|_| got < want) {
            return Err(Error::BadInput(format!(
                "the image ended after {} of its {size} bytes",
                offset + got as u64,
            )));
        }
        if got == 0 {
            return Ok(offset);
        }
        let chunk = Arc::new(Chunk {
            offset,
            len: got,
            zeros: skip::all_zeros(&buf[..got]),
            buf,
            home: home.clone(),
        });
        to_hasher
            .send(chunk.clone())
            .expect("the hashing thread outlives the reader");
        senders.retain(|outlet| outlet.send(Msg::Data(chunk.clone())));
        if senders.is_empty() {
            return Err(Error::NoTargetLeft);
        }
        offset += got as u64;
        if got < want {
            return Ok(offset);
        }
    }
}

/// The image's SHA-256 (if asked) and the CRC-32 of each of its MiB, from the chunks in order.
fn hash_chunks(chunks: Receiver<Arc<Chunk>>, sha256: bool) -> (Option<Sha256Digest>, Vec<u32>) {
    let mut hasher = sha256.then(Sha256::new);
    let mut mib_crcs = Vec::new();
    for chunk in chunks {
        let bytes = &chunk.buf[..chunk.len];
        if let Some(hasher) = &mut hasher {
            hasher.update(bytes);
        }
        mib_crcs.extend(bytes.chunks(MIB as usize).map(crc32fast::hash));
    }
    (hasher.map(Sha256Digest::of_hasher), mib_crcs)
}

/// Where a target with an overlay takes its own bytes from: the shared image's end, on a
/// direct-I/O boundary (an image that ends between two is padded with zeros, which is what the
/// overlay holds there too: the cidata partition starts on a MiB).
fn own_from(overlay: &dyn Overlay) -> u64 {
    device::round_up(overlay.image_end(), ALIGN as u64)
}

/// The part of a shared chunk that is this target's, with its own bytes laid over it (in `copy`
/// when they change it); `None` past the shared part.
fn overlaid<'b>(
    overlay: &dyn Overlay,
    chunk: &'b Chunk,
    copy: &'b mut AlignedBuf,
) -> Option<Piece<'b>> {
    let own_from = own_from(overlay);
    if chunk.offset >= own_from {
        return None;
    }
    let padded = device::round_up(chunk.len as u64, ALIGN as u64);
    let len = padded.min(own_from - chunk.offset) as usize;
    if !overlay.patches(chunk.offset, len) && len == chunk.len {
        return Some(chunk.piece());
    }
    if copy.is_empty() {
        *copy = AlignedBuf::zeroed(CHUNK);
    }
    let aligned = device::round_up(len as u64, ALIGN as u64) as usize;
    copy[..aligned].copy_from_slice(&chunk.buf[..aligned]);
    overlay.patch(chunk.offset, &mut copy[..len]);
    Some(Piece {
        offset: chunk.offset,
        len,
        zeros: skip::all_zeros(&copy[..len]),
        buf: copy,
    })
}

/// Reads until `buf` is full or the source ends.
pub(crate) fn read_full(source: &mut (dyn Read + Send), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One target's part in a flash: its phases, in order, as methods (see the module's doc).
struct Job<'a> {
    target: &'a Target,
    /// Its bytes of its own, if any, and the digest of what it is given (taken only then; known
    /// once it was given its whole stream, also when it fails after).
    overlay: Option<&'a dyn Overlay>,
    given: Option<Given>,
    given_sha256: Option<Sha256Digest>,
    /// Its place in the shared read-back.
    me: usize,
    readback: &'a ReadBack,
    /// Image bytes written so far, and left as they were because the target held them.
    written: u64,
    skipped: u64,
    /// Whether to read a chunk before writing it; `None` when every byte is written.
    skipper: Option<Skipper>,
    /// The image's first MiB, held until everything else is written and proven.
    head: AlignedBuf,
    /// A target with an overlay: a chunk with its bytes laid over, then its own bytes.
    own_buf: AlignedBuf,
}

/// The SHA-256 and per-MiB CRC-32s of the bytes a target with an [`Overlay`] is given, taken as
/// they pass (its stream exists nowhere whole).
#[derive(Default)]
struct Given {
    sha256: Sha256,
    crc: crc32fast::Hasher,
    in_mib: u64,
    mib_crcs: Vec<u32>,
}

impl Given {
    fn update(&mut self, mut bytes: &[u8]) {
        self.sha256.update(bytes);
        while !bytes.is_empty() {
            let n = ((MIB - self.in_mib) as usize).min(bytes.len());
            self.crc.update(&bytes[..n]);
            self.in_mib += n as u64;
            if self.in_mib == MIB {
                let crc = std::mem::take(&mut self.crc);
                self.mib_crcs.push(crc.finalize());
                self.in_mib = 0;
            }
            bytes = &bytes[n..];
        }
    }

    fn sent(mut self, size: u64) -> Sent {
        if self.in_mib > 0 {
            self.mib_crcs.push(self.crc.finalize());
        }
        Sent {
            sha256: Sha256Digest::of_hasher(self.sha256),
            size,
            mib_crcs: self.mib_crcs,
        }
    }
}

/// Returns the digest read back (when verifying).
fn write_target(
    job: &mut Job,
    expect: &Expect,
    rx: Receiver<Msg>,
    options: &FlashOptions,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Option<Sha256Digest>> {
    let expect = &match job.overlay {
        Some(overlay) => Expect {
            size: Some(overlay.size()),
            tail: overlay.tail(),
            ..expect.clone()
        },
        None => expect.clone(),
    };
    job.wipe(expect)?;
    let total = expect.size.or(expect.announced_size);
    let mut reporter = Reporter::new(progress, Stage::Write, total).for_target(job.path());
    let mut pre = AlignedBuf::default();
    let mut sent = job.body(rx, &mut pre, cancel, &mut reporter)?;
    if let Some(overlay) = job.overlay {
        sent = Arc::new(job.own_bytes(overlay, &mut pre, cancel, &mut reporter)?);
        job.given_sha256 = Some(sent.sha256);
    }
    // The read-back has buffers of its own: with several sticks, memory is the sum.
    drop(pre);
    let verified = match options.verify {
        true => Some(job.read_back(&sent, cancel, progress)?),
        false => None,
    };
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    if let Some(tail) = &expect.tail {
        job.tail(tail, &sent, verified.is_some())?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
    }
    job.head(&sent, verified.is_some())?;
    // An announced size that was not the image's is not the last word.
    if expect.announced_size.is_some() {
        reporter.set_total(Some(sent.size));
    }
    reporter.finish(sent.size);
    if job.target.kind == TargetKind::BlockDevice {
        job.medium().reread_partitions();
    }
    Ok(verified)
}

impl Job<'_> {
    fn medium(&self) -> &dyn Medium {
        self.target.medium.as_ref()
    }

    fn path(&self) -> &Path {
        &self.target.path
    }

    /// A write's length: padded to the logical block size when O_DIRECT is on.
    fn pad(&self, len: usize) -> usize {
        let lbs = u64::from(self.target.logical_block_size.max(512));
        if self.target.direct {
            device::round_up(len as u64, lbs) as usize
        } else {
            len
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.medium()
            .write_all_at(buf, offset)
            .map_err(io_at(self.path()))
    }

    fn sync(&self) -> Result<()> {
        self.medium().sync().map_err(io_at(self.path()))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.medium()
            .read_full_at(buf, offset)
            .map_err(io_at(self.path()))
    }

    /// Phase 1: wipes what will be written last (the first MiB), so a cut flash never leaves a
    /// drive that looks bootable, and an old backup GPT at the drive's end, which tools and
    /// firmware would otherwise use to bring back the old partition table.
    fn wipe(&mut self, expect: &Expect) -> Result<()> {
        let zeros = AlignedBuf::zeroed(HEAD as usize);
        let capacity = self.target.capacity;
        let wipe = capacity.or(expect.size).unwrap_or(HEAD).min(HEAD) as usize;
        self.write_at(&zeros[..self.pad(wipe).min(HEAD as usize)], 0)?;
        if let Some(size) = capacity.or(self.target.file_len) {
            // From 64 KiB before the end, or the image's end when that is later (a target only
            // a little larger than the image still loses its old backup GPT). An image that
            // reaches further overwrites the zeros.
            let lbs = u64::from(self.target.logical_block_size.max(512));
            let end_of_image = device::round_up(expect.size.unwrap_or(0), lbs);
            let from = size.saturating_sub(END_WIPE).max(end_of_image).max(HEAD);
            if from < size {
                self.write_at(&zeros[..(size - from) as usize], from)?;
            }
        }
        self.sync()
    }

    /// Phase 2: everything after the first MiB, as it arrives, then fsync. Progress counts bytes
    /// the device has accepted (O_DIRECT writes return when the device has them), not bytes queued.
    /// A target with an overlay takes the image's bytes up to its own, with its own laid over
    /// them. `pre` receives what the target holds, read before a chunk is written.
    fn body(
        &mut self,
        rx: Receiver<Msg>,
        pre: &mut AlignedBuf,
        cancel: &CancellationToken,
        reporter: &mut Reporter<'_>,
    ) -> Result<Arc<Sent>> {
        if self.skipper.is_some() && !self.target.direct {
            self.medium().drop_cache();
        }
        let mut copy = std::mem::take(&mut self.own_buf);
        let sent = loop {
            let msg = rx.recv().map_err(|_| {
                if cancel.is_cancelled() {
                    Error::Cancelled
                } else {
                    Error::BadInput("the image could not be read".into())
                }
            })?;
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let chunk = match msg {
                Msg::Data(chunk) => chunk,
                Msg::End(Ok(sent)) => break sent,
                Msg::End(Err((kind, message))) => return Err(Error::Upstream { kind, message }),
            };
            let piece = match self.overlay {
                Some(overlay) => match overlaid(overlay, &chunk, &mut copy) {
                    Some(piece) => piece,
                    None => continue,
                },
                None => chunk.piece(),
            };
            let end = piece.offset + piece.len as u64;
            self.put(&piece, pre)?;
            reporter.set_skipped(self.skipped);
            reporter.update(end.saturating_sub(HEAD));
        };
        self.own_buf = copy;
        self.sync()?;
        Ok(sent)
    }

    /// Phase 2 for a target with an overlay: its own bytes after the shared image's, then fsync;
    /// returns what it was given, whole.
    fn own_bytes(
        &mut self,
        overlay: &dyn Overlay,
        pre: &mut AlignedBuf,
        cancel: &CancellationToken,
        reporter: &mut Reporter<'_>,
    ) -> Result<Sent> {
        let size = overlay.size();
        let mut offset = own_from(overlay);
        let mut own = overlay.own_bytes(offset)?;
        let mut buf = std::mem::take(&mut self.own_buf);
        if buf.is_empty() {
            buf = AlignedBuf::zeroed(CHUNK);
        }
        while offset < size {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            // Up to the next chunk boundary, so every later piece starts on a MiB.
            let want = (CHUNK as u64 - offset % CHUNK as u64).min(size - offset) as usize;
            let got = read_full(&mut own, &mut buf[..want])
                .map_err(|e| error::from_io(self.path(), e))?;
            if got < want {
                return Err(Error::BadInput(format!(
                    "the config image ended {} bytes early",
                    size - offset - got as u64
                )));
            }
            let padded = device::round_up(got as u64, ALIGN as u64) as usize;
            buf[got..padded].fill(0);
            let piece = Piece {
                offset,
                len: got,
                zeros: skip::all_zeros(&buf[..got]),
                buf: &buf,
            };
            self.put(&piece, pre)?;
            offset += got as u64;
            reporter.set_skipped(self.skipped);
            reporter.update(offset.saturating_sub(HEAD));
        }
        // Its end: where a changed config image is found (see `Overlay::own_bytes`).
        if read_full(&mut own, &mut [0u8; 1]).map_err(|e| error::from_io(self.path(), e))? > 0 {
            return Err(Error::BadInput(
                "the config image grew while it was written".into(),
            ));
        }
        self.sync()?;
        Ok(self
            .given
            .take()
            .expect("an overlay's target is given")
            .sent(size))
    }

    /// Takes one piece: its part in the first MiB is held, the rest written (see
    /// `write_chunk`); a target with an overlay hashes it while the device writes.
    fn put(&mut self, piece: &Piece<'_>, pre: &mut AlignedBuf) -> Result<()> {
        let end = piece.offset + piece.len as u64;
        if let Some(size) = self.target.capacity.filter(|size| end > *size) {
            let (needs, holds) = crate::io::drives::human_sizes(end, size);
            return Err(Error::BadInput(format!(
                "the image does not fit: it needs more than {needs}, {} holds {holds}",
                self.path().display()
            )));
        }
        let held = HEAD.saturating_sub(piece.offset).min(piece.len as u64) as usize;
        if held > 0 {
            let at = piece.offset as usize;
            self.head[at..at + held].copy_from_slice(&piece.buf[..held]);
        }
        let mut given = self.given.take();
        let written = std::thread::scope(|scope| {
            let hashing = given
                .as_mut()
                .map(|g| scope.spawn(|| g.update(&piece.buf[..piece.len])));
            let written = match held < piece.len {
                true => self.write_chunk(piece, held, pre),
                false => Ok(()),
            };
            if let Some(hashing) = hashing {
                hashing.join().expect("the hashing thread panicked");
            }
            written
        });
        self.given = given;
        written
    }

    /// Writes the piece's bytes from `from` on; where reading them first is likely to pay (see
    /// `skip`), only the MiB the target does not already hold, in runs. `pre` receives what the
    /// target holds (allocated at the first read).
    fn write_chunk(&mut self, chunk: &Piece<'_>, from: usize, pre: &mut AlignedBuf) -> Result<()> {
        let end = from + self.pad(chunk.len - from);
        let at = |i: usize| chunk.offset + i as u64;
        let image_bytes = |a: usize, b: usize| (b.min(chunk.len) - a) as u64;
        let read_first = match self.skipper.as_mut() {
            Some(skipper) => skipper.should_read(chunk.zeros),
            None => false,
        };
        if !read_first {
            self.write_at(&chunk.buf[from..end], at(from))?;
            self.written += image_bytes(from, end);
            return Ok(());
        }
        if pre.is_empty() {
            *pre = AlignedBuf::zeroed(CHUNK);
        }
        // The first MiB decides whether the rest is worth reading: on a drive of unrelated data
        // a try then costs a quarter of a chunk's read.
        let first = (from + MIB as usize).min(end);
        let mut read_to = from + self.read_at(&mut pre[from..first], at(from))?;
        let first_image_end = first.min(chunk.len);
        if read_to < first_image_end
            || pre[from..first_image_end] != chunk.buf[from..first_image_end]
        {
            self.write_at(&chunk.buf[from..end], at(from))?;
            self.written += image_bytes(from, end);
            if let Some(skipper) = self.skipper.as_mut() {
                skipper.found(false);
            }
            return Ok(());
        }
        if read_to == first && first < end {
            read_to += self.read_at(&mut pre[first..end], at(first))?;
        }
        // Chunks start on a MiB, so each MiB compared is one the image's layout knows.
        let mut differing: Option<usize> = None;
        let mut any_equal = false;
        let mut a = from;
        while a < end {
            let b = (a + MIB as usize).min(end);
            // Past the image's end (padding to the block) what the target holds does not count.
            let image_end = b.min(chunk.len);
            if image_end <= read_to && pre[a..image_end] == chunk.buf[a..image_end] {
                any_equal = true;
                self.skipped += image_bytes(a, b);
                if let Some(start) = differing.take() {
                    self.write_at(&chunk.buf[start..a], at(start))?;
                }
            } else {
                self.written += image_bytes(a, b);
                differing.get_or_insert(a);
            }
            a = b;
        }
        if let Some(start) = differing {
            self.write_at(&chunk.buf[start..end], at(start))?;
        }
        if let Some(skipper) = self.skipper.as_mut() {
            skipper.found(any_equal);
        }
        Ok(())
    }

    /// Phase 3: reads the rest back from the device (with the other targets: see `readback`)
    /// through the descriptor that wrote it (O_DIRECT, page cache dropped: a drive opened through
    /// UDisks2 or the helper is authorized once per flash), and checks the whole image's digest
    /// over the held first MiB followed by what the device returned.
    fn read_back(
        &mut self,
        sent: &Sent,
        cancel: &CancellationToken,
        progress: &dyn ProgressSink,
    ) -> Result<Sha256Digest> {
        let (medium, path) = (self.medium(), self.path());
        medium.drop_cache();
        let size = sent.size;
        let head_len = size.min(HEAD) as usize;
        let mut back = Reporter::new(progress, Stage::ReadBack, Some(size)).for_target(path);
        let actual = self.readback.hash_target(
            self.me,
            &self.head[..head_len],
            medium,
            path,
            HEAD,
            size - head_len as u64,
            cancel,
            &mut back,
        )?;
        if actual == sent.sha256 {
            return Ok(actual);
        }
        let bad = verify::first_different_mib(medium, &sent.mib_crcs, head_len as u64, size)
            .map_err(io_at(path))?;
        Err(match bad {
            Some(bad) => Error::ReadBackMismatch {
                target: path.display().to_string(),
                expected: sent.sha256.hex(),
                actual: actual.hex(),
                first_bad_mib: bad,
            },
            // The target holds exactly the bytes that were read: they were not the image (an
            // expected digest is trusted to the read-back, see `feed`).
            None => Error::DigestMismatch {
                what: "image (it is not the one whose digest was given, or it changed)",
                expected: sent.sha256.hex(),
                actual: actual.hex(),
            },
        })
    }

    /// Phase 4: bytes past the image (a one-stick backup GPT at the drive's end), proven by reading
    /// them back when verifying.
    fn tail(&mut self, tail: &Tail, sent: &Sent, verify: bool) -> Result<()> {
        let mut buf =
            AlignedBuf::zeroed(device::round_up(tail.bytes.len() as u64, ALIGN as u64) as usize);
        buf[..tail.bytes.len()].copy_from_slice(&tail.bytes);
        self.write_at(&buf[..self.pad(tail.bytes.len())], tail.offset)?;
        self.sync()?;
        if verify {
            self.medium().drop_cache();
            let got = self
                .medium()
                .read_full_at(&mut buf[..self.pad(tail.bytes.len())], tail.offset)
                .map_err(io_at(self.path()))?;
            if got < tail.bytes.len() || buf[..tail.bytes.len()] != tail.bytes[..] {
                return Err(Error::ReadBackMismatch {
                    target: self.path().display().to_string(),
                    expected: sent.sha256.hex(),
                    actual: "(the backup GPT at the end differs)".into(),
                    first_bad_mib: tail.offset / MIB,
                });
            }
        }
        Ok(())
    }

    /// Phase 5: the first MiB, last, then fsync; read back and compared byte for byte when
    /// verifying.
    fn head(&mut self, sent: &Sent, verify: bool) -> Result<()> {
        let head_len = sent.size.min(HEAD) as usize;
        self.write_at(&self.head[..self.pad(head_len)], 0)?;
        self.sync()?;
        self.written += head_len as u64;
        if !verify {
            return Ok(());
        }
        self.medium().drop_cache();
        let mut back = AlignedBuf::zeroed(HEAD as usize);
        let aligned = device::round_up(head_len as u64, ALIGN as u64) as usize;
        let got = self
            .medium()
            .read_full_at(&mut back[..aligned], 0)
            .map_err(io_at(self.path()))?;
        if got < head_len || back[..head_len] != self.head[..head_len] {
            return Err(Error::ReadBackMismatch {
                target: self.path().display().to_string(),
                expected: sent.sha256.hex(),
                actual: "(differs in the first MiB)".into(),
                first_bad_mib: 0,
            });
        }
        Ok(())
    }
}

/// Every phase of a flash on targets in memory: no root, no device.
#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::io::device::Access;
    use crate::io::medium::Medium;
    use crate::progress::Progress;

    /// A drive in memory that records every write and can fail, lie or end early.
    #[derive(Default)]
    pub(super) struct Memory {
        pub(super) bytes: Mutex<Vec<u8>>,
        writes: Mutex<Vec<(u64, usize)>>,
        /// The write covering this offset fails, and every write after it (a stick pulled
        /// mid-write): writes elsewhere before it, such as the wipe of the drive's end, succeed.
        fail_at: Option<u64>,
        /// Set once the write at `fail_at` failed.
        gone: std::sync::atomic::AtomicBool,
        /// Reads see this byte flipped (a stick that does not keep what it was given).
        flip: Option<u64>,
        /// Reads end here (a drive smaller than it says).
        ends_at: Option<u64>,
        /// When a write starts at the first offset, the byte at the second changes, once (a
        /// drive that loses what it held, or a write that lands elsewhere).
        spoil: Mutex<Option<(u64, u64)>>,
        /// The write covering this offset hangs until [`Memory::release`] (a failing stick).
        hang_at: Option<u64>,
        pub(super) hung: std::sync::atomic::AtomicBool,
        released: (Mutex<bool>, std::sync::Condvar),
        /// Each write takes this long (a stick slower than progress reports are throttled).
        pace: Option<std::time::Duration>,
    }

    impl Memory {
        pub(super) fn hanging_at(at: u64) -> Self {
            Self {
                hang_at: Some(at),
                ..Self::default()
            }
        }

        pub(super) fn paced(pace: std::time::Duration) -> Self {
            Self {
                pace: Some(pace),
                ..Self::default()
            }
        }

        /// Lets writes that hang go on.
        pub(super) fn release(&self) {
            *self.released.0.lock().unwrap() = true;
            self.released.1.notify_all();
        }

        pub(super) fn writes(&self) -> usize {
            self.writes.lock().unwrap().len()
        }
    }

    impl Medium for Arc<Memory> {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            use std::sync::atomic::Ordering;
            if self
                .fail_at
                .is_some_and(|at| (offset..offset + buf.len() as u64).contains(&at))
            {
                self.gone.store(true, Ordering::SeqCst);
            }
            if self.gone.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("the stick went away"));
            }
            if let Some(pace) = self.pace {
                std::thread::sleep(pace);
            }
            if self
                .hang_at
                .is_some_and(|at| (offset..offset + buf.len() as u64).contains(&at))
            {
                self.hung.store(true, Ordering::SeqCst);
                let (released, wake) = &self.released;
                let released = released.lock().unwrap();
                drop(wake.wait_while(released, |r| !*r).unwrap());
            }
            let mut bytes = self.bytes.lock().unwrap();
            let end = offset as usize + buf.len();
            if bytes.len() < end {
                bytes.resize(end, 0xEE);
            }
            bytes[offset as usize..end].copy_from_slice(buf);
            let mut spoil = self.spoil.lock().unwrap();
            if let Some((_, at)) = spoil.take_if(|(when, _)| *when == offset) {
                bytes[at as usize] ^= 0x55;
            }
            self.writes.lock().unwrap().push((offset, buf.len()));
            Ok(())
        }

        fn read_full_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            let bytes = self.bytes.lock().unwrap();
            let end = (bytes.len() as u64).min(self.ends_at.unwrap_or(u64::MAX));
            let n = end.saturating_sub(offset).min(buf.len() as u64) as usize;
            buf[..n].copy_from_slice(&bytes[offset as usize..offset as usize + n]);
            if let Some(at) = self
                .flip
                .filter(|at| (offset..offset + n as u64).contains(at))
            {
                buf[(at - offset) as usize] ^= 0xFF;
            }
            Ok(n)
        }

        fn sync(&self) -> std::io::Result<()> {
            Ok(())
        }

        fn drop_cache(&self) {}
    }

    pub(super) fn drive(memory: &Arc<Memory>, size: u64, lbs: u32, direct: bool) -> Target {
        memory.bytes.lock().unwrap().resize(size as usize, 0xEE);
        Target {
            medium: Box::new(memory.clone()),
            capacity: Some(size),
            file_len: None,
            path: PathBuf::from("memory"),
            kind: TargetKind::BlockDevice,
            logical_block_size: lbs,
            direct,
            created: None,
            access: Access::Direct,
        }
    }

    pub(super) fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    fn flash_memory(
        bytes: &[u8],
        targets: Vec<Target>,
        cancel: &CancellationToken,
        progress: &dyn ProgressSink,
    ) -> Vec<TargetReport> {
        flash_memory_with(&FlashOptions::default(), bytes, targets, cancel, progress)
    }

    /// One target, no progress, no cancel.
    fn flash_one(bytes: &[u8], target: Target) -> TargetReport {
        let cancel = CancellationToken::new();
        flash_memory(bytes, vec![target], &cancel, &crate::progress::NoProgress).remove(0)
    }

    fn flash_memory_with(
        options: &FlashOptions,
        bytes: &[u8],
        targets: Vec<Target>,
        cancel: &CancellationToken,
        progress: &dyn ProgressSink,
    ) -> Vec<TargetReport> {
        let expect = Expect {
            name: PathBuf::from("image"),
            sha256: Some(Sha256Digest::of_hasher(Sha256::new_with_prefix(bytes))),
            check_source: false,
            size: Some(bytes.len() as u64),
            announced_size: None,
            tail: None,
        };
        let onto = targets.into_iter().map(|t| Onto::new(t, None)).collect();
        flash_stream(&expect, &mut &bytes[..], onto, options, cancel, progress).targets
    }

    #[test]
    fn a_target_a_little_larger_than_the_image_loses_its_old_end_too() {
        let memory = Arc::new(Memory::default());
        let bytes = image(4 * MIB as usize);
        let report = &flash_one(&bytes, drive(&memory, 4 * MIB + 32 * 1024, 512, true));
        assert!(report.ok, "{:?}", report.error);
        let held = memory.bytes.lock().unwrap();
        assert_eq!(&held[..bytes.len()], &bytes[..]);
        assert!(
            held[bytes.len()..].iter().all(|b| *b == 0),
            "the old end survived"
        );
    }

    #[test]
    fn an_existing_file_loses_its_old_end_and_keeps_its_length() {
        let memory = Arc::new(Memory::default());
        let mut file = drive(&memory, 8 * MIB, 512, false);
        (file.capacity, file.file_len, file.kind) = (None, Some(8 * MIB), TargetKind::File);
        let bytes = image(3 * MIB as usize + 5);
        let report = &flash_one(&bytes, file);
        assert!(report.ok, "{:?}", report.error);
        let held = memory.bytes.lock().unwrap();
        assert_eq!(held.len() as u64, 8 * MIB);
        assert_eq!(&held[..bytes.len()], &bytes[..]);
        assert!(held[(8 * MIB - END_WIPE) as usize..]
            .iter()
            .all(|b| *b == 0));
        assert!(held[4 * MIB as usize..(8 * MIB - END_WIPE) as usize]
            .iter()
            .all(|b| *b == 0xEE));
    }

    /// Sizes around every boundary the writer has: the block size, the held first MiB, a chunk.
    #[test]
    fn any_size_is_written_whole_padded_to_the_block_and_proven() {
        let sizes = [
            1,
            511,
            4096,
            4097,
            MIB - 1,
            MIB,
            MIB + 1,
            4 * MIB + 4095,
            9 * MIB + 7,
        ];
        for size in sizes {
            for (lbs, direct) in [(512, true), (4096, true), (512, false)] {
                let bytes = image(size as usize);
                let memory = Arc::new(Memory::default());
                let capacity = 16 * MIB;
                let report = &flash_one(&bytes, drive(&memory, capacity, lbs, direct));
                let case = format!("{size} bytes, {lbs}-byte blocks, direct {direct}");
                assert!(report.ok, "{case}: {:?}", report.error);
                let expected = Sha256Digest::of_hasher(Sha256::new_with_prefix(&bytes));
                assert_eq!(report.verified_sha256, Some(expected), "{case}");
                let held = memory.bytes.lock().unwrap();
                assert_eq!(&held[..bytes.len()], &bytes[..], "{case}");
                // Nothing past the image but its padding to the block, and the end wipe.
                let padded = if direct {
                    device::round_up(size, u64::from(lbs))
                } else {
                    size
                };
                let written_past = memory
                    .writes
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(at, len)| {
                        at + *len as u64 > padded.max(HEAD) && *at < capacity - END_WIPE
                    })
                    .count();
                assert_eq!(written_past, 0, "{case}");
                assert!(
                    held[padded.max(HEAD) as usize..(capacity - END_WIPE) as usize]
                        .iter()
                        .all(|b| *b == 0xEE),
                    "{case}"
                );
                assert!(
                    held[(capacity - END_WIPE) as usize..]
                        .iter()
                        .all(|b| *b == 0),
                    "{case}: an old backup GPT is wiped"
                );
            }
        }
    }

    #[test]
    fn the_first_mib_is_wiped_first_and_written_last() {
        let bytes = image(3 * MIB as usize);
        let memory = Arc::new(Memory::default());
        let reports = flash_memory(
            &bytes,
            vec![drive(&memory, 8 * MIB, 512, true)],
            &CancellationToken::new(),
            &crate::progress::NoProgress,
        );
        assert!(reports[0].ok);
        let writes = memory.writes.lock().unwrap().clone();
        assert_eq!(
            writes.first(),
            Some(&(0, HEAD as usize)),
            "the wipe comes first"
        );
        assert_eq!(
            writes.last(),
            Some(&(0, HEAD as usize)),
            "the head comes last"
        );
        assert!(writes[1..writes.len() - 1]
            .iter()
            .all(|(at, _)| *at >= HEAD));
    }

    #[test]
    fn a_failing_write_fails_that_target_with_its_first_mib_wiped() {
        // Chunks of the image: [0, 4 MiB) (its first MiB held back) and [4, 6) MiB. The stick
        // goes away in the second, after the first chunk's image bytes were written.
        let bytes = image(6 * MIB as usize);
        let broken = Arc::new(Memory {
            fail_at: Some(5 * MIB),
            ..Memory::default()
        });
        let good = Arc::new(Memory::default());
        let reports = flash_memory(
            &bytes,
            vec![
                drive(&broken, 8 * MIB, 512, true),
                drive(&good, 8 * MIB, 512, true),
            ],
            &CancellationToken::new(),
            &crate::progress::NoProgress,
        );
        assert!(!reports[0].ok);
        assert!(reports[0].error.as_deref().unwrap().contains("went away"));
        assert!(
            broken.gone.load(std::sync::atomic::Ordering::SeqCst),
            "the failure came at the image's 5th MiB, not before"
        );
        assert_eq!(
            &broken.bytes.lock().unwrap()[MIB as usize..4 * MIB as usize],
            &bytes[MIB as usize..4 * MIB as usize],
            "image bytes were written before the write that failed"
        );
        assert!(head_wiped(&broken));
        assert!(
            reports[1].ok,
            "the other target finishes: {:?}",
            reports[1].error
        );
        assert_eq!(&good.bytes.lock().unwrap()[..bytes.len()], &bytes[..]);
    }

    #[test]
    fn a_drive_that_reads_back_wrong_or_short_is_caught() {
        let bytes = image(5 * MIB as usize);
        let liar = Arc::new(Memory {
            flip: Some(3 * MIB + 5),
            ..Memory::default()
        });
        let short = Arc::new(Memory {
            ends_at: Some(2 * MIB),
            ..Memory::default()
        });
        let reports = flash_memory(
            &bytes,
            vec![
                drive(&liar, 8 * MIB, 512, true),
                drive(&short, 8 * MIB, 512, true),
            ],
            &CancellationToken::new(),
            &crate::progress::NoProgress,
        );
        let lie = reports[0].error.as_deref().unwrap();
        assert!(
            lie.contains("does not hold the image") && lie.contains("MiB 3"),
            "{lie}"
        );
        let ended = reports[1].error.as_deref().unwrap();
        assert!(ended.contains("ends after"), "{ended}");
        for memory in [&liar, &short] {
            assert!(head_wiped(memory));
        }
    }

    /// Cancelled once the read-back starts: the target stops there, its first MiB still wiped.
    #[test]
    fn cancel_between_writing_and_reading_back_leaves_the_drive_unbootable() {
        let bytes = image(6 * MIB as usize);
        let memory = Arc::new(Memory::default());
        let cancel = CancellationToken::new();
        let trip = cancel.clone();
        let progress = move |p: Progress| {
            if p.stage == Stage::ReadBack {
                trip.cancel();
            }
        };
        let reports = flash_memory(
            &bytes,
            vec![drive(&memory, 8 * MIB, 512, true)],
            &cancel,
            &progress,
        );
        assert_eq!(reports[0].error_kind, Some(ErrorKind::Cancelled));
        assert!(head_wiped(&memory));
    }

    #[test]
    fn an_image_that_does_not_fit_stops_at_the_drive_end() {
        let bytes = image(6 * MIB as usize);
        let memory = Arc::new(Memory::default());
        let reports = flash_memory(
            &bytes,
            vec![drive(&memory, 4 * MIB, 512, true)],
            &CancellationToken::new(),
            &crate::progress::NoProgress,
        );
        assert!(reports[0]
            .error
            .as_deref()
            .unwrap()
            .contains("does not fit"));
        assert_eq!(
            memory.bytes.lock().unwrap().len(),
            4 * MIB as usize,
            "nothing past the end"
        );
    }

    pub(super) fn head_wiped(memory: &Memory) -> bool {
        memory.bytes.lock().unwrap()[..HEAD as usize]
            .iter()
            .all(|b| *b == 0)
    }

    /// A drive in memory already holding `bytes`, the rest of it 0xEE.
    fn holding(bytes: &[u8], size: u64, lbs: u32, direct: bool) -> (Arc<Memory>, Target) {
        let memory = Arc::new(Memory::default());
        let target = drive(&memory, size, lbs, direct);
        memory.bytes.lock().unwrap()[..bytes.len()].copy_from_slice(bytes);
        (memory, target)
    }

    /// The writes other than the wipe, the end wipe and the head.
    fn body_writes(memory: &Memory, capacity: u64) -> Vec<(u64, usize)> {
        let writes = memory.writes.lock().unwrap().clone();
        writes[1..writes.len() - 1]
            .iter()
            .filter(|(at, _)| *at < capacity - END_WIPE)
            .copied()
            .collect()
    }

    #[test]
    fn a_drive_that_holds_the_image_is_read_back_whole_and_only_its_first_mib_written() {
        for size in [1, MIB + 1, 4 * MIB + 4095, 9 * MIB + 7] {
            for (lbs, direct) in [(512, true), (4096, true), (512, false)] {
                let case = format!("{size} bytes, {lbs}-byte blocks, direct {direct}");
                let bytes = image(size as usize);
                let (memory, target) = holding(&bytes, 16 * MIB, lbs, direct);
                let report = &flash_one(&bytes, target);
                assert!(report.ok, "{case}: {:?}", report.error);
                let expected = Sha256Digest::of_hasher(Sha256::new_with_prefix(&bytes));
                assert_eq!(report.verified_sha256, Some(expected), "{case}");
                assert_eq!(report.bytes_written, size.min(HEAD), "{case}");
                assert_eq!(report.bytes_skipped, size.saturating_sub(HEAD), "{case}");
                assert_eq!(body_writes(&memory, 16 * MIB), vec![], "{case}");
                assert_eq!(&memory.bytes.lock().unwrap()[..bytes.len()], &bytes[..]);
            }
        }
        // Asked to, every byte is written again.
        let bytes = image(6 * MIB as usize);
        let (memory, target) = holding(&bytes, 16 * MIB, 512, true);
        let options = FlashOptions {
            skip_equal: false,
            ..FlashOptions::default()
        };
        let report = &flash_memory_with(
            &options,
            &bytes,
            vec![target],
            &CancellationToken::new(),
            &crate::progress::NoProgress,
        )[0];
        assert!(report.ok, "{:?}", report.error);
        assert_eq!((report.bytes_written, report.bytes_skipped), (6 * MIB, 0));
        assert_eq!(
            body_writes(&memory, 16 * MIB),
            vec![(MIB, 3 * MIB as usize), (4 * MIB, 2 * MIB as usize)]
        );
    }

    #[test]
    fn a_drive_equal_but_for_one_byte_gets_that_mib_written_and_read_back() {
        let bytes = image(9 * MIB as usize + 7);
        let mut held = bytes.clone();
        held[5 * MIB as usize + 3] ^= 1;
        let (memory, target) = holding(&held, 16 * MIB, 512, true);
        let report = &flash_one(&bytes, target);
        assert!(report.ok, "{:?}", report.error);
        assert_eq!(
            body_writes(&memory, 16 * MIB),
            vec![(5 * MIB, MIB as usize)]
        );
        assert_eq!(report.bytes_written, 2 * MIB);
        assert_eq!(report.bytes_skipped, bytes.len() as u64 - 2 * MIB);
        assert_eq!(&memory.bytes.lock().unwrap()[..bytes.len()], &bytes[..]);
    }

    /// The read that let a chunk be skipped proves nothing at the end: a byte that changes
    /// after it (here when a later chunk is written) fails the read-back.
    #[test]
    fn a_chunk_found_equal_and_changed_before_the_end_is_caught() {
        let bytes = image(12 * MIB as usize);
        let memory = Arc::new(Memory {
            spoil: Mutex::new(Some((8 * MIB, 2 * MIB + 10))),
            ..Memory::default()
        });
        let target = drive(&memory, 16 * MIB, 512, true);
        memory.bytes.lock().unwrap()[..8 * MIB as usize]
            .copy_from_slice(&bytes[..8 * MIB as usize]);
        let report = &flash_one(&bytes, target);
        assert!(!report.ok);
        assert!(report.bytes_skipped >= 7 * MIB, "{}", report.bytes_skipped);
        let error = report.error.as_deref().unwrap();
        assert!(
            error.contains("does not hold the image") && error.contains("MiB 2"),
            "{error}"
        );
        assert!(head_wiped(&memory));
    }

    #[test]
    fn progress_says_what_the_drive_already_held() {
        let bytes = image(9 * MIB as usize);
        let (_, target) = holding(&bytes, 16 * MIB, 512, true);
        let seen = Mutex::new(Vec::new());
        let progress = |p: Progress| {
            if p.stage == Stage::Write {
                seen.lock().unwrap().push((p.done, p.skipped));
            }
        };
        let report = &flash_memory(&bytes, vec![target], &CancellationToken::new(), &progress)[0];
        assert!(report.ok, "{:?}", report.error);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.last(), Some(&(9 * MIB, Some(8 * MIB))), "{seen:?}");
    }

    #[test]
    fn when_no_target_is_left_the_error_names_each_with_the_most_telling_kind() {
        let mismatch = Error::DigestMismatch {
            what: "image",
            expected: "a".into(),
            actual: "b".into(),
        };
        let outcome = Outcome {
            source: Err(Error::NoTargetLeft),
            targets: vec![
                TargetReport::failed(Path::new("/dev/sdb"), &Error::BadInput("too small".into())),
                TargetReport::failed(Path::new("/dev/sdc"), &mismatch),
            ],
        };
        let Err(err) = outcome.sent() else {
            panic!("no target was left")
        };
        assert_eq!(err.kind(), ErrorKind::DigestMismatch);
        assert_eq!(
            err.to_string(),
            format!("every target failed: /dev/sdb: too small; /dev/sdc: {mismatch}")
        );
    }
}

/// Targets with bytes of their own over the shared image (a lab's sticks), in memory.
#[cfg(test)]
#[path = "writer_overlay_tests.rs"]
mod overlay_tests;

/// One target cancelled alone while the others go on, in memory.
#[cfg(test)]
#[path = "writer_cancel_tests.rs"]
mod cancel_tests;

/// The Write stage's progress total when only an announced size is known, in memory.
#[cfg(test)]
#[path = "writer_progress_tests.rs"]
mod progress_tests;
