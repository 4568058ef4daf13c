//! `labflash fetch URL`: download, verify and decompress into the cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use labflash_core::fetch::cache::Cache;
use labflash_core::fetch::digest::{self, Sha256Digest};
use labflash_core::fetch::{self, DigestSource, FetchRequest, Fetched};
use labflash_core::sources::SourceRequest;
use labflash_core::CancellationToken;
use url::Url;

use crate::net::NetArgs;
use crate::output::{Failure, Output};

#[derive(Args)]
pub struct FetchArgs {
    /// The archive's URL (http or https); its `<URL>.sha256` is the expected digest by default.
    pub url: String,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub net: NetArgs,
}

/// How a source is verified, bounded and cached: shared by `fetch` and `flash`.
#[derive(Args)]
pub struct SourceArgs {
    /// The expected SHA-256 of the archive as served (64 hex digits); replaces the sidecar.
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    pub sha256: Option<Sha256Digest>,

    /// Accept a download that no published digest covers (its computed digest is reported).
    #[arg(long, conflicts_with = "sha256")]
    pub allow_unverified: bool,

    /// Cache folder [default: $LABFLASH_CACHE_DIR, else the platform's cache folder].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Largest decompressed image accepted, in bytes (suffixes K, M, G, KiB, MiB, GiB allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4GiB")]
    pub max_image_size: u64,
}

impl SourceArgs {
    /// The image `source` (a URL or a file) as the flags vouch for it.
    pub fn request(&self, source: &str) -> SourceRequest {
        SourceRequest {
            source: source.to_string(),
            sha256: self.sha256,
            sha256_source: DigestSource::Flag,
            signed_by: None,
            factory: None,
            allow_unverified: self.allow_unverified,
            max_image_size: self.max_image_size,
        }
    }

    pub fn cache(&self) -> Result<Cache, Failure> {
        Ok(Cache::open(Cache::resolve_dir(self.cache_dir.as_deref())?)?)
    }
}

pub async fn run(args: FetchArgs, out: &Output, cancel: &CancellationToken) -> ExitCode {
    match fetch(args, out, cancel).await {
        Ok(fetched) => out
            .warn_then(&not_flashable(&fetched))
            .success(&fetched, || human(&fetched)),
        Err(failure) => out.fail(failure),
    }
}

async fn fetch(
    args: FetchArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<Fetched, Failure> {
    let url = parse_url(&args.url)?;
    let cache = args.source.cache()?;
    let http = args.net.http()?;
    let request = FetchRequest::verified(
        url,
        args.source.sha256,
        args.source.allow_unverified,
        args.source.max_image_size,
    );
    let progress = crate::progress::sink(out.show_progress());
    let fetched = fetch::fetch(&http, &cache, &request, cancel, &progress).await?;
    if fetched.digest_source == DigestSource::Unverified && !out.quiet {
        eprintln!(
            "labflash: warning: {} is UNVERIFIED: no published digest covers it; its SHA-256 is {}",
            fetched.source_url, fetched.archive_sha256
        );
    }
    Ok(fetched)
}

fn human(f: &Fetched) -> String {
    let source = match f.digest_source {
        DigestSource::Unverified => "UNVERIFIED".to_string(),
        other => format!("matches {}", other.origin()),
    };
    let mut text = format!(
        "image          {}\nimage sha256   {}\nimage size     {} bytes\nimage kind     {}\narchive        {}\narchive sha256 {} ({source})\n",
        f.image_path.display(),
        f.image_sha256,
        f.image_size,
        f.image_kind,
        f.archive_path.display(),
        f.archive_sha256,
    );
    if let Some(inside) = &f.image_inside {
        text.push_str(&format!("image inside   {inside}\n"));
    }
    if let Some(to) = &f.final_url {
        text.push_str(&format!("redirected to  {to}\n"));
    }
    text
}

/// A fetched image that `flash` refuses (a qcow2, a tar, an EFI executable…): said on stderr,
/// since fetching it for another use is no error.
pub fn not_flashable(f: &Fetched) -> Vec<String> {
    let refusal = f
        .image_kind
        .refusal(&f.image_path.display().to_string())
        .map(|why| format!("`labflash flash` refuses this image: {why}"));
    f.warnings.iter().cloned().chain(refusal).collect()
}

pub fn parse_url(text: &str) -> Result<Url, Failure> {
    let url = Url::parse(text)
        .map_err(|e| Failure::usage(format!("{text:?} is not a valid URL: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(Failure::usage(format!(
            "{text:?} uses the unsupported scheme {other:?}; use http or https"
        ))),
    }
}

pub fn parse_sha256(text: &str) -> Result<Sha256Digest, String> {
    digest::parse_typed(text).map_err(|e| e.to_string())
}

/// `1048576`, `64M`, `64MiB`, `4G`, `4GiB`: K/M/G are taken as binary units, as disk sizes are.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size in bytes"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        "t" | "tib" | "tb" => 40,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit; use bytes or K, M, G, T"
            ))
        }
    };
    number
        .checked_mul(1u64 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a usable size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("67108864"), Ok(64 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn urls() {
        assert!(parse_url("https://factory.talos.dev/image/x").is_ok());
        assert_eq!(parse_url("ftp://host/x").unwrap_err().code, 2);
        assert_eq!(parse_url("not a url").unwrap_err().code, 2);
    }
}
