//! One stick for both: the boot image, then a GPT partition named `cidata` holding the config
//! image, with the backup GPT moved to the end of the target. This module lays the stick out as one
//! byte stream (what the `writer` writes and reads back) plus the backup GPT written at the target's end.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::fetch::digest::Sha256Digest;
use crate::flash::gpt::{self, OneStick};
use crate::image::{Image, Tail};
use crate::CancellationToken;

/// The stick's bytes: the image with its new GPT, then the cidata partition.
pub struct Layout {
    /// The whole stream as one image to write, with its digest and the backup GPT as its tail.
    pub image: Image,
    gpt: OneStick,
    boot: Image,
    cidata: Vec<u8>,
}

/// Plans the stick for a target of `target_size` bytes with `sector`-byte sectors, and takes the
/// digest of the stream to be written (one pass over the image).
pub fn layout(
    boot: &Image,
    cidata_path: &Path,
    target_size: u64,
    sector: u64,
    cancel: &CancellationToken,
) -> Result<Layout> {
    let cidata = std::fs::read(cidata_path).map_err(|e| {
        Error::BadInput(format!(
            "cannot read the config image {}: {e}",
            cidata_path.display()
        ))
    })?;
    if cidata.is_empty() {
        return Err(Error::BadInput(format!(
            "the config image {} is empty",
            cidata_path.display()
        )));
    }
    let mut start = vec![0u8; (1 << 20).min(boot.size) as usize];
    File::open(&boot.path)
        .and_then(|mut f| f.read_exact(&mut start))
        .map_err(|e| Error::io(&boot.path, e))?;
    let gpt = gpt::plan(&start, boot.size, &cidata, target_size, sector)?;
    let size = gpt.cidata_offset + cidata.len() as u64;
    let mut layout = Layout {
        image: Image {
            path: boot.path.clone(),
            sha256: boot.sha256,
            size,
            tail: Some(Tail {
                offset: gpt.backup_offset,
                bytes: gpt.backup.clone(),
            }),
        },
        gpt,
        boot: boot.clone(),
        cidata,
    };
    let digest = {
        let mut hasher = Sha256::new();
        let mut reader = layout.reader()?;
        let mut buf = vec![0u8; crate::IO_CHUNK];
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let n = reader
                .read(&mut buf)
                .map_err(|e| Error::io(&boot.path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Sha256Digest::of_hasher(hasher)
    };
    layout.image.sha256 = digest;
    Ok(layout)
}

impl Layout {
    /// The stream: new GPT head, the image up to the cidata partition (its old backup GPT blanked),
    /// zeros up to the partition's start, then the config image.
    pub fn reader(&self) -> Result<impl Read + Send + '_> {
        let file = File::open(&self.boot.path).map_err(|e| Error::io(&self.boot.path, e))?;
        Ok(Stream {
            layout: self,
            file,
            pos: 0,
        })
    }

    pub fn cidata_offset(&self) -> u64 {
        self.gpt.cidata_offset
    }

    /// The boot image as fetched or given (its digest is the one the operator confirms).
    pub fn boot(&self) -> &Image {
        &self.boot
    }

    pub fn config_sha256(&self) -> Sha256Digest {
        Sha256Digest::of_hasher(Sha256::new_with_prefix(&self.cidata))
    }
}

struct Stream<'a> {
    layout: &'a Layout,
    file: File,
    pos: u64,
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let l = self.layout;
        let head_len = l.gpt.head.len() as u64;
        let image_end = l.boot.size.min(l.gpt.cidata_offset);
        let total = l.image.size;
        if self.pos >= total || buf.is_empty() {
            return Ok(0);
        }
        // Each region answers up to its own end.
        let (n, region_end) = if self.pos < head_len {
            let end = head_len;
            let n = ((end - self.pos) as usize).min(buf.len());
            buf[..n].copy_from_slice(&l.gpt.head[self.pos as usize..self.pos as usize + n]);
            (n, end)
        } else if self.pos < image_end {
            let end = image_end;
            let want = ((end - self.pos) as usize).min(buf.len());
            let n = self.file.read_at(&mut buf[..want], self.pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the image is shorter than its size",
                ));
            }
            // Blank what survives of the image's own backup GPT.
            let stale = &l.gpt.stale_backup;
            let (from, to) = (
                self.pos.max(stale.start),
                (self.pos + n as u64).min(stale.end),
            );
            if from < to {
                buf[(from - self.pos) as usize..(to - self.pos) as usize].fill(0);
            }
            (n, end)
        } else if self.pos < l.gpt.cidata_offset {
            let end = l.gpt.cidata_offset;
            let n = ((end - self.pos) as usize).min(buf.len());
            buf[..n].fill(0);
            (n, end)
        } else {
            let at = (self.pos - l.gpt.cidata_offset) as usize;
            let n = (l.cidata.len() - at).min(buf.len());
            buf[..n].copy_from_slice(&l.cidata[at..at + n]);
            (n, total)
        };
        debug_assert!(self.pos + n as u64 <= region_end);
        self.pos += n as u64;
        Ok(n)
    }
}
