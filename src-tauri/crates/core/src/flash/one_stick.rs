//! One stick for both: the boot image, then a GPT partition named `cidata` holding the config
//! image, with the backup GPT moved to the end of the target.
//!
//! A [`Layout`] is what one stick gets on top of the boot image: its own GPT head, zeros where the
//! image's old backup GPT was, its own bytes after the image (zeros up to the cidata partition,
//! then the config image) and the backup GPT at its end. The writer lays it over the boot image's
//! bytes as they pass (a lab's sticks, each with its own config, from one read of the image: see
//! `writer`'s [`Overlay`]); [`Layout::reader`] gives the whole stream in one piece (the
//! privileged helper takes one stream).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{into_io, Error, Result};
use crate::fetch::digest::Sha256Digest;
use crate::flash::gpt::{self, Cidata, OneStick};
use crate::flash::writer::Overlay;
use crate::image::{Image, Tail};
use crate::CancellationToken;

/// One stick's layout: the boot image with its new GPT, then the cidata partition.
#[derive(Clone, Debug)]
pub struct Layout {
    gpt: OneStick,
    boot: Image,
    config: PathBuf,
    cidata: Cidata,
}

/// Plans the stick for a target of `target_size` bytes with `sector`-byte sectors. The config
/// image is read once here for its digest, and again as it is written (checked against it).
pub fn layout(
    boot: &Image,
    cidata_path: &Path,
    target_size: u64,
    sector: u64,
    cancel: &CancellationToken,
) -> Result<Layout> {
    let (sha256, len) = crate::fetch::digest::hash_file(
        cidata_path,
        crate::progress::Stage::HashImage,
        cancel,
        &crate::progress::NoProgress,
    )
    .map_err(|e| match e {
        Error::Cancelled => e,
        e => Error::BadInput(format!(
            "cannot read the config image {}: {e}",
            cidata_path.display()
        )),
    })?;
    if len == 0 {
        return Err(Error::BadInput(format!(
            "the config image {} is empty",
            cidata_path.display()
        )));
    }
    let cidata = Cidata { len, sha256 };
    let mut start = vec![0u8; (1 << 20).min(boot.size) as usize];
    File::open(&boot.path)
        .and_then(|mut f| f.read_exact(&mut start))
        .map_err(|e| Error::io(&boot.path, e))?;
    Ok(Layout {
        gpt: gpt::plan(&start, boot.size, &cidata, target_size, sector)?,
        boot: boot.clone(),
        config: cidata_path.to_path_buf(),
        cidata,
    })
}

impl Layout {
    pub fn cidata_offset(&self) -> u64 {
        self.gpt.cidata_offset
    }

    pub fn config_sha256(&self) -> Sha256Digest {
        self.cidata.sha256
    }

    /// The whole stream as one image (for the privileged helper, which is sent its digest first):
    /// one pass over the boot image, which must still be the one proven (nothing else checks
    /// it on this path), and the config image.
    pub fn image(&self, cancel: &CancellationToken) -> Result<Image> {
        let path = &self.boot.path;
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let (mut boot, mut stream) = (Sha256::new(), Sha256::new());
        let mut buf = vec![0u8; crate::IO_CHUNK];
        let mut pos = 0u64;
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            boot.update(&buf[..n]);
            let mine = (self.image_end().saturating_sub(pos) as usize).min(n);
            self.patch(pos, &mut buf[..mine]);
            stream.update(&buf[..mine]);
            pos += n as u64;
        }
        let actual = Sha256Digest::of_hasher(boot);
        if pos != self.boot.size || actual != self.boot.sha256 {
            return Err(Error::DigestMismatch {
                what: "image (it changed after it was checked)",
                expected: self.boot.sha256.hex(),
                actual: actual.hex(),
            });
        }
        let mut own = self.own_bytes(self.image_end())?;
        loop {
            let n = own
                .read(&mut buf)
                .map_err(|e| crate::error::from_io(&self.config, e))?;
            if n == 0 {
                break;
            }
            stream.update(&buf[..n]);
        }
        Ok(Image {
            path: self.boot.path.clone(),
            sha256: Sha256Digest::of_hasher(stream),
            size: self.size(),
            tail: self.tail(),
        })
    }

    /// The stream in one piece: the boot image's bytes up to [`Overlay::image_end`] with this
    /// stick's laid over them, then its own.
    pub fn reader(&self) -> Result<impl Read + Send + '_> {
        let file = File::open(&self.boot.path).map_err(|e| Error::io(&self.boot.path, e))?;
        Ok(Whole {
            layout: self,
            file: file.take(self.image_end()),
            pos: 0,
        }
        .chain(self.own_bytes(self.image_end())?))
    }
}

