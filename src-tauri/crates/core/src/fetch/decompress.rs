//! Decompression chosen by magic bytes (xz, gzip, zstd, or raw), bounded in output and memory,
//! hashing the image as it is written; a tar or zip holding one disk image is unwrapped on the
//! way (see `unwrap`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use liblzma::stream::{Action, MtStreamBuilder, Status, Stream};
use sha2::{Digest as _, Sha256};

use crate::error::{self, io_at, Error, Result};
use crate::fetch::digest::Sha256Digest;
use crate::fetch::unwrap::{self, ArchiveKind, ImageInside, Unwrap};
use crate::progress::{ProgressSink, Reporter, Stage};
use crate::{CancellationToken, IO_CHUNK};

/// The xz decoder runs one thread per core while its buffers (per thread: a compressed block,
/// its decoded block, the dictionary; plus decoded blocks waiting to be read) fit this budget,
/// fewer beyond it. Measured with xz -6 -T0 (24 MiB blocks): 96 MiB keeps both cores of a
/// 2-core machine decoding at `xz -T0 -dc`'s speed, and a whole flash under 160 MiB of RSS.
const XZ_THREADING_MEMORY: u64 = 96 << 20;
/// No xz stream may need more than this to decode (xz -9 needs 65 MiB single-threaded).
const XZ_MEMORY_LIMIT: u64 = 512 << 20;
/// zstd's own default decoder limit: windows up to 128 MiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Xz,
    Gzip,
    Zstd,
    /// Not compressed: the archive is the image, or a tar or zip holding it.
    Raw,
}

impl Format {
    /// Looks at the first bytes only; file names can lie.
    pub fn detect(header: &[u8]) -> Self {
        if header.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
            Format::Xz
        } else if header.starts_with(&[0x1F, 0x8B]) {
            Format::Gzip
        } else if header.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) || zstd_skippable(header) {
            Format::Zstd
        } else {
            Format::Raw
        }
    }

    pub fn of_file(path: &Path) -> Result<Self> {
        Self::of_open(&File::open(path).map_err(io_at(path))?, path)
    }

    /// The format of an open file, from its first bytes (its position is moved).
    pub fn of_open(mut file: &File, path: &Path) -> Result<Self> {
        let mut header = [0u8; 6];
        file.rewind().map_err(io_at(path))?;
        let mut filled = 0;
        while filled < header.len() {
            match file.read(&mut header[filled..]).map_err(io_at(path))? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(Self::detect(&header[..filled]))
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Xz => "xz",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Raw => "raw",
        }
    }
}

/// Whether an open file is its own image, written as it is: not compressed, and not a tar or zip
/// archive whose image is unwrapped from it (its position is moved).
pub fn is_own_image(mut file: &File, path: &Path) -> Result<bool> {
    if Format::of_open(file, path)? != Format::Raw {
        return Ok(false);
    }
    file.rewind().map_err(io_at(path))?;
    let mut head = Vec::with_capacity(512);
    file.take(512).read_to_end(&mut head).map_err(io_at(path))?;
    Ok(ArchiveKind::of_head(&head).is_none())
}

/// What [`decompress`] made: the image's digest and size, and the tar or zip entry it was
/// unwrapped from, if it was.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub inside: Option<ImageInside>,
}

/// Where decoded bytes go: a writer, the name errors give it, and the stage progress shows
/// (decompressing, or checking a cached image against what the archive decodes to).
pub struct Output<'a> {
    pub to: &'a mut dyn Write,
    pub path: &'a Path,
    pub stage: Stage,
}

/// A zstd skippable frame (magic 0x184D2A50-5F, little-endian), as `pzstd` begins its files
/// with: the zstd decoder skips it.
fn zstd_skippable(header: &[u8]) -> bool {
    header.len() >= 4 && header[0] & 0xF0 == 0x50 && header[1..4] == [0x2A, 0x4D, 0x18]
}

