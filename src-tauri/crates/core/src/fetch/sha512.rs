//! SHA-512, for a checksum file that gives only that: an Enterprise Image Factory serves
//! `<asset>.sha512` beside `<asset>.sha256` (siderolabs/image-factory at 26b95ca,
//! `enterprise/checksum/checksummer.go`: a body `<hex>  <filename>\n`), and labflash uses it
//! where no `.sha256` is served. The download is hashed with it while it streams in.

use std::fmt;

use sha2::{Digest as _, Sha512};

use crate::error::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha512Digest([u8; 64]);

impl Sha512Digest {
    pub fn of_hasher(hasher: Sha512) -> Self {
        Self(hasher.finalize().into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha512Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha512Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha512Digest({})", self.hex())
    }
}

/// The digest on a `.sha512` file's first line (`<hex>  <filename>`, or the bare digest). A
/// file name, when given, must be `asset` (the asset's own file name, as upstream's checksummer
/// writes it): a checksum of another file is refused.
pub fn parse_sidecar(text: &str, url: &str, asset: &str) -> Result<Sha512Digest> {
    if text.trim().is_empty() {
        return Err(Error::SidecarEmpty { url: url.into() });
    }
    let first_line = text.lines().next().unwrap_or("");
    let Some(token) = first_line.split_whitespace().next() else {
        return Err(Error::SidecarNoDigest { url: url.into() });
    };
    let named = first_line.split_whitespace().nth(1).map(|n| {
        let n = n.strip_prefix('*').unwrap_or(n);
        n.strip_prefix("./").unwrap_or(n)
    });
    if let Some(named) = named.filter(|n| *n != asset) {
        return Err(Error::ChecksumOfAnotherFile {
            url: url.into(),
            named: named.chars().take(200).collect(),
            asset: asset.into(),
        });
    }
    let mut out = [0u8; 64];
    match token.len() == 128 && hex::decode_to_slice(token, &mut out).is_ok() {
        true => Ok(Sha512Digest(out)),
        false => Err(Error::Sha512Malformed {
            url: url.into(),
            token: token.chars().take(80).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksummer_body_reads() {
        // SHA-512 of nothing, as `sha512sum` (and checksummer.go's "%x  %s\n") writes it.
        let hex = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
        let body = format!("{hex}  metal-amd64.raw.xz\n");
        let digest = parse_sidecar(&body, "u", "metal-amd64.raw.xz").unwrap();
        assert_eq!(digest, Sha512Digest::of_hasher(Sha512::new()));
        assert_eq!(
            parse_sidecar(&hex.to_uppercase(), "u", "metal-amd64.raw.xz").unwrap(),
            digest
        );
    }

    #[test]
    fn a_checksum_of_another_file_is_refused() {
        let body = format!("{}  metal-arm64.raw.xz\n", "ab".repeat(64));
        let err = parse_sidecar(&body, "u", "metal-amd64.raw.xz").unwrap_err();
        assert!(
            matches!(&err, Error::ChecksumOfAnotherFile { named, .. } if named == "metal-arm64.raw.xz"),
            "{err}"
        );
        let star = format!("{} *metal-amd64.raw.xz\n", "ab".repeat(64));
        assert!(parse_sidecar(&star, "u", "metal-amd64.raw.xz").is_ok());
    }

    #[test]
    fn a_sha256_in_a_sha512_file_is_refused() {
        let err = parse_sidecar(&"ab".repeat(32), "u", "a").unwrap_err();
        assert!(err.to_string().contains("128-digit hex SHA-512"), "{err}");
        assert!(matches!(
            parse_sidecar("\n", "u", "a"),
            Err(Error::SidecarEmpty { .. })
        ));
    }
}
