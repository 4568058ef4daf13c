//! The size of the image inside an archive, from the archive's own records, before anything is
//! decoded, so a drive too small for it is refused with nothing written:
//!
//! - xz: every stream ends with an index of its blocks' sizes (walked back from the file's end,
//!   stream by stream): exact.
//! - gzip: the last 4 bytes are the last member's size modulo 4 GiB: a lower bound, exact only
//!   for one member under 4 GiB, which the tail cannot tell.
//! - zstd: each frame may record its content size; walking a file's frames gives the exact sum,
//!   and a URL's first frame header (without ranges into the rest) a lower bound.
//!
//! A tar or zip's size is not its image's (a tar adds headers and other files, a deflated zip is
//! smaller than its image): an uncompressed one, or a URL named `….tar.xz`, is reported unknown,
//! and a flash that finds an archive inside a compressed file drops the size it read (see
//! `flash::stream`).
//!
//! Nothing here is trusted for safety: the decoder still enforces `--max-image-size` and a
//! drive's end, and an archive whose records lie fails to decode (liblzma checks the index).

use std::fs::File;
use std::path::Path;

use url::Url;

use crate::fetch::decompress::Format;
use crate::fetch::http::{Http, Span};
use crate::CancellationToken;

/// What an archive says of its image's size.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSize {
    pub bytes: u64,
    /// `false`: the image holds at least `bytes`.
    pub exact: bool,
}

impl ImageSize {
    fn exact(bytes: u64) -> Self {
        Self { bytes, exact: true }
    }

    fn at_least(bytes: u64) -> Self {
        Self {
            bytes,
            exact: false,
        }
    }

    /// Whether it says anything: "at least 0 bytes" does not.
    fn tells(&self) -> bool {
        self.exact || self.bytes > 0
    }

    /// The size for people: "268435456 bytes (268.4 MB)" or "at least …".
    pub fn describe(&self) -> String {
        let size = format!(
            "{} bytes ({})",
            self.bytes,
            crate::io::drives::human_size(self.bytes)
        );
        if self.exact {
            size
        } else {
            format!("at least {size}")
        }
    }
}

/// Refuses an image whose archive records a size over the limit, before anything is decoded.
pub fn check_limit(size: Option<ImageSize>, limit: u64) -> crate::Result<()> {
    match size {
        Some(size) if size.bytes > limit => Err(crate::Error::ImageTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Bytes read from an archive's end first: an xz index of a multi-GiB image fits many times over.
const TAIL: u64 = 64 << 10;
/// Bytes an xz size walk may read in all (indexes of every stream, from a file or over HTTP).
const XZ_WALK_LIMIT: u64 = 16 << 20;
/// Range requests a URL's xz walk may make (one per stream after the first window).
const RANGE_REQUESTS: usize = 4;

/// What the xz walk needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum XzWalk {
    /// The image's size: the sum of every stream's blocks.
    Size(u64),
    /// The bytes from this offset up to the window's start are needed too.
    Need(u64),
}

const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0];
const XZ_FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];

/// Walks an xz file back from its end: `window` holds its bytes from `window_start` to the end.
/// Errors say why the records cannot be read (the file is then no xz file, or a corrupt one).
pub fn xz_walk(window: &[u8], window_start: u64) -> Result<XzWalk, String> {
    let at = |offset: u64, len: u64| -> Option<&[u8]> {
        let from = offset.checked_sub(window_start)?;
        window.get(usize::try_from(from).ok()?..usize::try_from(from + len).ok()?)
    };
    let mut end = window_start + window.len() as u64;
    let mut total = 0u64;
    loop {
        // Stream padding: zero bytes in multiples of four between and after streams. Padding
        // that runs past the window asks for a window twice as large (not four bytes more: a
        // walk per four bytes of padding would be quadratic).
        while end >= 4 {
            match at(end - 4, 4) {
                Some([0, 0, 0, 0]) => end -= 4,
                Some(_) => break,
                None => {
                    let more = (window.len() as u64).max(TAIL);
                    return Ok(XzWalk::Need(window_start.saturating_sub(more)));
                }
            }
        }
        if end < 24 {
            return Err("it is too short for an xz stream".into());
        }
        let Some(footer) = at(end - 12, 12) else {
            return Ok(XzWalk::Need(end - 12));
        };
        if footer[10..] != XZ_FOOTER_MAGIC {
            return Err("it does not end with an xz stream footer".into());
        }
        if crc32fast::hash(&footer[4..10]) != u32_le(&footer[..4]) {
            return Err("its xz stream footer is corrupt".into());
        }
        let index_len = (u64::from(u32_le(&footer[4..8])) + 1) * 4;
        let index_start = (end - 12)
            .checked_sub(index_len)
            .ok_or("its xz index is larger than the file")?;
        let Some(index) = at(index_start, index_len) else {
            return Ok(XzWalk::Need(index_start));
        };
        let (blocks, decoded) = xz_index(index)?;
        total = total
            .checked_add(decoded)
            .ok_or("its xz index adds up to more than 2^64 bytes")?;
        let start = index_start
            .checked_sub(blocks)
            .and_then(|s| s.checked_sub(12))
            .ok_or("its xz index names more bytes than the file holds")?;
        if start == 0 {
            return Ok(XzWalk::Size(total));
        }
        match at(start, 6) {
            Some(magic) if magic == XZ_MAGIC => end = start,
            Some(_) => return Err("its xz index does not lead to a stream header".into()),
            None => return Ok(XzWalk::Need(start.saturating_sub(TAIL))),
        }
    }
}

