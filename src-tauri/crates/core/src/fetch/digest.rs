//! SHA-256 digests: parsing what operators type and publishers serve, and hashing files.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{io_at, Error, Result};
use crate::progress::{ProgressSink, Reporter, Stage};
use crate::CancellationToken;

/// A SHA-256 digest. Displays as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn of_hasher(hasher: Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.hex())
    }
}

/// Why a string is not a SHA-256 digest.
#[derive(Debug, PartialEq, Eq)]
pub struct NotADigest;

impl FromStr for Sha256Digest {
    type Err = NotADigest;

    /// Exactly 64 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, NotADigest> {
        if s.len() != 64 {
            return Err(NotADigest);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| NotADigest)?;
        Ok(Self(out))
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("not a 64-digit hex SHA-256"))
    }
}

/// Parses a digest an operator typed; the error names the value.
pub fn parse_typed(s: &str) -> Result<Sha256Digest> {
    s.trim().parse().map_err(|_| {
        Error::BadInput(format!(
            "{s:?} is not a SHA-256 digest (64 hex digits expected)"
        ))
    })
}

/// Reads the expected digest from a `.sha256` sidecar: first line, first whitespace-separated token.
/// `"<hex>  <filename>"` (GNU) and a bare `"<hex>"` are both accepted.
pub fn parse_sidecar(text: &str, url: &str) -> Result<Sha256Digest> {
    if text.trim().is_empty() {
        return Err(Error::SidecarEmpty { url: url.into() });
    }
    let first_line = text.lines().next().unwrap_or("");
    let Some(token) = first_line.split_whitespace().next() else {
        return Err(Error::SidecarNoDigest { url: url.into() });
    };
    token.parse().map_err(|_| Error::SidecarMalformed {
        url: url.into(),
        token: token.chars().take(80).collect(),
    })
}

/// The file a `.sha256` sidecar's first line names (`"<hex>  name"` or `"<hex> *name"`), if any.
pub fn sidecar_names(text: &str) -> Option<&str> {
    let first_line = text.lines().next()?;
    let mut tokens = first_line.split_whitespace();
    tokens.next()?;
    let name = tokens.next()?.trim_start_matches('*');
    (!name.is_empty()).then_some(name)
}

/// Finds `filename`'s digest in a SHA256SUMS file: GNU lines (`<hex>  name`, `<hex> *name`) and
/// BSD lines (`SHA256 (name) = <hex>`). `None` when no line names the file.
pub fn parse_sha256sums(text: &str, filename: &str) -> Option<Sha256Digest> {
    text.lines().find_map(|line| {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("SHA256 (") {
            let (name, hex) = rest.rsplit_once(") = ")?;
            return (name == filename)
                .then(|| hex.trim().parse().ok())
                .flatten();
        }
        let (hex, name) = line.split_once(char::is_whitespace)?;
        let name = name.trim_start();
        let name = name.strip_prefix('*').unwrap_or(name);
        let name = name.strip_prefix("./").unwrap_or(name);
        (name == filename).then(|| hex.parse().ok()).flatten()
    })
}

/// Hashes a whole file (blocking), reporting progress and stopping when cancelled.
pub fn hash_file(
    path: &Path,
    stage: Stage,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<(Sha256Digest, u64)> {
    let mut file = File::open(path).map_err(io_at(path))?;
    hash_open(&mut file, path, stage, cancel, progress)
}

/// Hashes an open file from its start (blocking); `path` names it in errors. Whoever goes on to
/// use those bytes reads them from this same descriptor.
pub fn hash_open(
    file: &mut File,
    path: &Path,
    stage: Stage,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<(Sha256Digest, u64)> {
    file.rewind().map_err(io_at(path))?;
    let total = file.metadata().map_err(io_at(path))?.len();
    let mut reporter = Reporter::new(progress, stage, Some(total));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; crate::IO_CHUNK];
    let mut done = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = file.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        reporter.update(done);
    }
    reporter.finish(done);
    Ok((Sha256Digest::of_hasher(hasher), done))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

    #[test]
    fn typed_digest_any_case() {
        let lower = parse_typed(HEX).unwrap();
        let upper = parse_typed(&HEX.to_uppercase()).unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower.to_string(), HEX);
    }

    #[test]
    fn typed_digest_rejects_wrong_length_and_non_hex() {
        assert!(parse_typed(&HEX[..63]).is_err());
        assert!(parse_typed(&format!("{HEX}0")).is_err());
        let mut bad = HEX.to_string();
        bad.replace_range(10..11, "g");
        let err = parse_typed(&bad).unwrap_err();
        assert!(matches!(err, Error::BadInput(_)));
        assert!(err.to_string().contains("not a SHA-256 digest"));
    }

    #[test]
    fn sidecar_gnu_format_and_bare_digest() {
        let gnu = format!("{HEX}  nocloud-amd64.raw.xz\n");
        assert_eq!(parse_sidecar(&gnu, "u").unwrap().hex(), HEX);
        assert_eq!(parse_sidecar(HEX, "u").unwrap().hex(), HEX);
        let upper = format!("{}\r\n", HEX.to_uppercase());
        assert_eq!(parse_sidecar(&upper, "u").unwrap().hex(), HEX);
        let bsd_star = format!("{HEX} *file.img\nnext line ignored\n");
        assert_eq!(parse_sidecar(&bsd_star, "u").unwrap().hex(), HEX);
    }

    #[test]
    fn sha256sums_gnu_and_bsd() {
        let other = "0".repeat(64);
        let gnu = format!("{other}  other.img\n{HEX}  os.img.xz\n");
        assert_eq!(parse_sha256sums(&gnu, "os.img.xz").unwrap().hex(), HEX);
        assert_eq!(parse_sha256sums(&gnu, "os.img").map(|d| d.hex()), None);
        let star = format!("{HEX} *os.img.xz\r\n");
        assert_eq!(parse_sha256sums(&star, "os.img.xz").unwrap().hex(), HEX);
        let bsd = format!("SHA256 (other.img) = {other}\nSHA256 (os.img.xz) = {HEX}\n");
        assert_eq!(parse_sha256sums(&bsd, "os.img.xz").unwrap().hex(), HEX);
        assert!(parse_sha256sums("garbage\n\n", "os.img.xz").is_none());
        assert!(parse_sha256sums(&format!("{HEX}  ./os.img.xz"), "os.img.xz").is_some());
    }

    #[test]
    fn sidecar_errors_are_distinct() {
        assert!(matches!(
            parse_sidecar("", "u"),
            Err(Error::SidecarEmpty { .. })
        ));
        assert!(matches!(
            parse_sidecar(" \n\n", "u"),
            Err(Error::SidecarEmpty { .. })
        ));
        assert!(matches!(
            parse_sidecar("   \nabc", "u"),
            Err(Error::SidecarNoDigest { .. })
        ));
        let err = parse_sidecar("<html>Payment Required</html>", "u").unwrap_err();
        assert!(
            matches!(err, Error::SidecarMalformed { ref token, .. } if token == "<html>Payment")
        );
        assert!(matches!(
            parse_sidecar(&HEX[..40], "u"),
            Err(Error::SidecarMalformed { .. })
        ));
    }
}
