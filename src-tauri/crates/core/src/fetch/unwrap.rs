//! A tar or zip archive holding one disk image, unwrapped as it streams: the decoded bytes (after
//! xz, gzip or zstd) are looked at first; a tar or a zip yields the bytes of the disk image inside
//! it, anything else passes through unchanged. Forward only (the same reader feeds a flash while
//! the download is still arriving) and in bounded memory: one buffer, one entry's head, one
//! pax or GNU long-name record.
//!
//! Which entry is the image: every regular file's first [`image_kind::HEAD`] bytes are classified;
//! the one that is a disk (gpt, mbr, iso9660-hybrid, iso9660, fat) is the image, other files (a
//! README, a .sha256) are skipped, and a second disk is refused. A file of no known layout is the
//! image only when it is the archive's one regular file (`zip disk.zip disk.img`): beside other
//! files nothing tells that it is the image and not their companion. A lone file of a kind that is
//! not written (a qcow2, a nested archive) is refused as that kind, never unwrapped again.
//!
//! The archive is read to its end before the image's end is reported, so a second image, a bad
//! CRC or a truncated archive fails the image's consumer before it treats the image as whole.

use std::io::{BufReader, Chain, Cursor, Read, Take};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use flate2::bufread::DeflateDecoder;

use crate::error::{self, Error};
use crate::image_kind::{self, ImageKind};
use crate::IO_CHUNK;

/// The archive an image was unwrapped from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveKind {
    Tar,
    Zip,
}

impl ArchiveKind {
    fn name(self) -> &'static str {
        match self {
            ArchiveKind::Tar => "tar",
            ArchiveKind::Zip => "zip",
        }
    }

    /// A tar or zip from its decoded stream's first bytes, as `image_kind::classify` tells them.
    pub fn of_head(head: &[u8]) -> Option<Self> {
        match image_kind::classify(head) {
            ImageKind::Tar => Some(ArchiveKind::Tar),
            // An empty zip (only its end record) holds no image: unwrapped, it says so.
            ImageKind::Zip => Some(ArchiveKind::Zip),
            _ => None,
        }
    }
}

/// Which file of a tar or zip archive was written: `{"archive":"tar","name":"disk.raw"}`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInside {
    // Inlined, as `Flashed` inlines this type: bindings.ts declares neither.
    #[cfg_attr(feature = "ts", ts(inline))]
    pub archive: ArchiveKind,
    /// The entry's name in the archive.
    pub name: String,
}

impl std::fmt::Display for ImageInside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in a {} archive", self.name, self.archive.name())
    }
}

/// Filled once an unwrapping reader has chosen its image entry (before its first byte is read).
pub type Inside = Arc<OnceLock<ImageInside>>;

/// Bytes enough to tell a tar (magic at 257) or a zip: one tar header.
const PEEK: usize = 512;
/// The most a pax extended header or GNU long name may hold here (they hold names and times).
const RECORD_LIMIT: u64 = 1 << 20;

type Src<'a> = BufReader<Chain<Cursor<Vec<u8>>, Box<dyn Read + Send + 'a>>>;

/// The decoded stream, unwrapped when it is a tar or zip: see the module's comment.
pub struct Unwrap<'a> {
    state: State<'a>,
    archive: String,
    inside: Inside,
}

enum State<'a> {
    Start(Box<dyn Read + Send + 'a>),
    Through(Chain<Cursor<Vec<u8>>, Box<dyn Read + Send + 'a>>),
    Container(Box<Container<'a>>),
    /// The stream ended: nothing more is read.
    Done,
    /// An error was returned: every later read fails too, never a short image that looks whole.
    Failed,
}

impl<'a> Unwrap<'a> {
    /// `name` names the archive in errors; `inside` is filled with the image entry, if any.
    pub fn new(decoded: Box<dyn Read + Send + 'a>, name: &Path, inside: Inside) -> Self {
        Self {
            state: State::Start(decoded),
            archive: name.display().to_string(),
            inside,
        }
    }
}

impl Read for Unwrap<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                State::Start(_) => {
                    let State::Start(mut decoded) = std::mem::replace(&mut self.state, State::Done)
                    else {
                        unreachable!("matched above")
                    };
                    let mut head = Vec::with_capacity(PEEK);
                    if let Err(e) = (&mut decoded).take(PEEK as u64).read_to_end(&mut head) {
                        self.state = State::Failed;
                        return Err(e);
                    }
                    let kind = ArchiveKind::of_head(&head);
                    let replayed = Cursor::new(head).chain(decoded);
                    self.state = match kind {
                        None => State::Through(replayed),
                        Some(kind) => State::Container(Box::new(Container {
                            entries: Entries {
                                kind,
                                archive: self.archive.clone(),
                                at: At::Between(BufReader::with_capacity(IO_CHUNK, replayed)),
                                globals: Vec::new(),
                            },
                            yielding: None,
                            files: Vec::new(),
                            image: None,
                            held: None,
                            inside: self.inside.clone(),
                        })),
                    };
                }
                State::Through(through) => return through.read(buf),
                State::Container(container) => {
                    let read = container.read(buf);
                    match read {
                        Ok(0) => self.state = State::Done,
                        Err(_) => self.state = State::Failed,
                        Ok(_) => {}
                    }
                    return read;
                }
                State::Done => return Ok(0),
                State::Failed => {
                    return Err(std::io::Error::other(
                        "it cannot be read past an earlier error",
                    ))
                }
            }
        }
    }
}