/// Reads one xz index: the bytes its blocks take in the file, and their decoded sizes.
fn xz_index(index: &[u8]) -> Result<(u64, u64), String> {
    let bad = |what: &str| format!("its xz index is corrupt ({what})");
    let (body, crc) = index.split_at(index.len() - 4);
    if crc32fast::hash(body) != u32_le(crc) {
        return Err(bad("checksum"));
    }
    if body.first() != Some(&0) {
        return Err(bad("no index indicator"));
    }
    let mut pos = 1;
    let records = varint(body, &mut pos).ok_or_else(|| bad("record count"))?;
    let (mut blocks, mut decoded) = (0u64, 0u64);
    for _ in 0..records {
        let unpadded = varint(body, &mut pos).ok_or_else(|| bad("record"))?;
        let size = varint(body, &mut pos).ok_or_else(|| bad("record"))?;
        if unpadded < 5 {
            return Err(bad("block size"));
        }
        let padded = unpadded.checked_next_multiple_of(4);
        blocks = padded
            .and_then(|p| blocks.checked_add(p))
            .ok_or_else(|| bad("block size"))?;
        decoded = decoded.checked_add(size).ok_or_else(|| bad("sizes"))?;
    }
    // The rest: 0-3 zero bytes of padding up to the CRC's four-byte boundary.
    let rest = &body[pos.min(body.len())..];
    if pos > body.len() || rest.len() > 3 || rest.iter().any(|b| *b != 0) {
        return Err(bad("its length"));
    }
    Ok((blocks, decoded))
}

/// An xz multibyte integer: 7 bits per byte, least significant first, at most 9 bytes.
fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // The shortest form only: a last byte of zero would be padding.
            return (i == 0 || byte != 0).then_some(value);
        }
    }
    None
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("four bytes"))
}

