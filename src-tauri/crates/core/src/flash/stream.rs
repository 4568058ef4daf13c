//! One streaming pass from a URL (or a local compressed file) to verified drives, at the speed
//! of the slowest stage:
//!
//! ```text
//! network ─► archive SHA-256 + cache temp file ─► decoder (liblzma's threads)
//!         ─► image SHA-256 ─► every target's writer ─► read-back
//! ```
//!
//! Every stage runs at once, joined by bounded queues, so memory stays bounded whatever the
//! image's size. Top to bottom:
//! 1. [`open`]: settle the expected archive digest exactly as `fetch` does, before any byte of the
//!    archive; take the asset's cache lock; choose where the bytes come from: the cached archive
//!    (re-hashed as it streams) or the network (hashed and kept in a cache temp file as it
//!    streams). A decoded image in the cache is never written: only bytes decoded from an archive
//!    proven in this same run are (decoding is far faster than any drive). Read the image's size
//!    from the archive's own records (`image_size`: from the file, or one `Range` request for a
//!    URL) so a too-small drive, or an image over the size limit, is refused before anything is
//!    written. [`open_file`] does the same for an operator's compressed file: hashed first, so
//!    its digest can be checked and confirmed before any target is touched, then re-hashed as
//!    it streams (it must not change meanwhile).
//! 2. [`run`]: open the approved targets, run that origin on its own thread, decode what it
//!    sends, and write it with `writer::flash_stream`, which hashes the image on the way and reads
//!    every target back.
//!
//! The archive's digest is checked when its last byte has arrived and before the writers learn
//! that the image is complete. A mismatch fails every target and, the first MiB being written
//! last, leaves none looking bootable. The cache ends as a plain `fetch` leaves its archive:
//! verified, or absent. (The decoded image is not kept: `fetch` decodes it again when asked.)

use std::fs::File;
use std::io::{BufRead, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio::runtime::Handle;
use url::Url;

use crate::error::{self, io_at, Error, Result};
use crate::fetch::cache::{AssetLock, Cache};
use crate::fetch::decompress::{self, Format};
use crate::fetch::digest::Sha256Digest;
use crate::fetch::http::{BodySink, Http};
use crate::fetch::image_size::{self, ImageSize};
use crate::fetch::sha512::Sha512Digest;
use crate::fetch::unwrap::ImageInside;
use crate::fetch::{self, archive_cap, DigestSource, FetchRequest, HashingFile};
use crate::flash;
use crate::flash::rules::{Approved, Chosen, TargetOptions};
use crate::flash::target_cancel::TargetCancel;
use crate::flash::writer::{self, Expect, FlashOptions, TargetReport};
use crate::image_kind::{self, ImageKind};
use crate::io::drives::SystemRoots;
use crate::progress::{ProgressSink, Reporter, Stage};
use crate::sources;
use crate::{CancellationToken, IO_CHUNK};

/// Archive bytes in flight between the origin and the decoder, in packets of `IO_CHUNK`; the
/// socket and the decoder's own input buffers hold more.
const PACKETS: usize = 4;

/// Whether an image named by a URL or a local path can stream: a URL, or a compressed file. A
/// raw file is written as it is; a path that cannot be read is left to the file path's errors.
pub fn streams(image: &str) -> bool {
    crate::fetch::is_url(image)
        || Format::of_file(Path::new(image)).is_ok_and(|format| format != Format::Raw)
}

/// A stream ready to flash: what it will be checked against, and where its bytes come from.
pub struct Opened {
    /// The URL or the local file, as named in messages.
    pub source: String,
    /// The archive's published digest (a local file's: as hashed when opened); `None` only when
    /// the caller accepted an unverified download.
    pub expected: Option<Sha256Digest>,
    /// The `.sha512` file's digest, when that is what vouches for the download (`expected` is
    /// `None` then): it is hashed with both as it streams in.
    pub expected_sha512: Option<Sha512Digest>,
    pub digest_source: DigestSource,
    /// Who signed the expected digest (an Image Factory's key), when it was signed.
    pub signed_by: Option<String>,
    /// What the operator should know about what vouches for it (a key pinned now, a keyless
    /// signature not checked).
    pub warnings: Vec<String>,
    /// A factory key first seen now: pinned once the archive streamed in and matched what it
    /// signed.
    pin: Option<crate::fetch::factory_signature::PendingPin>,
    /// What the archive's records say of the image's size; `None` when they cannot tell before
    /// decoding (no ranges, no recorded size): a too-small drive then fails at its end.
    pub image_size: Option<ImageSize>,
    /// What the decoded image is, from its first bytes decoded when opened: known for an archive
    /// file (the operator's or a cached one), `None` for a download until its bytes arrive (it is
    /// classified then, before any target is opened).
    pub image_kind: Option<ImageKind>,
    /// The tar or zip entry the image is, when known with its kind.
    pub image_inside: Option<ImageInside>,
    origin: Origin,
    /// The archive: its place in the cache, or the operator's file.
    archive_path: PathBuf,
    /// The archive file as it was proven (hashed) when opened; it streams from this descriptor.
    archive_file: Option<File>,
    max_image_size: u64,
    /// The cache's lock on a URL's asset.
    _lock: Option<AssetLock>,
}

enum Origin {
    /// An archive file, re-hashed as it streams.
    Archive(Archive),
    Network(Url),
}

/// Whose archive file streams: what that changes is said here, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Archive {
    /// Cached by an earlier fetch: deleted if it no longer matches, so the next run downloads it.
    Cached,
    /// The operator's own file: no target may overwrite it and no failure deletes it.
    Operators,
}