/// The most regular files an archive may hold beside its image, and the most characters of each
/// name kept for messages: together they bound what is held of the list.
const MAX_FILES: usize = 1000;
const MAX_NAME: usize = 200;

/// A regular file seen in the archive, for the messages that list them.
struct File {
    name: String,
    kind: ImageKind,
}

struct Container<'a> {
    entries: Entries<'a>,
    /// The image entry being read: its head replayed first.
    yielding: Option<Cursor<Vec<u8>>>,
    files: Vec<File>,
    /// The image entry's index in `files` once chosen; `tentative` when it has no known layout
    /// and so is the image only if no other file follows.
    image: Option<(usize, bool)>,
    /// The first file, when it has no known layout and fits in its head: the image if it is the
    /// only one, written once the archive's end shows that.
    held: Option<Vec<u8>>,
    inside: Inside,
}

impl Container<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(head) = &mut self.yielding {
                let n = head.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                let n = self.entries.read_body(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.yielding = None;
            }
            let Some(name) = self.entries.next_file()? else {
                return self.end(buf);
            };
            let mut head = Vec::with_capacity(image_kind::HEAD);
            (&mut self.entries)
                .take(image_kind::HEAD as u64)
                .read_to_end(&mut head)?;
            // Read whole when shorter than a head.
            let whole = head.len() < image_kind::HEAD;
            let kind = image_kind::classify(&head);
            if let Some((index, true)) = self.image {
                return Err(self.bad(format!(
                    "{} holds {}, which has no partition table or layout labflash knows, beside other files ({name}): extract the image you mean and flash that file",
                    self.entries.archive, self.files[index].name
                )));
            }
            let first = self.files.is_empty();
            // Memory stays bounded whatever the archive lists: names are kept short, and an
            // archive of more files than any image's companions is not an image's archive.
            if self.files.len() >= MAX_FILES {
                return Err(self.bad(format!(
                    "{} holds more than {MAX_FILES} files, which is not an archive of a disk image: extract the image you mean and flash that file",
                    self.entries.archive
                )));
            }
            self.files.push(File {
                name: name.chars().take(MAX_NAME).collect(),
                kind,
            });
            // A kind that is written, and tells itself a disk (not merely no known layout).
            let disk = kind != ImageKind::Unknown && kind.refusal("").is_none();
            if disk {
                if let Some((index, _)) = self.image {
                    return Err(self.bad(format!(
                        "{} holds more than one disk image ({} and {name}): extract the one you mean and flash that file",
                        self.entries.archive, self.files[index].name
                    )));
                }
                self.choose(head, false);
            } else if kind == ImageKind::Unknown && first && whole {
                self.held = Some(head);
            } else if kind == ImageKind::Unknown && first && self.image.is_none() {
                if crate::fetch::decompress::Format::detect(&head)
                    != crate::fetch::decompress::Format::Raw
                    || head.starts_with(b"BZh")
                {
                    return Err(self.bad(format!(
                        "{} holds {name}, which is itself compressed (xz, gzip, zstd or bzip2), not a disk image: extract it and flash that file (labflash decodes it)",
                        self.entries.archive
                    )));
                }
                self.choose(head, true);
            } else {
                // Not the image: skipped (a zip entry's CRC is still checked as it is read).
                std::io::copy(&mut self.entries, &mut std::io::sink())?;
            }
        }
    }

    fn choose(&mut self, head: Vec<u8>, tentative: bool) {
        let index = self.files.len() - 1;
        self.image = Some((index, tentative));
        let _ = self.inside.set(ImageInside {
            archive: self.entries.kind,
            name: self.files[index].name.clone(),
        });
        self.yielding = Some(Cursor::new(head));
    }

    /// The archive's end: the image is complete, or a lone small file is the image now.
    fn end(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.image.is_some() {
            return Ok(0);
        }
        let archive = &self.entries.archive;
        match self.files.as_slice() {
            [] => Err(self.bad(format!("{archive} holds no disk image (it holds no file)"))),
            [only] if only.kind == ImageKind::Unknown && self.held_is_compressed() => Err(self.bad(format!(
                "{archive} holds {}, which is itself compressed (xz, gzip, zstd or bzip2), not a disk image: extract it and flash that file (labflash decodes it)",
                only.name
            ))),
            [only] if only.kind == ImageKind::Unknown => {
                let head = self.held.take().expect("a lone unknown file is held");
                self.choose(head, false);
                self.read(buf)
            }
            [only] => {
                let what = format!("{} in {archive}", only.name);
                Err(self.bad(only.kind.refusal(&what).unwrap_or_else(|| {
                    format!(
                        "{archive} holds no disk image (its file {what} is {})",
                        only.kind
                    )
                })))
            }
            files => {
                let listed: Vec<String> = files
                    .iter()
                    .map(|f| match f.kind {
                        ImageKind::Unknown => f.name.clone(),
                        kind => format!("{} ({kind})", f.name),
                    })
                    .collect();
                Err(self.bad(format!(
                    "{archive} holds no disk image (its files: {}): extract the image you mean and flash that file",
                    listed.join(", ")
                )))
            }
        }
    }

    fn bad(&self, sentence: String) -> std::io::Error {
        error::into_io(Error::BadInput(sentence))
    }

    /// Whether the lone small file held starts as a compressed stream does (xz, gzip, zstd, or
    /// bzip2's "BZh"): written raw it would put the compressed bytes on the drive.
    fn held_is_compressed(&self) -> bool {
        self.held.as_deref().is_some_and(|head| {
            crate::fetch::decompress::Format::detect(head) != crate::fetch::decompress::Format::Raw
                || head.starts_with(b"BZh")
        })
    }
}

