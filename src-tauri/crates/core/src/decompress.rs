//! Decompression chosen by magic bytes (xz, gzip, zstd, or raw), bounded in output and memory,
//! hashing the image as it is written.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use liblzma::stream::{Action, MtStreamBuilder, Status, Stream};
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::digest::Sha256Digest;
use crate::error::{io_at, Error, Result};
use crate::progress::{ProgressSink, Reporter, Stage};
use crate::{CancellationToken, IO_CHUNK};

/// The xz decoder runs one thread per core while its buffers fit this budget, fewer beyond it.
const XZ_THREADING_MEMORY: u64 = 128 << 20;
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
    /// Not compressed: the archive is the image.
    Raw,
}

impl Format {
    /// Looks at the first bytes only; file names can lie.
    pub fn detect(header: &[u8]) -> Self {
        if header.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
            Format::Xz
        } else if header.starts_with(&[0x1F, 0x8B]) {
            Format::Gzip
        } else if header.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Format::Zstd
        } else {
            Format::Raw
        }
    }

    pub fn of_file(path: &Path) -> Result<Self> {
        let mut header = [0u8; 6];
        let mut file = File::open(path).map_err(io_at(path))?;
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

/// Decompresses `src` into `out` (blocking). Fails with `ImageTooLarge` as soon as the output
/// would pass `limit`; the caller owns `out` and discards it on any error.
pub fn decompress(
    src: &Path,
    format: Format,
    out: &mut NamedTempFile,
    limit: u64,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<(Sha256Digest, u64)> {
    let input = File::open(src).map_err(io_at(src))?;
    let out_path = out.path().to_path_buf();
    let mut sink = Output {
        file: out.as_file_mut(),
        path: &out_path,
        hasher: Sha256::new(),
        written: 0,
        limit,
        reporter: Reporter::new(progress, Stage::Decompress, None),
        cancel,
    };
    let corrupt = |detail: String| Error::Corrupt {
        format: format.name(),
        path: src.to_path_buf(),
        detail,
    };
    match format {
        Format::Xz => decode_xz(
            BufReader::with_capacity(IO_CHUNK, input),
            &mut sink,
            corrupt,
        )?,
        Format::Gzip => {
            let reader =
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(IO_CHUNK, input));
            copy_reader(reader, &mut sink, corrupt)?
        }
        Format::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(input).map_err(io_at(src))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(io_at(src))?;
            copy_reader(decoder, &mut sink, corrupt)?
        }
        Format::Raw => copy_reader(input, &mut sink, corrupt)?,
    }
    sink.reporter.finish(sink.written);
    Ok((Sha256Digest::of_hasher(sink.hasher), sink.written))
}

/// The decoded bytes' destination: writes, hashes, counts against the limit, reports, and
/// notices cancellation between buffers.
struct Output<'a> {
    file: &'a mut File,
    path: &'a Path,
    hasher: Sha256,
    written: u64,
    limit: u64,
    reporter: Reporter<'a>,
    cancel: &'a CancellationToken,
}

impl Output<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if self.written + bytes.len() as u64 > self.limit {
            return Err(Error::ImageTooLarge { limit: self.limit });
        }
        self.file.write_all(bytes).map_err(io_at(self.path))?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.reporter.update(self.written);
        Ok(())
    }
}

fn copy_reader(
    mut reader: impl Read,
    out: &mut Output,
    corrupt: impl Fn(String) -> Error,
) -> Result<()> {
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(e.to_string())),
        };
        out.put(&buf[..n])?;
    }
}

/// Decodes every xz stream in the file (xz files may be concatenated), each with liblzma's
/// multi-threaded decoder, which runs blocks in parallel where the stream was written in blocks
/// and falls back to one thread where it was not. Zero bytes between streams are stream padding.
fn decode_xz(
    mut input: impl BufRead,
    out: &mut Output,
    corrupt: impl Fn(String) -> Error,
) -> Result<()> {
    let read_err = |e: std::io::Error| corrupt(format!("reading failed: {e}"));
    let mut buf = vec![0u8; IO_CHUNK];
    let mut streams = 0usize;
    loop {
        // Skip padding; end cleanly only at end of file after at least one stream.
        loop {
            let data = input.fill_buf().map_err(read_err)?;
            if data.is_empty() {
                return if streams > 0 {
                    Ok(())
                } else {
                    Err(corrupt("the file holds no xz stream".into()))
                };
            }
            let zeros = data.iter().take_while(|b| **b == 0).count();
            if zeros == 0 {
                break;
            }
            input.consume(zeros);
        }
        let mut stream = xz_decoder().map_err(|e| corrupt(describe_xz(e)))?;
        streams += 1;
        loop {
            let data = input.fill_buf().map_err(read_err)?;
            let eof = data.is_empty();
            let (in_before, out_before) = (stream.total_in(), stream.total_out());
            let action = if eof { Action::Finish } else { Action::Run };
            let status = stream
                .process(data, &mut buf, action)
                .map_err(|e| corrupt(describe_xz(e)))?;
            let consumed = (stream.total_in() - in_before) as usize;
            let produced = (stream.total_out() - out_before) as usize;
            input.consume(consumed);
            out.put(&buf[..produced])?;
            if status == Status::StreamEnd {
                break;
            }
            if eof && consumed == 0 && produced == 0 {
                return Err(corrupt(
                    "the file ends in the middle of an xz stream".into(),
                ));
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
        assert_eq!(Format::detect(b"\xFD7zXZ"), Format::Raw, "truncated magic");
        assert_eq!(Format::detect(b""), Format::Raw);
        assert_eq!(
            Format::detect(b"\xEB\x63\x90"),
            Format::Raw,
            "an MBR boot sector"
        );
    }
}