/// Deflate's densest coding: 258 bytes from about 2 bits, so at most 1032 bytes per byte.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// gzip's ISIZE (the last 4 bytes): the last member's size modulo 2^32, so at most the image's.
/// `len` is the whole file's: an ISIZE no deflate stream of that length can reach is a cut or
/// damaged file's, not a size.
pub fn gzip_size(tail: &[u8], len: u64) -> Option<ImageSize> {
    let last = tail.len().checked_sub(4).map(|at| &tail[at..])?;
    let size = u64::from(u32_le(last));
    (size <= len.saturating_mul(DEFLATE_MAX_RATIO)).then(|| ImageSize::at_least(size))
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// One zstd frame header at the start of `bytes`: its content size if recorded, and the
/// header's length.
fn zstd_header(bytes: &[u8]) -> Result<(Option<u64>, usize), String> {
    if bytes.len() < 5 || u32_le(bytes) != ZSTD_MAGIC {
        return Err("it has no zstd frame header here".into());
    }
    let descriptor = bytes[4];
    let single_segment = descriptor & 0x20 != 0;
    if descriptor & 0x08 != 0 {
        return Err("its zstd frame header sets a reserved bit".into());
    }
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let content = match descriptor >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let at = 5 + usize::from(!single_segment) + dictionary;
    let field = bytes
        .get(at..at + content)
        .ok_or("its zstd frame header is cut short")?;
    let mut raw = [0u8; 8];
    raw[..content].copy_from_slice(field);
    let value = u64::from_le_bytes(raw);
    let size = match content {
        0 => None,
        2 => Some(value + 256),
        _ => Some(value),
    };
    Ok((size, at + content))
}

/// Walks every frame of a zstd file of `len` bytes (skipping block by block) and sums their
/// content sizes: exact when every frame records one, else a lower bound.
pub fn zstd_walk(
    read_at: &mut dyn FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    len: u64,
) -> Result<ImageSize, String> {
    let io = |e: std::io::Error| e.to_string();
    let (mut pos, mut total, mut exact) = (0u64, 0u64, true);
    while pos < len {
        let mut head = [0u8; 18];
        let n = (len - pos).min(18) as usize;
        read_at(pos, &mut head[..n]).map_err(io)?;
        if n < 5 {
            return Err("its last zstd frame is cut short".into());
        }
        if n >= 8 && u32_le(&head) & 0xFFFF_FFF0 == 0x184D_2A50 {
            // A skippable frame: its length follows the magic.
            pos = pos
                .checked_add(8 + u64::from(u32_le(&head[4..8])))
                .ok_or("a skippable frame runs past 2^64")?;
            continue;
        }
        let (size, header) = zstd_header(&head[..n])?;
        let checksum = head[4] & 0x04 != 0;
        match size {
            Some(size) => total = total.checked_add(size).ok_or("its sizes pass 2^64")?,
            None => exact = false,
        }
        pos += header as u64;
        loop {
            let mut block = [0u8; 3];
            if pos + 3 > len {
                return Err("a zstd frame is cut short".into());
            }
            read_at(pos, &mut block).map_err(io)?;
            let header = u32::from(block[0]) | u32::from(block[1]) << 8 | u32::from(block[2]) << 16;
            let kind = (header >> 1) & 3;
            let size = u64::from(header >> 3);
            pos += 3 + match kind {
                1 => 1,
                3 => return Err("a zstd block has the reserved type".into()),
                _ => size,
            };
            if header & 1 != 0 {
                break;
            }
        }
        pos += if checksum { 4 } else { 0 };
    }
    if pos != len {
        return Err("its last zstd frame is cut short".into());
    }
    Ok(ImageSize {
        bytes: total,
        exact,
    })
}

/// The size of the image in the open archive `file` (`path` names it in logs): `None` when its
/// records cannot tell (logged) or it is an uncompressed tar or zip, the file's own size for an
/// uncompressed image.
pub fn of_open_file(file: &File, path: &Path) -> std::io::Result<Option<ImageSize>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    let mut read_at = |offset: u64, buf: &mut [u8]| {
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    };
    let format = Format::of_open(file, path).map_err(std::io::Error::other)?;
    let found = match format {
        Format::Raw => {
            let own = crate::fetch::decompress::is_own_image(file, path)
                .map_err(std::io::Error::other)?;
            return Ok(own.then_some(ImageSize::exact(len)));
        }
        Format::Zstd => zstd_walk(&mut read_at, len),
        Format::Gzip | Format::Xz => {
            let mut start = len.saturating_sub(TAIL);
            let mut window = vec![0u8; (len - start) as usize];
            read_at(start, &mut window)?;
            if format == Format::Gzip {
                return Ok(gzip_size(&window, len));
            }
            loop {
                match xz_walk(&window, start) {
                    Ok(XzWalk::Size(size)) => break Ok(ImageSize::exact(size)),
                    Ok(XzWalk::Need(from)) if len - from <= XZ_WALK_LIMIT && from < start => {
                        let mut more = vec![0u8; (start - from) as usize];
                        read_at(from, &mut more)?;
                        more.extend_from_slice(&window);
                        (window, start) = (more, from);
                    }
                    Ok(XzWalk::Need(_)) => break Err("its xz indexes are too large".into()),
                    Err(e) => break Err(e),
                }
            }
        }
    };
    Ok(found
        .inspect_err(|why| tracing::info!(path = %path.display(), "the image's size is unknown until decoded: {why}"))
        .ok()
        .filter(ImageSize::tells))
}