impl Read for Entries<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_body(buf)
    }
}

/// An entry's data as it is read, and what checks it at its end.
enum Body<'a> {
    /// Stored: a tar entry's data, a stored zip entry.
    Plain(Take<Src<'a>>),
    /// Deflated, with its compressed size known.
    Deflated(DeflateDecoder<Take<Src<'a>>>),
    /// Deflated, its sizes in a data descriptor after it (general purpose bit 3).
    Streamed(DeflateDecoder<Src<'a>>),
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Body::Plain(r) => r.read(buf),
            Body::Deflated(r) => r.read(buf),
            Body::Streamed(r) => r.read(buf),
        }
    }
}

/// What an entry's end must show.
struct Check {
    name: String,
    /// Bytes read of the entry's data.
    size: u64,
    /// tar: the padding to the next 512-byte block.
    padding: u64,
    /// zip: the CRC-32 of what was read, what the header says of it and of the size (`None`
    /// when a data descriptor says it), whether a descriptor follows and with 64-bit sizes.
    crc: Option<(crc32fast::Hasher, u32, Option<u64>, Option<bool>)>,
}

enum At<'a> {
    /// Between entries (before the next header).
    Between(Src<'a>),
    In(Box<Body<'a>>, Check),
    /// After the archive's end, everything read.
    End,
    /// Only while moving the source from one state to the next.
    Moving,
}

/// The entries of a tar or zip archive, read forward.
struct Entries<'a> {
    kind: ArchiveKind,
    archive: String,
    at: At<'a>,
    /// tar: the pax global header's records (`g`), which apply to every later entry.
    globals: Vec<(String, String)>,
}

impl<'a> Entries<'a> {
    fn corrupt(&self, detail: String) -> std::io::Error {
        error::into_io(Error::Corrupt {
            format: self.kind.name(),
            path: self.archive.clone().into(),
            detail,
        })
    }

    fn bad(&self, sentence: String) -> std::io::Error {
        error::into_io(Error::BadInput(sentence))
    }

    /// Skips to the next regular file and returns its name; `None` at the archive's end.
    fn next_file(&mut self) -> std::io::Result<Option<String>> {
        while matches!(self.at, At::In(..)) {
            std::io::copy(self, &mut std::io::sink())?;
        }
        if matches!(self.at, At::End) {
            return Ok(None);
        }
        match self.kind {
            ArchiveKind::Tar => self.next_tar(),
            ArchiveKind::Zip => self.next_zip(),
        }
    }