impl Archive {
    /// What its progress bar shows: the operator's file is read as fast as it is decoded.
    fn stage(self) -> Stage {
        match self {
            Archive::Cached => Stage::CheckCache,
            Archive::Operators => Stage::Decompress,
        }
    }

    /// The error for a file that no longer hashes to `expected`, after deleting a cached copy.
    fn changed(
        self,
        cache: &Cache,
        path: &Path,
        expected: Sha256Digest,
        actual: Sha256Digest,
    ) -> Error {
        let what = match self {
            Archive::Operators => "image file (it changed while it was written)",
            Archive::Cached => match cache.discard(path) {
                Ok(()) => "cached archive (it was deleted: run again to download it afresh)",
                Err(e) => return e,
            },
        };
        Error::DigestMismatch {
            what,
            expected: expected.hex(),
            actual: actual.hex(),
        }
    }
}

impl Opened {
    /// The operator's file, which the targets must not include.
    fn operators_file(&self) -> Option<&Path> {
        matches!(self.origin, Origin::Archive(Archive::Operators))
            .then_some(self.archive_path.as_path())
    }
}

/// What a streamed flash did.
#[derive(Debug)]
pub struct Streamed {
    pub archive_sha256: Sha256Digest,
    pub digest_source: DigestSource,
    /// Where the verified archive is cached; `None` when keeping it failed (the flash did not).
    pub archive_path: Option<PathBuf>,
    pub image_sha256: Sha256Digest,
    pub image_size: u64,
    pub image_kind: ImageKind,
    pub image_inside: Option<ImageInside>,
    pub targets: Vec<TargetReport>,
}