/// The size of the image in the archive at `url`, from one `Range` request (a few for an xz file
/// of several streams): its tail for xz and gzip, its first frame header for zstd. `None` when
/// the server takes no ranges or the name is no archive's; a failing request is only logged.
pub async fn of_url(http: &Http, url: &Url, cancel: &CancellationToken) -> Option<ImageSize> {
    let name = url.path().to_ascii_lowercase();
    // An uncompressed disk image is its own size: the total of a one-byte range. (Named so but
    // compressed, the decoder finds out and the size is only progress: see `flash::stream`.)
    if [".raw", ".img", ".iso"]
        .iter()
        .any(|ext| name.ends_with(ext))
    {
        let window = match http.get_range(url, Span::Tail(1), cancel).await {
            Ok(window) => window?,
            Err(e) => {
                tracing::info!(%url, "no range of the image to read its size from: {e}");
                return None;
            }
        };
        return Some(ImageSize::exact(window.total));
    }
    let format = [
        (".xz", Format::Xz),
        (".gz", Format::Gzip),
        (".zst", Format::Zstd),
    ]
    .into_iter()
    .find_map(|(ext, format)| name.ends_with(ext).then_some(format))?;
    if name.contains(".tar.") {
        // A compressed tar records the tar's size, not its image's.
        return None;
    }
    let span = match format {
        Format::Zstd => Span::Head(18),
        _ => Span::Tail(TAIL),
    };
    let ranged = |span| async move {
        match http.get_range(url, span, cancel).await {
            Ok(ranged) => ranged,
            Err(e) => {
                tracing::info!(%url, "no range of the archive to read its image's size from: {e}");
                None
            }
        }
    };
    let mut window = ranged(span).await?;
    if matches!(span, Span::Tail(_)) && window.start + window.bytes.len() as u64 != window.total {
        return None;
    }
    let found = match format {
        Format::Zstd => {
            zstd_header(&window.bytes).map(|(size, _)| ImageSize::at_least(size.unwrap_or(0)))
        }
        Format::Gzip => gzip_size(&window.bytes, window.total)
            .ok_or_else(|| "its size field is not a size it could hold".into()),
        _ => {
            let mut requests = 1;
            loop {
                match xz_walk(&window.bytes, window.start) {
                    Ok(XzWalk::Size(size)) => break Ok(ImageSize::exact(size)),
                    Ok(XzWalk::Need(from))
                        if requests < RANGE_REQUESTS
                            && window.total - from <= XZ_WALK_LIMIT
                            && from < window.start =>
                    {
                        requests += 1;
                        let more = ranged(Span::Between(from, window.start)).await?;
                        if more.start != from || more.bytes.len() as u64 != window.start - from {
                            break Err("the server answered another range".into());
                        }
                        let mut bytes = more.bytes;
                        bytes.extend_from_slice(&window.bytes);
                        (window.bytes, window.start) = (bytes, from);
                    }
                    Ok(XzWalk::Need(_)) => {
                        break Err("its xz indexes need too many requests".into())
                    }
                    Err(e) => break Err(e),
                }
            }
        }
    };
    found
        .inspect_err(
            |why: &String| tracing::info!(%url, "the image's size is unknown until decoded: {why}"),
        )
        .ok()
        .filter(ImageSize::tells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn xz(data: &[u8], block: Option<u64>) -> Vec<u8> {
        use liblzma::stream::{Check, MtStreamBuilder};
        let mut builder = MtStreamBuilder::new();
        builder.preset(0).check(Check::Crc64).threads(1);
        if let Some(block) = block {
            builder.block_size(block);
        }
        let stream = builder.encoder().unwrap();
        let mut out = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        out.write_all(data).unwrap();
        out.finish().unwrap()
    }

    fn walk_all(bytes: &[u8]) -> Result<XzWalk, String> {
        xz_walk(bytes, 0)
    }

    #[test]
    fn an_xz_index_gives_the_exact_size_of_every_block_and_stream() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let one = xz(&data, None);
        assert_eq!(walk_all(&one), Ok(XzWalk::Size(data.len() as u64)));
        let blocks = xz(&data, Some(64 << 10));
        assert_eq!(walk_all(&blocks), Ok(XzWalk::Size(data.len() as u64)));
        // Two streams with padding between and after: the sizes add up.
        let mut two = one.clone();
        two.extend_from_slice(&[0; 8]);
        two.extend_from_slice(&xz(b"tail", None));
        two.extend_from_slice(&[0; 4]);
        assert_eq!(walk_all(&two), Ok(XzWalk::Size(data.len() as u64 + 4)));
    }

    #[test]
    fn a_short_window_asks_for_the_bytes_it_lacks() {
        let data = noise(200_000);
        let mut two = xz(&data, Some(16 << 10));
        let first = two.len() as u64;
        two.extend_from_slice(&xz(&data, Some(16 << 10)));
        let start = two.len() as u64 - 40;
        let mut window = two[start as usize..].to_vec();
        let mut window_start = start;
        let mut asked = 0;
        let size = loop {
            match xz_walk(&window, window_start).unwrap() {
                XzWalk::Size(size) => break size,
                XzWalk::Need(from) => {
                    asked += 1;
                    assert!(from < window_start);
                    let mut more = two[from as usize..window_start as usize].to_vec();
                    more.extend_from_slice(&window);
                    (window, window_start) = (more, from);
                }
            }
        };
        assert_eq!(size, 2 * data.len() as u64);
        assert!(
            asked >= 2,
            "{asked}: the first stream's footer lies before the first window"
        );
        assert!(
            window_start < first,
            "the walk reached into the first stream"
        );
    }

    pub(super) fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn long_padding_is_walked_in_few_rounds() {
        let data = noise(10_000);
        let mut padded = xz(&data, None);
        padded.extend_from_slice(&vec![0; 4 << 20]);
        let len = padded.len() as u64;
        let mut start = len - TAIL;
        let mut rounds = 0;
        let size = loop {
            rounds += 1;
            match xz_walk(&padded[start as usize..], start).unwrap() {
                XzWalk::Size(size) => break size,
                XzWalk::Need(from) => start = from,
            }
        };
        assert_eq!(size, data.len() as u64);
        assert!(rounds <= 10, "{rounds} rounds for 4 MiB of padding");
    }

    #[test]
    fn broken_xz_records_are_reasons_not_sizes() {
        let good = xz(b"hello", None);
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 9] ^= 1; // the backward size: its CRC no longer matches
        assert!(walk_all(&flipped).is_err());
        let mut index = good.clone();
        index[n - 14] ^= 0x40; // inside the index: its CRC no longer matches
        assert!(walk_all(&index).is_err());
        assert!(walk_all(b"not xz at all, just some text").is_err());
        assert!(walk_all(&[0; 64]).is_err());
        assert!(walk_all(&good[1..]).is_err(), "a missing first byte");
    }

    #[test]
    fn gzip_gives_a_lower_bound() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; 100_000]).unwrap();
        let one = gz.finish().unwrap();
        let len = one.len() as u64;
        assert_eq!(gzip_size(&one, len), Some(ImageSize::at_least(100_000)));
        assert_eq!(gzip_size(&[1, 2], 2), None);
        // A cut file's last bytes are not its size: more than deflate could hold is none.
        assert_eq!(gzip_size(&[0xff, 0xff, 0xff, 0x7f], 4), None);
    }

    #[test]
    fn zstd_frames_are_walked_and_summed() {
        // The bulk API records each frame's size, as the zstd tool does for a file.
        let a = zstd::bulk::compress(&[5u8; 300_000], 1).unwrap();
        let b = zstd::bulk::compress(&noise(70_000), 3).unwrap();
        let streamed = zstd::encode_all(&[5u8; 1000][..], 1).unwrap();
        let mut both = a.clone();
        both.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        both.extend_from_slice(&b);
        let read = |bytes: &[u8]| {
            let bytes = bytes.to_vec();
            let len = bytes.len() as u64;
            zstd_walk(
                &mut |at, buf: &mut [u8]| {
                    let at = at as usize;
                    buf.copy_from_slice(
                        bytes
                            .get(at..at + buf.len())
                            .ok_or(std::io::ErrorKind::UnexpectedEof)?,
                    );
                    Ok(())
                },
                len,
            )
        };
        assert_eq!(read(&a), Ok(ImageSize::exact(300_000)));
        assert_eq!(read(&both), Ok(ImageSize::exact(370_000)));
        assert!(read(&both[..both.len() - 2]).is_err(), "cut short");
        let mut unsized_too = both.clone();
        unsized_too.extend_from_slice(&streamed);
        assert_eq!(read(&unsized_too), Ok(ImageSize::at_least(370_000)));
        assert_eq!(
            zstd_header(&a).map(|(size, _)| size),
            Ok(Some(300_000)),
            "the first frame alone"
        );
    }
}