/// Decompresses `input` (named `src` in errors; read from its start) into `out` (blocking), hashing what it writes. Fails with `ImageTooLarge`
/// as soon as the output would pass `limit`; the caller owns `out` and discards it on any error.
pub fn decompress(
    mut input: File,
    src: &Path,
    format: Format,
    out: Output,
    limit: u64,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Decoded> {
    let Output {
        to: out,
        path: out_path,
        stage,
    } = out;
    input.rewind().map_err(io_at(src))?;
    let input = BufReader::with_capacity(IO_CHUNK, input);
    let mut reader = decoder(input, format, src, limit)?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut reporter = Reporter::new(progress, stage, None);
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(error::from_io(src, e)),
        };
        out.write_all(&buf[..n]).map_err(io_at(out_path))?;
        hasher.update(&buf[..n]);
        written += n as u64;
        reporter.update(written);
    }
    reporter.finish(written);
    Ok(Decoded {
        sha256: Sha256Digest::of_hasher(hasher),
        size: written,
        inside: reader.inside(),
    })
}

/// A writer that only compares what it is given with a file's bytes, failing at the first
/// difference (see [`SameAs::differed`]): proves a cached image without writing it again.
pub struct SameAs {
    file: BufReader<File>,
    scratch: Vec<u8>,
}

/// The error a [`SameAs`] writer fails with.
#[derive(Debug)]
struct Differs;

impl std::fmt::Display for Differs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the cached image differs from the archive's")
    }
}

impl std::error::Error for Differs {}

impl SameAs {
    pub fn new(file: File) -> Self {
        Self {
            file: BufReader::with_capacity(IO_CHUNK, file),
            scratch: Vec::new(),
        }
    }

    /// Whether the file holds nothing more than what was compared.
    pub fn at_end(&mut self) -> bool {
        self.file.fill_buf().is_ok_and(|rest| rest.is_empty())
    }

    /// Whether `error` is a [`SameAs`] writer's "the bytes differ".
    pub fn differed(error: &Error) -> bool {
        matches!(error, Error::Io { source, .. } if source.get_ref().is_some_and(|e| e.is::<Differs>()))
    }
}

impl Write for SameAs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.scratch.resize(buf.len(), 0);
        match self.file.read_exact(&mut self.scratch) {
            Ok(()) if self.scratch == buf => Ok(buf.len()),
            Ok(()) => Err(std::io::Error::other(Differs)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(std::io::Error::other(Differs))
            }
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The image decoded from `input` as it is read: a stream of `format` (xz with liblzma's threads),
/// unwrapped if it is a tar or zip (see `unwrap`), bounded by `limit`. Its read errors wrap an
/// [`Error`] (see [`error::from_io`]): `Corrupt`, `ImageTooLarge`, `BadInput` (an archive that
/// holds no one disk image), or whatever `input` itself failed with.
pub fn decoder<'a>(
    input: impl BufRead + Send + 'a,
    format: Format,
    name: &Path,
    limit: u64,
) -> Result<Decoder<'a>> {
    let inner: Box<dyn Read + Send + 'a> = match format {
        Format::Xz => Box::new(XzReader {
            input,
            stream: None,
            streams: 0,
        }),
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Format::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(io_at(name))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(io_at(name))?;
            Box::new(decoder)
        }
        Format::Raw => Box::new(input),
    };
    let inside = unwrap::Inside::default();
    // The limit bounds the image, so it counts what is unwrapped: a deflated zip's image is
    // larger than the archive, a tar's a little smaller.
    let reader = Box::new(Bounded {
        inner: Box::new(Unwrap::new(inner, name, inside.clone())),
        format,
        name: name.to_path_buf(),
        produced: 0,
        limit,
    });
    Ok(Decoder { reader, inside })
}

/// The image as [`decoder`] reads it, and which tar or zip entry it is.
pub struct Decoder<'a> {
    reader: Box<dyn Read + Send + 'a>,
    inside: unwrap::Inside,
}

impl Decoder<'_> {
    /// The tar or zip entry the image is unwrapped from: known once its first byte has been
    /// read; `None` when the decoded stream is the image itself.
    pub fn inside(&self) -> Option<ImageInside> {
        self.inside.get().cloned()
    }
}