impl Overlay for Layout {
    fn size(&self) -> u64 {
        self.gpt.cidata_offset + self.cidata.len
    }

    fn image_end(&self) -> u64 {
        self.boot.size.min(self.gpt.cidata_offset)
    }

    fn patches(&self, offset: u64, len: usize) -> bool {
        let end = offset + len as u64;
        let stale = &self.gpt.stale_backup;
        offset < self.gpt.head.len() as u64 || (offset < stale.end && stale.start < end)
    }

    fn patch(&self, offset: u64, bytes: &mut [u8]) {
        let end = offset + bytes.len() as u64;
        let head = &self.gpt.head;
        if offset < head.len() as u64 {
            let n = (head.len() - offset as usize).min(bytes.len());
            bytes[..n].copy_from_slice(&head[offset as usize..offset as usize + n]);
        }
        // Blank what survives of the image's own backup GPT.
        let stale = &self.gpt.stale_backup;
        let (from, to) = (offset.max(stale.start), end.min(stale.end));
        if from < to {
            bytes[(from - offset) as usize..(to - offset) as usize].fill(0);
        }
    }

    fn own_bytes(&self, from: u64) -> Result<Box<dyn Read + Send + '_>> {
        debug_assert!(from >= self.image_end() && from <= self.gpt.cidata_offset);
        let config = File::open(&self.config).map_err(|e| Error::io(&self.config, e))?;
        Ok(Box::new(
            io::repeat(0)
                .take(self.gpt.cidata_offset - from)
                .chain(Checked {
                    layout: self,
                    file: config.take(self.cidata.len),
                    hasher: Sha256::new(),
                    read: 0,
                }),
        ))
    }

    fn tail(&self) -> Option<Tail> {
        Some(Tail {
            offset: self.gpt.backup_offset,
            bytes: self.gpt.backup.clone(),
        })
    }
}

/// The boot image's bytes with the stick's laid over them.
struct Whole<'a> {
    layout: &'a Layout,
    file: io::Take<File>,
    pos: u64,
}

impl Read for Whole<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let boot = &self.layout.boot.path;
        let n = (self.file.read(buf)).map_err(|e| into_io(Error::io(boot, e)))?;
        if n == 0 && self.pos < self.layout.image_end() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the image is shorter than its size",
            ));
        }
        self.layout.patch(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// The config image as it is read to be written: it must be the one planned (its digest is in
/// the GPT and the confirmation), or the stick fails.
struct Checked<'a> {
    layout: &'a Layout,
    file: io::Take<File>,
    hasher: Sha256,
    read: u64,
}

impl Read for Checked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let config = &self.layout.config;
        let n = (self.file.read(buf)).map_err(|e| into_io(Error::io(config, e)))?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if n == 0 && !buf.is_empty() {
            let actual = Sha256Digest::of_hasher(self.hasher.clone());
            let expected = self.layout.cidata.sha256;
            if self.read != self.layout.cidata.len || actual != expected {
                return Err(into_io(Error::DigestMismatch {
                    what: "config image (it changed after the flash was planned)",
                    expected: expected.hex(),
                    actual: actual.hex(),
                }));
            }
        }
        Ok(n)
    }
}