pub async fn open(
    http: &Http,
    cache: &Cache,
    req: &FetchRequest,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Opened> {
    let settled = fetch::expected_digest(http, cache, req, cancel).await?;
    let expected = settled.sha256;
    let archive_path = req.archive_in(cache);
    let lock = cache.lock(&archive_path, cancel).await?;
    // Only a published digest can prove a cached archive (an unverified one is downloaded
    // again), and it is proven before its records are believed: a damaged copy must not refuse
    // a drive, it is deleted and downloaded again. (It is re-hashed as it streams too.)
    let proven = match expected {
        Some(expected) => {
            fetch::reuse_archive(cache, &archive_path, expected, cancel, progress).await?
        }
        None => None,
    };
    let source = req.url.to_string();
    let limit = req.max_image_size;
    let (origin, records, archive_file) = match proven {
        Some((_, file)) => {
            let records = Records::of_file(&file, &archive_path, &source, limit)?;
            (Origin::Archive(Archive::Cached), records, Some(file))
        }
        None => {
            let records = Records::of_url(http, &req.url, limit, cancel).await?;
            (Origin::Network(req.url.clone()), records, None)
        }
    };
    Ok(Opened {
        source,
        expected,
        expected_sha512: settled.sha512,
        digest_source: settled.source,
        signed_by: settled.signature.as_ref().map(|s| s.signer()),
        warnings: settled.warnings,
        pin: settled.pin,
        image_size: records.size,
        image_kind: records.kind,
        image_inside: records.inside,
        origin,
        archive_path,
        archive_file,
        max_image_size: req.max_image_size,
        _lock: Some(lock),
    })
}

/// Opens an operator's compressed image file: hashed and checked against `expected` (if given)
/// now, so nothing is written from a file that does not match. The cache is not involved.
pub async fn open_file(
    path: &Path,
    expected: Option<Sha256Digest>,
    max_image_size: u64,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Opened> {
    let file = sources::hash_local(path, expected, cancel, progress).await?;
    let source = file.path.display().to_string();
    let records = Records::of_file(&file.file, &file.path, &source, max_image_size)?;
    Ok(Opened {
        source,
        expected: Some(file.sha256),
        expected_sha512: None,
        digest_source: file.digest_source,
        signed_by: None,
        warnings: Vec::new(),
        pin: None,
        image_size: records.size,
        image_kind: records.kind,
        image_inside: records.inside,
        origin: Origin::Archive(Archive::Operators),
        archive_path: file.path,
        archive_file: Some(file.file),
        max_image_size,
        _lock: None,
    })
}

/// What an archive's own records say of its image before a byte of it is written, as a flash
/// and a probe (`flash::probe`) read them: an image over the size limit is refused now.
pub(crate) struct Records {
    /// See `image_size`.
    pub size: Option<ImageSize>,
    /// From a file's first decoded bytes (see [`peek_kind`]); a download's is known only as it
    /// streams.
    pub kind: Option<ImageKind>,
    pub inside: Option<ImageInside>,
}

impl Records {
    /// An archive file's records: its size, and its image's kind from its first decoded bytes
    /// (a kind that is not written is refused now).
    pub(crate) fn of_file(file: &File, path: &Path, source: &str, limit: u64) -> Result<Self> {
        let size = image_size::of_open_file(file, path).map_err(io_at(path))?;
        image_size::check_limit(size, limit)?;
        let (kind, inside, size) = peek_kind(file, path, source, limit, size)?;
        Ok(Self { size, kind, inside })
    }

    /// A URL's records: its image's size, from one `Range` request (a few for a multi-stream xz).
    pub(crate) async fn of_url(
        http: &Http,
        url: &Url,
        limit: u64,
        cancel: &CancellationToken,
    ) -> Result<Self> {
        let size = image_size::of_url(http, url, cancel).await;
        image_size::check_limit(size, limit)?;
        Ok(Self {
            size,
            kind: None,
            inside: None,
        })
    }
}

/// The kind of the image an archive file decodes to, from its first decoded bytes (see
/// `image_kind`), and the tar or zip entry it is unwrapped from: a kind that is not written
/// refuses the flash now, before any target is touched. The kind is `None` when those bytes
/// cannot be decoded: the flash then fails on them as it streams, with the archive's digest
/// checked first. `size` (the archive's records) is dropped for an image unwrapped from a tar
/// or zip: those records are of the tar or zip, not of the image.
fn peek_kind(
    file: &File,
    path: &Path,
    source: &str,
    limit: u64,
    size: Option<ImageSize>,
) -> Result<(Option<ImageKind>, Option<ImageInside>, Option<ImageSize>)> {
    let peeked = (|| {
        let format = Format::of_open(file, path).ok()?;
        let mut file = file;
        file.rewind().ok()?;
        let decoder = decompress::decoder(std::io::BufReader::new(file), format, path, limit);
        let mut decoder = decoder.ok()?;
        Some((image_kind::read_head(&mut decoder), decoder.inside()))
    })();
    let head = match peeked {
        Some((Ok(head), inside)) => (head, inside),
        // An archive that holds no one disk image is refused now.
        Some((Err(e), _)) => match error::carried(e) {
            Some(refused @ Error::BadInput(_)) => return Err(refused),
            _ => return Ok((None, None, size)),
        },
        None => return Ok((None, None, size)),
    };
    let (head, inside) = head;
    let kind = image_kind::classify(&head);
    match kind.refusal(source) {
        Some(refusal) => Err(Error::BadInput(refusal)),
        None => {
            let size = if inside.is_some() { None } else { size };
            Ok((Some(kind), inside, size))
        }
    }
}

/// Checks every target against the rules (one refusal refuses all; the cache's drive is
/// protected). `None` when some target can only be written through the privileged helper, which
/// takes the image as a file: prepare it with `sources::prepare` and flash that instead.
pub fn approve(
    opened: &Opened,
    targets: &[Chosen],
    options: &TargetOptions,
    cache: &Cache,
    roots: &SystemRoots,
) -> Result<Option<Vec<Approved>>> {
    let mut protected = vec![cache.root()];
    protected.extend(opened.operators_file());
    let size = opened.image_size.map(|s| s.bytes);
    let approved = flash::approve_all(targets, size, options, &protected, roots)?;
    Ok((!flash::needs_helper(&approved)).then_some(approved))
}

/// Streams the image to the targets (blocking; `rt` runs the download): its first decoded bytes
/// are classified before any target is opened (a kind that is not written refuses the flash
/// with every target untouched), then the targets are opened and written. Returns the source's
/// error when the image could not be had whole and verified; every target has then failed with
/// its first MiB wiped (a fixed VHD, told only by its footer at the image's end, too).
#[allow(clippy::too_many_arguments)]
pub fn run(
    opened: Opened,
    targets: &[Approved],
    roots: &SystemRoots,
    http: &Http,
    cache: &Cache,
    rt: &Handle,
    options: &FlashOptions,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Streamed> {
    // Stops the origin as soon as the writers are done, whatever the reason, or once every
    // target was cancelled on its own (its reader would wait for the next chunk first).
    let stop = cancel.child_token();
    TargetCancel::stop_when_all_cancelled(targets.iter().map(|t| &t.cancel), &stop);
    let (tx, rx) = sync_channel::<Packet>(PACKETS);
    std::thread::scope(|scope| {
        let origin = scope.spawn(|| match &opened.origin {
            Origin::Network(url) => from_network(
                rt,
                http,
                cache,
                url,
                &opened.archive_path,
                (opened.expected, opened.expected_sha512),
                archive_cap(opened.max_image_size),
                tx,
                &stop,
                progress,
            ),
            Origin::Archive(archive) => from_file(&opened, *archive, cache, tx, &stop, progress),
        });
        let mut input = Received::new(rx);
        let mut outcome = decode_and_write(
            &opened, &mut input, targets, roots, options, cancel, progress,
        );
        if let Ok((
            _,
            _,
            writer::Outcome {
                source: source @ Err(Error::Corrupt { .. }),
                ..
            },
        )) = &mut outcome
        {
            // Undecodable bytes are most often not the published ones: if the archive fails
            // its digest, that is the cause to report (and a bad cached copy is deleted).
            if let Err(mismatch) = input.drain() {
                *source = Err(mismatch);
            }
        }
        // Closing the queue and the token stops the origin wherever it waits.
        drop(input);
        stop.cancel();
        let produced = origin.join().expect("the download thread panicked");
        if let (Some(_), Some(pin)) = (&produced, &opened.pin) {
            // The archive matched the signed digest: only now is a key first seen pinned. The
            // flash does not depend on it, so a failure to keep it is only logged.
            if let Err(e) = pin.commit(cache) {
                tracing::warn!(error = %e, "the factory's key could not be pinned");
            }
        }
        let (image_kind, image_inside, outcome) = outcome?;
        let (sent, targets) = outcome.sent()?;
        let produced =
            produced.expect("the decoder ends only after the origin verified the archive");
        Ok(Streamed {
            archive_sha256: produced.sha256,
            digest_source: opened.digest_source,
            archive_path: produced.cached,
            image_sha256: sent.sha256,
            image_size: sent.size,
            image_kind,
            image_inside,
            targets,
        })
    })
}

/// Picks the decoder from the archive's first bytes, classifies the image from its first decoded
/// bytes (refused: no target is opened), opens the targets and writes what the decoder makes.
#[allow(clippy::too_many_arguments)]
fn decode_and_write(
    opened: &Opened,
    input: &mut Received,
    targets: &[Approved],
    roots: &SystemRoots,
    options: &FlashOptions,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<(ImageKind, Option<ImageInside>, writer::Outcome)> {
    let name = PathBuf::from(&opened.source);
    let format = Format::detect(input.fill_buf().map_err(|e| error::from_io(&name, e))?);
    tracing::info!(
        format = format.name(),
        "streaming the archive through its decoder"
    );
    let mut decoded = decompress::decoder(input, format, &name, opened.max_image_size)?;
    // The first decoded bytes, read before any target is opened; a read that fails is replayed
    // to the writers (the archive's digest is then checked first, as for any undecodable byte).
    let (head, failed) = {
        let mut head = Vec::with_capacity(image_kind::HEAD);
        let failed = (&mut decoded)
            .take(image_kind::HEAD as u64)
            .read_to_end(&mut head)
            .err();
        (head, failed)
    };
    // An archive that holds no one disk image is refused with every target untouched.
    let mut failed = failed;
    if let Some(refused) = failed.take_if(|e| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
            .is_some_and(|inner| matches!(inner, Error::BadInput(_)))
    }) {
        return Err(error::from_io(&name, refused));
    }
    let kind = image_kind::classify(&head);
    if failed.is_none() {
        if let Some(refusal) = kind.refusal(&opened.source) {
            return Err(Error::BadInput(refusal));
        }
    }
    let inside = decoded.inside();
    let opened_targets = flash::open_targets(targets, roots)?;
    let source = opened.source.clone();
    let rest = std::io::Cursor::new(head).chain(Failed(failed).chain(decoded));
    let mut decoded = image_kind::VhdFooterCheck::new(
        rest,
        Box::new(move || {
            error::into_io(Error::BadInput(
                ImageKind::Vhd.refusal(&source).expect("a VHD is refused"),
            ))
        }),
    );
    // What the archive records of the image's size, when exact, is the writes' progress total
    // (never a bound: see `Expect`); a tar's or a zip's records are not of the image inside.
    let announced_size = opened
        .image_size
        .filter(|size| size.exact && inside.is_none())
        .map(|size| size.bytes);
    let expect = Expect {
        name,
        sha256: None,
        check_source: true,
        size: None,
        announced_size,
        tail: None,
    };
    Ok((
        kind,
        inside,
        writer::flash_stream(
            &expect,
            &mut decoded,
            opened_targets
                .into_iter()
                .zip(targets)
                .map(|(t, approved)| writer::Onto {
                    cancel: approved.cancel.clone(),
                    ..writer::Onto::new(t, None)
                })
                .collect(),
            options,
            cancel,
            progress,
        ),
    ))
}

/// A reader that fails once with the error it holds, else is empty: the decoder's error met
/// while peeking at its first bytes, replayed after them.
struct Failed(Option<std::io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// What the origin sends the decoder.
enum Packet {
    Data(Vec<u8>),
    /// The archive ended: verified (with its digest), or not.
    End(Result<Sha256Digest>),
}

/// What the origin leaves when the archive was whole and verified.
struct Produced {
    sha256: Sha256Digest,
    /// The archive's place in the cache, once it is there.
    cached: Option<PathBuf>,
}

/// The decoder's input: the origin's packets, ending only at a verified end. Its read errors
/// carry the origin's error (see `error::from_io`).
struct Received {
    rx: Receiver<Packet>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Received {
    fn new(rx: Receiver<Packet>) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            pos: 0,
            ended: false,
        }
    }
}

impl Received {
    /// Reads to the archive's end; `Err` with the digest mismatch if it has one.
    fn drain(&mut self) -> Result<(), Error> {
        loop {
            match self.fill_buf() {
                Ok([]) => return Ok(()),
                Ok(data) => {
                    let n = data.len();
                    self.consume(n);
                }
                Err(e) => match error::carried(e) {
                    Some(mismatch @ Error::DigestMismatch { .. }) => return Err(mismatch),
                    _ => return Ok(()),
                },
            }
        }
    }
}

impl Read for Received {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let data = self.fill_buf()?;
        let n = data.len().min(out.len());
        out[..n].copy_from_slice(&data[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Received {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos == self.buf.len() && !self.ended {
            match self.rx.recv() {
                Ok(Packet::Data(data)) => (self.buf, self.pos) = (data, 0),
                Ok(Packet::End(Ok(_))) => self.ended = true,
                Ok(Packet::End(Err(e))) => return Err(error::into_io(e)),
                Err(_) => return Err(error::into_io(Error::Cancelled)),
            }
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }
}

/// Streams the archive file, re-hashing it; a mismatch fails the flash and deletes a cached copy
/// (the next run downloads it afresh), never the operator's file.
fn from_file(
    opened: &Opened,
    archive: Archive,
    cache: &Cache,
    tx: SyncSender<Packet>,
    stop: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Option<Produced> {
    let (path, expected) = (opened.archive_path.as_path(), opened.expected);
    let result = (|| {
        let mut file = opened
            .archive_file
            .as_ref()
            .expect("an archive origin keeps the file it proved");
        file.rewind().map_err(io_at(path))?;
        let total = file.metadata().map_err(io_at(path))?.len();
        let mut reporter = Reporter::new(progress, archive.stage(), Some(total));
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        loop {
            if stop.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let mut buf = vec![0u8; IO_CHUNK];
            let n = writer::read_full(&mut file, &mut buf).map_err(io_at(path))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            hasher.update(&buf);
            tx.send(Packet::Data(buf)).map_err(|_| Error::Cancelled)?;
            done += n as u64;
            reporter.update(done);
        }
        reporter.finish(done);
        let actual = Sha256Digest::of_hasher(hasher);
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Err(archive.changed(cache, path, expected, actual));
        }
        Ok((actual, ()))
    })();
    finish(&tx, result).map(|(sha256, ())| Produced {
        sha256,
        cached: (archive == Archive::Cached).then(|| path.to_path_buf()),
    })
}

/// Downloads the archive into a cache temp file and to the decoder at once; names it in the
/// cache only once its digest matched.
#[allow(clippy::too_many_arguments)]
fn from_network(
    rt: &Handle,
    http: &Http,
    cache: &Cache,
    url: &Url,
    archive_path: &Path,
    (expected, sha512): (Option<Sha256Digest>, Option<Sha512Digest>),
    cap: u64,
    tx: SyncSender<Packet>,
    stop: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Option<Produced> {
    let result = (|| {
        let mut sink = Forward {
            file: HashingFile::new(cache.temp_beside(archive_path)?, cap).with_sha512(sha512),
            tx: &tx,
            pending: Vec::with_capacity(IO_CHUNK),
            forwarded: 0,
            replay: None,
            url,
        };
        rt.block_on(http.download(url, &mut sink, stop, progress))?;
        sink.flush()?;
        if sink.replay.is_some() || sink.file.kept < sink.forwarded {
            return Err(Error::Network {
                url: url.to_string(),
                detail: "the download started over and came back shorter".into(),
            });
        }
        sink.file.check_sha512()?;
        let actual = Sha256Digest::of_hasher(sink.file.hasher);
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Err(Error::DigestMismatch {
                what: "download",
                expected: expected.hex(),
                actual: actual.hex(),
            });
        }
        Ok((actual, sink.file.tmp))
    })();
    let (sha256, tmp) = finish(&tx, result)?;
    // The flash no longer depends on the cache: a failure to keep the archive is only logged.
    let cached = match tmp.commit() {
        Ok(_) => Some(archive_path.to_path_buf()),
        Err(e) => {
            tracing::warn!(error = %e, "the verified archive could not be kept in the cache");
            None
        }
    };
    Some(Produced { sha256, cached })
}

/// Tells the decoder how the archive ended; the error, if any, travels to it.
fn finish<T>(
    tx: &SyncSender<Packet>,
    result: Result<(Sha256Digest, T)>,
) -> Option<(Sha256Digest, T)> {
    match result {
        Ok((sha256, rest)) => {
            let _ = tx.send(Packet::End(Ok(sha256)));
            Some((sha256, rest))
        }
        Err(e) => {
            let _ = tx.send(Packet::End(Err(e)));
            None
        }
    }
}

/// The download's sink: the cache temp file and its hash, and the decoder's queue, in packets.
/// A server that cannot resume starts the body over; bytes the decoder already has are then not
/// sent again but must hash the same as before.
struct Forward<'a> {
    file: HashingFile,
    tx: &'a SyncSender<Packet>,
    pending: Vec<u8>,
    forwarded: u64,
    /// After a restart: the digest of the bytes already forwarded, and the hash of the same range
    /// as sent again.
    replay: Option<(Sha256Digest, Sha256)>,
    url: &'a Url,
}

impl Forward<'_> {
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let packet = std::mem::replace(&mut self.pending, Vec::with_capacity(IO_CHUNK));
        self.forwarded += packet.len() as u64;
        self.tx
            .send(Packet::Data(packet))
            .map_err(|_| Error::Cancelled)
    }
}

impl BodySink for Forward<'_> {
    fn kept(&self) -> u64 {
        self.file.kept()
    }

    fn cap(&self) -> Option<u64> {
        self.file.cap()
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let start = self.file.kept();
        self.file.append(bytes)?;
        let mut fresh = bytes;
        if let Some((before, again)) = &mut self.replay {
            let overlap = (self.forwarded - start).min(bytes.len() as u64) as usize;
            again.update(&bytes[..overlap]);
            fresh = &bytes[overlap..];
            if start + overlap as u64 == self.forwarded {
                if Sha256Digest::of_hasher(again.clone()) != *before {
                    return Err(Error::Network {
                        url: self.url.to_string(),
                        detail: "the server sent different bytes when the download started over"
                            .into(),
                    });
                }
                self.replay = None;
            }
        }
        self.pending.extend_from_slice(fresh);
        if self.pending.len() >= IO_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<()> {
        self.flush()?;
        if self.forwarded > 0 {
            let before = match self.replay.take() {
                Some((before, _)) => before,
                None => Sha256Digest::of_hasher(self.file.hasher.clone()),
            };
            self.replay = Some((before, Sha256::new()));
        }
        self.file.restart()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    fn sha(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest::of_hasher(Sha256::new_with_prefix(bytes))
    }

    fn opened(path: &Path, local: bool, expected: Sha256Digest) -> Opened {
        let archive = if local {
            Archive::Operators
        } else {
            Archive::Cached
        };
        Opened {
            source: path.display().to_string(),
            expected: Some(expected),
            expected_sha512: None,
            digest_source: DigestSource::Flag,
            signed_by: None,
            warnings: Vec::new(),
            pin: None,
            image_size: None,
            image_kind: None,
            image_inside: None,
            origin: Origin::Archive(archive),
            archive_path: path.to_path_buf(),
            archive_file: Some(File::open(path).unwrap()),
            max_image_size: u64::MAX,
            _lock: None,
        }
    }

    /// Streams an archive file as `run` does; returns the bytes sent and how the stream ended.
    fn stream_file(opened: &Opened, cache: &Cache) -> (Vec<u8>, Result<Sha256Digest>) {
        let (tx, rx) = sync_channel(PACKETS);
        let stop = CancellationToken::new();
        std::thread::scope(|scope| {
            let stop = &stop;
            let Origin::Archive(archive) = opened.origin else {
                unreachable!("an archive file")
            };
            scope.spawn(move || from_file(opened, archive, cache, tx, stop, &NoProgress));
            let mut data = Vec::new();
            for packet in rx {
                match packet {
                    Packet::Data(bytes) => data.extend(bytes),
                    Packet::End(end) => return (data, end),
                }
            }
            panic!("the stream ended without saying how");
        })
    }

    #[test]
    fn an_archive_file_that_changed_fails_and_only_a_cached_copy_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().to_path_buf()).unwrap();
        let bytes: Vec<u8> = (0..3 * IO_CHUNK + 5).map(|i| (i % 251) as u8).collect();
        for local in [true, false] {
            let path = dir.path().join(format!("downloads/h/archive-{local}.xz"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let (sent, end) = stream_file(&opened(&path, local, sha(&bytes)), &cache);
            assert_eq!(sent, bytes);
            assert_eq!(end.unwrap(), sha(&bytes));

            let changed = opened(&path, local, sha(b"what was hashed before"));
            let (_, end) = stream_file(&changed, &cache);
            let Err(Error::DigestMismatch { what, .. }) = end else {
                panic!("not a digest mismatch: {end:?}");
            };
            // The operator's file is never deleted; a bad cached copy is.
            assert_eq!(path.exists(), local, "{what}");
        }
    }

    /// A download that starts over (a server without Range support) through `Forward`: what the
    /// decoder already has is not sent again, what is sent again must be the same bytes, and the
    /// cache file ends holding the body once.
    mod replay {
        use super::*;

        fn body(len: usize) -> Vec<u8> {
            (0..len)
                .map(|i| (i % 253) as u8 ^ (i / 4096) as u8)
                .collect()
        }

        /// Feeds `attempts` (each a prefix of the body as one server attempt sent it, in pieces
        /// of `piece` bytes) through a Forward, restarting between them.
        fn forward(attempts: &[&[u8]], piece: usize) -> (Result<()>, Vec<u8>, Vec<u8>) {
            let dir = tempfile::tempdir().unwrap();
            let cache = Cache::open(dir.path().to_path_buf()).unwrap();
            let tmp = cache.temp_beside(&dir.path().join("os.raw.xz")).unwrap();
            let (tx, rx) = sync_channel::<Packet>(1024);
            let url = Url::parse("http://127.0.0.1/os.raw.xz").unwrap();
            let mut sink = Forward {
                file: HashingFile::new(tmp, u64::MAX),
                tx: &tx,
                pending: Vec::new(),
                forwarded: 0,
                replay: None,
                url: &url,
            };
            let mut result = Ok(());
            'attempts: for (i, attempt) in attempts.iter().enumerate() {
                if i > 0 {
                    if let Err(e) = sink.restart() {
                        result = Err(e);
                        break;
                    }
                }
                for part in attempt.chunks(piece) {
                    if let Err(e) = sink.append(part) {
                        result = Err(e);
                        break 'attempts;
                    }
                }
            }
            if result.is_ok() {
                result = sink.flush();
            }
            let kept = std::fs::read(sink.file.tmp.path()).unwrap();
            drop(sink);
            drop(tx);
            let mut decoded = Vec::new();
            for packet in rx {
                if let Packet::Data(data) = packet {
                    decoded.extend(data);
                }
            }
            (result, decoded, kept)
        }

        #[test]
        fn bytes_the_decoder_has_are_not_sent_again() {
            let full = body(3 * IO_CHUNK + 777);
            for (cut, piece) in [
                (IO_CHUNK / 2, 1000),
                (IO_CHUNK + 1, 65536),
                (2 * IO_CHUNK, IO_CHUNK),
            ] {
                let (result, decoded, kept) = forward(&[&full[..cut], &full], piece);
                result.unwrap();
                assert_eq!(decoded, full, "cut at {cut}, pieces of {piece}");
                assert_eq!(kept, full);
            }
        }

        #[test]
        fn starting_over_twice_even_mid_replay_still_sends_each_byte_once() {
            let full = body(3 * IO_CHUNK);
            let (result, decoded, kept) =
                forward(&[&full[..2 * IO_CHUNK], &full[..IO_CHUNK], &full], 4096);
            result.unwrap();
            assert_eq!(decoded, full);
            assert_eq!(kept, full);
        }

        #[test]
        fn different_bytes_sent_again_fail_the_download() {
            let full = body(2 * IO_CHUNK);
            let mut other = full.clone();
            other[100] ^= 1;
            let (result, decoded, _) = forward(&[&full[..IO_CHUNK + 5], &other], 4096);
            let err = result.unwrap_err().to_string();
            assert!(err.contains("sent different bytes"), "{err}");
            assert_eq!(
                decoded,
                full[..IO_CHUNK + 5],
                "nothing of the second body reached the decoder"
            );
        }
    }
}