    fn src(&mut self) -> &mut Src<'a> {
        match &mut self.at {
            At::Between(src) => src,
            _ => unreachable!("read between entries only"),
        }
    }

    /// Fills `buf` whole, or returns how much was read before the stream's end.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let src = self.src();
        let mut filled = 0;
        while filled < buf.len() {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> std::io::Result<()> {
        if self.fill(buf)? < buf.len() {
            return Err(self.corrupt(format!("it ends in the middle of {what}")));
        }
        Ok(())
    }

    /// Reads the rest of the decoded stream (the tar's zero blocks, the zip's central directory),
    /// so everything beneath (an archive's digest) is checked before the image is called whole.
    fn finish(&mut self) -> std::io::Result<Option<String>> {
        std::io::copy(self.src(), &mut std::io::sink())?;
        self.at = At::End;
        Ok(None)
    }

    /// Starts an entry's data: `body` from the source.
    fn enter(&mut self, body: impl FnOnce(Src<'a>) -> Body<'a>, check: Check) {
        let At::Between(src) = std::mem::replace(&mut self.at, At::Moving) else {
            unreachable!("entered between entries")
        };
        self.at = At::In(Box::new(body(src)), check);
    }

    fn read_body(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let At::In(body, check) = &mut self.at else {
            return Ok(0);
        };
        let n = body.read(buf)?;
        check.size += n as u64;
        if let Some((crc, ..)) = &mut check.crc {
            crc.update(&buf[..n]);
        }
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let At::In(body, check) = std::mem::replace(&mut self.at, At::Moving) else {
            unreachable!("matched above")
        };
        self.leave(*body, check)?;
        Ok(0)
    }

    /// An entry's data ended: checks it whole and moves past its padding or data descriptor.
    fn leave(&mut self, body: Body<'a>, check: Check) -> std::io::Result<()> {
        let truncated = || format!("it ends in the middle of {}", check.name);
        let (left, compressed, src) = match body {
            Body::Plain(take) => (take.limit(), None, take.into_inner()),
            Body::Deflated(d) => {
                let take = d.into_inner();
                (take.limit(), None, take.into_inner())
            }
            Body::Streamed(d) => (0, Some(d.total_in()), d.into_inner()),
        };
        self.at = At::Between(src);
        if left > 0 {
            return Err(self.corrupt(truncated()));
        }
        let mut padding = vec![0u8; check.padding as usize];
        self.exact(&mut padding, &check.name)?;
        let Some((crc, header_crc, header_size, descriptor)) = check.crc else {
            return Ok(());
        };
        let (expected_crc, expected_size) = match descriptor {
            None => (header_crc, header_size),
            Some(zip64) => {
                let mut word = [0u8; 4];
                self.exact(&mut word, "a data descriptor")?;
                // APPNOTE 4.3.9.3: the descriptor's signature 0x08074b50 is optional.
                if word == *b"PK\x07\x08" {
                    self.exact(&mut word, "a data descriptor")?;
                }
                let crc = u32::from_le_bytes(word);
                let mut sizes = [0u8; 16];
                let sizes = &mut sizes[..if zip64 { 16 } else { 8 }];
                self.exact(sizes, "a data descriptor")?;
                let half = sizes.len() / 2;
                let (packed, size) = (le(&sizes[..half]), le(&sizes[half..]));
                if compressed.is_some_and(|c| c != packed) {
                    return Err(self.corrupt(format!(
                        "the data descriptor of {} says {packed} compressed bytes, not the {} there are",
                        check.name,
                        compressed.unwrap_or_default()
                    )));
                }
                (crc, Some(size))
            }
        };
        if expected_size.is_some_and(|s| s != check.size) {
            return Err(self.corrupt(format!(
                "{} holds {} bytes, not the {} its header says",
                check.name,
                check.size,
                expected_size.unwrap_or_default()
            )));
        }
        let actual = crc.finalize();
        if actual != expected_crc {
            return Err(self.corrupt(format!(
                "the CRC-32 of {} is {actual:08x}, not the {expected_crc:08x} it records",
                check.name
            )));
        }
        Ok(())
    }

    /// POSIX.1-2017 pax, "ustar Interchange Format" (and its pax extended headers), and GNU tar's
    /// manual, "Basic Tar Format" (long names `L`/`K`, base-256 numbers, sparse `S`).
    fn next_tar(&mut self) -> std::io::Result<Option<String>> {
        let mut long_name: Option<String> = None;
        let mut local: Vec<(String, String)> = Vec::new();
        loop {
            let Some(header) = self.tar_header()? else {
                return self.finish();
            };
            let records = self.globals.iter().chain(&local);
            let pax = |key: &str| {
                records
                    .clone()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let size = match pax("size") {
                Some(size) => size.parse().ok(),
                None => number(&header[124..136]),
            };
            let Some(size) = size else {
                return Err(self.corrupt("a tar header's size is not a number".into()));
            };
            let name = match (pax("path"), long_name.take()) {
                (Some(path), _) => path,
                (None, Some(long)) => long,
                (None, None) => header_name(&header),
            };
            let sparse = records.clone().any(|(k, _)| k.starts_with("GNU.sparse."));
            let padding = (512 - size % 512) % 512;
            // No archive holds an entry of 2^64 bytes: such a size would wrap when padded.
            if size.checked_add(padding).is_none() {
                return Err(
                    self.corrupt(format!("{name}'s size {size} is not a size any tar holds"))
                );
            }
            let typeflag = header[156];
            match typeflag {
                b'0' | 0 | b'7' | b'S' => {
                    if typeflag == b'S' || sparse {
                        return Err(self.bad(format!(
                            "{} stores {name} as a sparse file (tar -S), which labflash does not unpack as it streams: extract it (`tar -xf ARCHIVE`) and flash that file",
                            self.archive
                        )));
                    }
                    let check = Check {
                        name: name.clone(),
                        size: 0,
                        padding,
                        crc: None,
                    };
                    self.enter(|src| Body::Plain(src.take(size)), check);
                    return Ok(Some(name));
                }
                b'x' | b'g' | b'L' | b'K' => {
                    let data = self.tar_record(size, padding)?;
                    match typeflag {
                        b'L' => long_name = Some(c_string(&data)),
                        b'x' => local = self.pax_records(&data)?,
                        b'g' => self.globals = self.pax_records(&data)?,
                        // A long link name: links are skipped.
                        _ => {}
                    }
                }
                // Directories, links, devices, FIFOs and volume labels:
                // no file's data, skipped with whatever data they carry.
                _ => {
                    let mut skip = self.src().take(size + padding);
                    let skipped = std::io::copy(&mut skip, &mut std::io::sink())?;
                    if skipped < size + padding {
                        return Err(self.corrupt(format!("it ends in the middle of {name}")));
                    }
                    local.clear();
                }
            }
        }
    }

    /// The next tar header, its checksum checked; none where the archive ends (its zero blocks).
    fn tar_header(&mut self) -> std::io::Result<Option<[u8; 512]>> {
        let mut header = [0u8; 512];
        match self.fill(&mut header)? {
            // The stream ends after a complete entry: an archive without its zero blocks.
            0 => return Ok(None),
            512 => {}
            _ => return Err(self.corrupt("it ends in the middle of a tar header".into())),
        }
        if header.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        if !checksum_matches(&header) {
            return Err(self.corrupt("a tar header's checksum does not match its bytes".into()));
        }
        Ok(Some(header))
    }

    /// The data of a tar extended header (pax records, a GNU long name), its padding read past.
    fn tar_record(&mut self, size: u64, padding: u64) -> std::io::Result<Vec<u8>> {
        if size > RECORD_LIMIT {
            return Err(self.corrupt(format!(
                "a tar extended header of {size} bytes is larger than any holds"
            )));
        }
        let mut data = vec![0u8; (size + padding) as usize];
        self.exact(&mut data, "a tar extended header")?;
        data.truncate(size as usize);
        Ok(data)
    }

    /// pax extended header records: `"%d %s=%s\n", <length>, <keyword>, <value>`.
    fn pax_records(&self, mut data: &[u8]) -> std::io::Result<Vec<(String, String)>> {
        let mut records = Vec::new();
        while !data.is_empty() {
            let parsed = (|| {
                let space = data.iter().position(|b| *b == b' ')?;
                let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
                let record = data.get(space + 1..len)?.strip_suffix(b"\n")?;
                let eq = record.iter().position(|b| *b == b'=')?;
                let key = String::from_utf8_lossy(&record[..eq]).into_owned();
                let value = String::from_utf8_lossy(&record[eq + 1..]).into_owned();
                Some((len, key, value))
            })();
            let Some((len, key, value)) = parsed else {
                return Err(self.corrupt("a pax extended header record is malformed".into()));
            };
            records.push((key, value));
            data = &data[len..];
        }
        Ok(records)
    }

    /// PKWARE, APPNOTE.TXT 6.3.10: 4.3.7 local file header, 4.3.9 data descriptor, 4.5.3 the
    /// Zip64 extended information extra field; 4.4.4 general purpose bits 0 (encrypted) and 3
    /// (sizes in a data descriptor); 4.4.5 methods 0 (stored) and 8 (deflated).
    fn next_zip(&mut self) -> std::io::Result<Option<String>> {
        loop {
            let mut signature = [0u8; 4];
            if self.fill(&mut signature)? < 4 {
                return Err(self.corrupt("it ends before its central directory".into()));
            }
            match &signature {
                b"PK\x03\x04" => {}
                // The central directory (or an empty archive's end records): no entry follows.
                b"PK\x01\x02" | b"PK\x05\x06" | b"PK\x06\x06" | b"PK\x06\x07" => {
                    return self.finish()
                }
                _ => {
                    return Err(self.corrupt("bytes that are no zip record follow an entry".into()))
                }
            }
            let mut header = [0u8; 26];
            self.exact(&mut header, "a zip local file header")?;
            let flags = u16::from_le_bytes([header[2], header[3]]);
            let method = u16::from_le_bytes([header[4], header[5]]);
            let crc = u32::from_le_bytes(header[10..14].try_into().expect("4 bytes"));
            let mut packed = le(&header[14..18]);
            let mut size = le(&header[18..22]);
            let name_len = u16::from_le_bytes([header[22], header[23]]) as usize;
            let extra_len = u16::from_le_bytes([header[24], header[25]]) as usize;
            let mut name = vec![0u8; name_len];
            self.exact(&mut name, "a zip local file header")?;
            let name = String::from_utf8_lossy(&name).into_owned();
            let mut extra = vec![0u8; extra_len];
            self.exact(&mut extra, "a zip local file header")?;
            let zip64 = zip64_field(&extra);
            if let Some(values) = &zip64 {
                // 4.5.3: the fields are there for the header's fields set to 0xFFFFFFFF, in
                // order; a local header carries both.
                let mut values = values.iter().copied();
                if size == 0xFFFF_FFFF {
                    size = values.next().unwrap_or(size);
                }
                if packed == 0xFFFF_FFFF {
                    packed = values.next().unwrap_or(packed);
                }
            }
            let streamed = flags & 0x08 != 0;
            let directory = name.ends_with('/');
            if flags & 0x01 != 0 {
                return Err(self.bad(format!(
                    "{}'s {name} is encrypted, which labflash does not decrypt: extract it with `unzip` (which asks for the password) and flash that file",
                    self.archive
                )));
            }
            let check = Check {
                name: name.clone(),
                size: 0,
                padding: 0,
                crc: Some((
                    crc32fast::Hasher::new(),
                    crc,
                    (!streamed).then_some(size),
                    streamed.then_some(zip64.is_some()),
                )),
            };
            match (method, streamed) {
                (0, true) if packed == 0 && !directory => {
                    return Err(self.bad(format!(
                        "{} stores {name} uncompressed with its size only after its data (a zip written to a pipe), which labflash cannot unpack as it streams: extract it with `unzip` and flash that file",
                        self.archive
                    )));
                }
                (0, _) => self.enter(|src| Body::Plain(src.take(packed)), check),
                (8, false) => self.enter(
                    |src| Body::Deflated(DeflateDecoder::new(src.take(packed))),
                    check,
                ),
                (8, true) => self.enter(|src| Body::Streamed(DeflateDecoder::new(src)), check),
                (other, _) => {
                    return Err(self.bad(format!(
                        "{}'s {name} is compressed with zip method {other}, which labflash does not unpack (it reads stored and deflated entries): extract it with `unzip` and flash that file",
                        self.archive
                    )));
                }
            }
            if !directory {
                return Ok(Some(name));
            }
            std::io::copy(self, &mut std::io::sink())?;
        }
    }
}

/// Little-endian unsigned integer of 4 or 8 bytes.
fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

/// The Zip64 extended information extra field's 8-byte values (header ID 0x0001), if present.
fn zip64_field(mut extra: &[u8]) -> Option<Vec<u64>> {
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = u16::from_le_bytes([extra[2], extra[3]]) as usize;
        let data = extra.get(4..4 + len)?;
        if id == 0x0001 {
            return Some(data.chunks_exact(8).map(le).collect());
        }
        extra = &extra[4 + len..];
    }
    None
}

/// A tar header's name: ustar's `prefix` (POSIX magic "ustar\0" only: GNU keeps times there)
/// joined to `name`.
fn header_name(header: &[u8; 512]) -> String {
    let name = c_string(&header[..100]);
    let prefix = c_string(&header[345..500]);
    if &header[257..263] == b"ustar\0" && !prefix.is_empty() {
        format!("{prefix}/{name}")
    } else {
        name
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Whether a tar header's checksum field matches the sum of its bytes (the field itself counted
/// as spaces).
fn checksum_matches(header: &[u8; 512]) -> bool {
    let stored = octal(&header[148..156]);
    let unsigned: u64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u64
            }
        })
        .sum();
    // Some old tars summed signed bytes: accepted as GNU tar does.
    let signed: i64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as i8 as i64
            }
        })
        .sum();
    stored.is_some_and(|s| s == unsigned || s as i64 == signed)
}