impl Read for Decoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

/// Counts the decoded bytes against the limit and names the archive in decoding errors.
struct Bounded<'a> {
    inner: Box<dyn Read + Send + 'a>,
    format: Format,
    name: PathBuf,
    produced: u64,
    limit: u64,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| {
            if error::wraps(&e) {
                e
            } else {
                error::into_io(Error::Corrupt {
                    format: self.format.name(),
                    path: self.name.clone(),
                    detail: e.to_string(),
                })
            }
        })?;
        self.produced += n as u64;
        if self.produced > self.limit {
            return Err(error::into_io(Error::ImageTooLarge { limit: self.limit }));
        }
        Ok(n)
    }
}

/// Decodes every xz stream in the input (xz files may be concatenated), each with liblzma's
/// multi-threaded decoder, which runs blocks in parallel where the stream was written in blocks
/// and falls back to one thread where it was not. Zero bytes between streams are stream padding.
struct XzReader<R> {
    input: R,
    stream: Option<Stream>,
    streams: usize,
}

impl<R: BufRead> Read for XzReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let corrupt = |detail: String| std::io::Error::new(std::io::ErrorKind::InvalidData, detail);
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                // Skip padding; end cleanly only at the end after at least one stream.
                let data = self.input.fill_buf()?;
                if data.is_empty() {
                    return match self.streams {
                        0 => Err(corrupt("it holds no xz stream".into())),
                        _ => Ok(0),
                    };
                }
                let zeros = data.iter().take_while(|b| **b == 0).count();
                if zeros > 0 {
                    self.input.consume(zeros);
                    continue;
                }
                self.stream = Some(xz_decoder().map_err(|e| corrupt(describe_xz(e)))?);
                self.streams += 1;
                continue;
            };
            let data = self.input.fill_buf()?;
            let eof = data.is_empty();
            let (in_before, out_before) = (stream.total_in(), stream.total_out());
            let action = if eof { Action::Finish } else { Action::Run };
            let status = stream
                .process(data, out, action)
                .map_err(|e| corrupt(describe_xz(e)))?;
            let consumed = (stream.total_in() - in_before) as usize;
            let produced = (stream.total_out() - out_before) as usize;
            self.input.consume(consumed);
            if status == Status::StreamEnd {
                self.stream = None;
            } else if eof && consumed == 0 && produced == 0 {
                return Err(corrupt("it ends in the middle of an xz stream".into()));
            }
            if produced > 0 {
                return Ok(produced);
            }
        }
    }
}

fn xz_decoder() -> std::result::Result<Stream, liblzma::stream::Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    MtStreamBuilder::new()
        .threads(threads)
        .memlimit_threading(XZ_THREADING_MEMORY)
        .memlimit_stop(XZ_MEMORY_LIMIT)
        .decoder()
}

fn describe_xz(e: liblzma::stream::Error) -> String {
    use liblzma::stream::Error as E;
    match e {
        E::MemLimit => format!(
            "decoding it needs more than {} MiB of memory",
            XZ_MEMORY_LIMIT >> 20
        ),
        E::Format => "it is not an xz stream".into(),
        E::Data => "the compressed data is corrupt".into(),
        other => format!("liblzma failed: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide() {
        assert_eq!(Format::detect(b"\xFD7zXZ\x00rest"), Format::Xz);
        assert_eq!(Format::detect(b"\x1F\x8B\x08"), Format::Gzip);
        assert_eq!(Format::detect(b"\x28\xB5\x2F\xFD"), Format::Zstd);
        assert_eq!(
            Format::detect(b"\x50\x2A\x4D\x18\x04\x00"),
            Format::Zstd,
            "pzstd's skippable frame first"
        );
        assert_eq!(Format::detect(b"\xFD7zXZ"), Format::Raw, "truncated magic");
        assert_eq!(Format::detect(b""), Format::Raw);
        assert_eq!(
            Format::detect(b"\xEB\x63\x90"),
            Format::Raw,
            "an MBR boot sector"
        );
    }
}