/// A tar numeric field: octal digits (space or NUL padded).
fn octal(field: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(field)
        .ok()?
        .trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// A tar numeric field that may be GNU's base-256: the first byte's high bit set, the rest of
/// its bits and the following bytes a big-endian number (a set 0x40 bit is a negative one).
fn number(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(first) if first & 0x80 != 0 => {
            if first & 0x40 != 0 {
                return None;
            }
            let mut n = u64::from(first & 0x3F);
            for b in &field[1..] {
                n = n.checked_mul(256)? | u64::from(*b);
            }
            Some(n)
        }
        _ => octal(field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::decompress::{self, Format};
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    /// A GPT disk (protective MBR, UEFI 2.10 table 5-4, and "EFI PART" at LBA 1) of `len`
    /// bytes, the rest varied so that deflate makes many blocks of it.
    fn disk(len: usize, seed: u8) -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..len)
            .map(|i| ((i / 7) as u8).wrapping_mul(31) ^ (i % 251) as u8 ^ seed)
            .collect();
        bytes[446..458].copy_from_slice(&[0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0]);
        bytes[510..512].copy_from_slice(&[0x55, 0xAA]);
        bytes[512..520].copy_from_slice(b"EFI PART");
        bytes
    }

    /// A folder of files, archived by the real tools (GNU tar, Info-ZIP's zip).
    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new(files: &[(&str, &[u8])]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            for (name, bytes) in files {
                let path = dir.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            Dir(dir)
        }

        /// Runs `sh -c script` in the folder and returns what it wrote to `out` (zip names it
        /// `out.zip`).
        fn run(&self, script: &str) -> Vec<u8> {
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "rm -f out out.zip && {script} && if [ -e out.zip ]; then mv out.zip out; fi"
                ))
                .current_dir(self.0.path())
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{script} (tar and zip: setup.sh --tests)");
            std::fs::read(self.0.path().join("out")).unwrap()
        }
    }

    /// Reads `archive` through the decoder as a flash does, a few bytes at a time (so that
    /// headers and descriptors straddle every read).
    fn unwrap(archive: &[u8]) -> Result<(Vec<u8>, Option<ImageInside>), Error> {
        let input = std::io::BufReader::with_capacity(1000, Pieces(archive, 777));
        let mut decoder =
            decompress::decoder(input, Format::Raw, &PathBuf::from("x.arc"), u64::MAX).unwrap();
        let mut out = Vec::new();
        match decoder.read_to_end(&mut out) {
            Ok(_) => Ok((out, decoder.inside())),
            Err(e) => Err(error::from_io(Path::new("x.arc"), e)),
        }
    }

    fn inside(archive: ArchiveKind, name: &str) -> Option<ImageInside> {
        Some(ImageInside {
            archive,
            name: name.into(),
        })
    }

    /// The message of a `BadInput`, or a panic.
    fn refused(result: Result<(Vec<u8>, Option<ImageInside>), Error>) -> String {
        match result {
            Err(Error::BadInput(sentence)) => sentence,
            other => panic!("not refused: {:?}", other.map(|(_, inside)| inside)),
        }
    }

    fn corrupt(result: Result<(Vec<u8>, Option<ImageInside>), Error>) -> String {
        match result {
            Err(e @ Error::Corrupt { .. }) => e.to_string(),
            other => panic!("not corrupt: {:?}", other.map(|(_, inside)| inside)),
        }
    }

    const README: &[u8] = b"Flash disk.raw onto a stick.\n";

    #[test]
    fn unwrap_tar_gnu_and_pax_yield_the_disk_beside_a_readme() {
        let image = disk(3 << 20, 1);
        let long = format!("{}/disk.raw", "a-folder-name-that-is-long".repeat(5));
        let dir = Dir::new(&[("README", README), ("disk.raw", &image), (&long, &image)]);
        // GNU tar's own format (a directory entry, then files); pax, whose `path` record holds a
        // name longer than ustar's 100 bytes; GNU with that name (an `L` long-name entry).
        for (script, name) in [
            ("tar --format=gnu -cf out README disk.raw", "disk.raw"),
            ("tar --format=pax -cf out README a-folder*", long.as_str()),
            ("tar --format=gnu -cf out README a-folder*", long.as_str()),
        ] {
            let (bytes, found) = unwrap(&dir.run(script)).unwrap();
            assert_eq!(found, inside(ArchiveKind::Tar, name), "{script}");
            assert!(bytes == image, "{script}: the disk's bytes");
        }
    }

    #[test]
    fn unwrap_zip_stored_deflated_and_streamed() {
        let image = disk(3 << 20, 2);
        let dir = Dir::new(&[("README", README), ("disk.img", &image)]);
        // Info-ZIP's zip: stored (-0), deflated, to a pipe (general purpose bit 3: a data
        // descriptor after each entry, with its signature), and from a pipe too (Zip64 sizes).
        for (script, name) in [
            ("zip -q -0 out README disk.img", "disk.img"),
            ("zip -q out README disk.img", "disk.img"),
            ("zip -q - README disk.img | cat > out", "disk.img"),
            // Stored to a pipe: Info-ZIP still knows a file's size and writes it up front.
            ("zip -q -0 - README disk.img | cat > out", "disk.img"),
            ("cat disk.img | zip -q - - | cat > out", "-"),
        ] {
            let (bytes, found) = unwrap(&dir.run(script)).unwrap();
            assert_eq!(found, inside(ArchiveKind::Zip, name), "{script}");
            assert!(bytes == image, "{script}: the disk's bytes");
        }
    }

    /// A lone compressed file (small and held, or large and streamed on trial) is not written
    /// raw: its compressed bytes are not a disk.
    #[test]
    fn unwrap_refuses_a_lone_compressed_file() {
        let dir = Dir::new(&[("disk.raw", &disk(2 << 20, 9))]);
        for script in [
            "xz -k -0 disk.raw && tar -cf out disk.raw.xz",
            "gzip -k -1 disk.raw && zip -q -0 out disk.raw.gz",
        ] {
            let said = refused(unwrap(&dir.run(script)));
            assert!(said.contains("is itself compressed"), "{script}: {said}");
            let _ = std::fs::remove_file(dir.0.path().join("disk.raw.xz"));
            let _ = std::fs::remove_file(dir.0.path().join("disk.raw.gz"));
        }
        let small = dir.run("head -c 1000 /dev/zero | gzip > small.gz && tar -cf out small.gz");
        assert!(refused(unwrap(&small)).contains("small.gz, which is itself compressed"));
    }

    /// An entry whose size would wrap a u64 when padded to 512 bytes is corrupt, never read as
    /// a short entry (GNU base-256: a leading 0x80 byte, then the size big-endian).
    #[test]
    fn unwrap_refuses_a_tar_size_that_would_wrap() {
        let dir = Dir::new(&[("README", README), ("disk.raw", &disk(1 << 20, 8))]);
        let mut tar = dir.run("tar --format=gnu -cf out README disk.raw");
        tar[124] = 0x80;
        tar[125..128].fill(0);
        tar[128..136].fill(0xFF);
        // The header's checksum (POSIX: the sum of its bytes, the field itself as spaces).
        tar[148..156].fill(b' ');
        let sum: u32 = tar[..512].iter().map(|b| *b as u32).sum();
        tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let said = corrupt(unwrap(&tar));
        assert!(said.contains("not a size any tar holds"), "{said}");
    }

    #[test]
    fn unwrap_passes_anything_else_through() {
        let image = disk(100_000, 3);
        assert_eq!(unwrap(&image).unwrap(), (image, None));
        assert_eq!(unwrap(b"short").unwrap(), (b"short".to_vec(), None));
        assert_eq!(unwrap(b"").unwrap(), (Vec::new(), None));
    }

    #[test]
    fn unwrap_refuses_two_images_none_and_a_lone_qcow2() {
        let (a, b) = (disk(1 << 20, 4), disk(1 << 20, 5));
        let qcow2 = [&b"QFI\xfb\x00\x00\x00\x03"[..], &[0u8; 1000]].concat();
        let dir = Dir::new(&[("a.img", &a), ("b.img", &b), ("README", README)]);
        std::fs::write(dir.0.path().join("disk.qcow2"), &qcow2).unwrap();
        let two = refused(unwrap(&dir.run("zip -q out a.img README b.img")));
        assert_eq!(
            two,
            "x.arc holds more than one disk image (a.img and b.img): extract the one you mean and flash that file"
        );
        let none = refused(unwrap(&dir.run("tar -cf out README disk.qcow2")));
        assert_eq!(
            none,
            "x.arc holds no disk image (its files: README, disk.qcow2 (qcow2)): extract the image you mean and flash that file"
        );
        let lone = refused(unwrap(&dir.run("tar -cf out disk.qcow2")));
        assert!(
            lone.starts_with("disk.qcow2 in x.arc is a qcow2 virtual-machine disk"),
            "{lone}"
        );
        // A nested archive is named as what it is, not unwrapped again.
        let nested = dir.run("tar -cf inner.tar a.img && tar -cf out inner.tar");
        let nested = refused(unwrap(&nested));
        assert!(
            nested.starts_with("inner.tar in x.arc is a tar archive"),
            "{nested}"
        );
    }

    #[test]
    fn unwrap_writes_a_lone_file_of_unknown_layout_only_when_alone() {
        let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
        let dir = Dir::new(&[("blob.img", &blob), ("README", README)]);
        let (bytes, found) = unwrap(&dir.run("zip -q out blob.img")).unwrap();
        assert_eq!(found, inside(ArchiveKind::Zip, "blob.img"));
        assert!(bytes == blob);
        // A small one too (held until the archive's end shows it is alone).
        let (bytes, _) = unwrap(&dir.run("tar -cf out README")).unwrap();
        assert_eq!(bytes, README);
        let beside = refused(unwrap(&dir.run("tar -cf out blob.img README")));
        assert!(
            beside.contains("blob.img, which has no partition table"),
            "{beside}"
        );
        let readme_first = refused(unwrap(&dir.run("tar -cf out README blob.img")));
        assert!(
            readme_first.contains("its files: README, blob.img"),
            "{readme_first}"
        );
    }

    #[test]
    fn unwrap_finds_a_truncated_tar_and_a_bad_crc() {
        let image = disk(1 << 20, 6);
        let dir = Dir::new(&[("disk.raw", &image)]);
        let tar = dir.run("tar -cf out disk.raw");
        let cut = corrupt(unwrap(&tar[..600_000]));
        assert!(cut.contains("ends in the middle of disk.raw"), "{cut}");
        let mut bad_sum = tar.clone();
        bad_sum[0] ^= 1;
        let sum = unwrap(&bad_sum);
        // The flipped name no longer makes ustar's magic move: still a tar, its checksum bad.
        assert!(corrupt(sum).contains("checksum"));
        for script in ["zip -q -0 out disk.raw", "zip -q - disk.raw | cat > out"] {
            let mut zip = dir.run(script);
            let at = zip.len() / 2;
            zip[at] ^= 0x40;
            let err = unwrap(&zip);
            assert!(
                matches!(&err, Err(Error::Corrupt { .. })),
                "{script}: {:?}",
                err.map(|(_, i)| i)
            );
        }
        let mut zip = dir.run("zip -q -0 out disk.raw");
        zip[300_000] ^= 1;
        let crc = corrupt(unwrap(&zip));
        assert!(crc.contains("the CRC-32 of disk.raw is"), "{crc}");
    }

    #[test]
    fn unwrap_refuses_encrypted_and_unsized_stored_zip_entries() {
        let image = disk(1 << 20, 7);
        let dir = Dir::new(&[("disk.raw", &image)]);
        let encrypted = refused(unwrap(&dir.run("zip -q -P secret out disk.raw")));
        assert!(encrypted.contains("disk.raw is encrypted"), "{encrypted}");
        // Info-ZIP refuses to store to a pipe ("zip -0 not supported for I/O on pipes"); CPython's
        // zipfile writes such an entry: stored, its sizes in a data descriptor after it.
        let python = "python3 -c \"import sys, zipfile\n\
            with zipfile.ZipFile(sys.stdout.buffer, 'w') as z, z.open('disk.raw', 'w') as f:\n\
            \tf.write(open('disk.raw', 'rb').read())\" | cat > out";
        let no_size = refused(unwrap(&dir.run(python)));
        assert!(no_size.contains("extract it with `unzip`"), "{no_size}");
    }

    #[test]
    fn tar_numbers_octal_and_base_256() {
        assert_eq!(number(b"00000001000\0"), Some(512));
        assert_eq!(number(b"     1000 \0 "), Some(512));
        // GNU tar's manual, "Basic Tar Format": a size past 8 GiB as base-256, the first byte's
        // high bit set, the rest big-endian.
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[4..12].copy_from_slice(&(9u64 << 30).to_be_bytes());
        assert_eq!(number(&field), Some(9 << 30));
        field[0] = 0xFF;
        assert_eq!(number(&field), None, "negative");
        assert_eq!(number(b"12345678x\0\0\0"), None);
    }

    /// Reads at most `.1` bytes at a time.
    struct Pieces<'a>(&'a [u8], usize);

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
}
