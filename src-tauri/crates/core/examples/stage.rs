//! Runs one engine stage alone, for the benchmark (`tests/bench/stream.sh` times it against the
//! standalone tool doing the same job):
//!
//! ```text
//! stage hash FILE               SHA-256 of a file                   vs  openssl sha256
//! stage decode ARCHIVE          the streaming decoder, output dropped  vs  xz -T0 -dc > /dev/null
//! stage write IMAGE TARGET SHA  the write phase of a real flash     vs  dd oflag=direct bs=4M
//! stage readback TARGET SIZE    O_DIRECT read-back and SHA-256      vs  dd iflag=direct | sha256sum
//! ```
//!
//! Each prints the digest or byte count it found, so a stage that did nothing cannot pass.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use labflash_core::fetch::decompress::{self, Format};
use labflash_core::fetch::digest::{self, Sha256Digest};
use labflash_core::flash::rules::{self, Chosen, TargetOptions};
use labflash_core::flash::writer::{self, Expect, FlashOptions};
use labflash_core::io::device;
use labflash_core::io::drives::SystemRoots;
use labflash_core::progress::{NoProgress, Progress, Stage};
use labflash_core::{verify, CancellationToken, Error};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cancel = CancellationToken::new();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            panic!("usage: stage hash|decode|write|readback ARGS (see the source)")
        })
    };
    match arg(0) {
        "hash" => {
            let (digest, size) =
                digest::hash_file(Path::new(arg(1)), Stage::HashImage, &cancel, &NoProgress)?;
            println!("{digest}  {size}");
        }
        "decode" => {
            let path = Path::new(arg(1));
            let format = Format::of_file(path)?;
            let input =
                BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| io(path, e))?);
            let mut decoded = decompress::decoder(input, format, path, u64::MAX)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                match decoded.read(&mut buf).map_err(|e| io(path, e))? {
                    0 => break,
                    n => total += n as u64,
                }
            }
            println!("{total}");
        }
        "write" => {
            // A real flash (read-back on), timed from its start to the start of its read-back:
            // the wipe, every write and the fsync, what `dd oflag=direct conv=fsync` does.
            let image = PathBuf::from(arg(1));
            let sha256: Sha256Digest = arg(3).parse().expect("SHA256 of the image");
            let mut source = File::open(&image).map_err(|e| io(&image, e))?;
            let size = source.metadata().map_err(|e| io(&image, e))?.len();
            let approved = rules::approve(
                &Chosen::path(arg(2)),
                Some(size),
                &[image.as_path()],
                &TargetOptions::default(),
                &SystemRoots::default(),
            )?;
            let target = device::open_for_write(&approved.path, &approved.identity)?;
            let expect = Expect {
                name: image,
                sha256: Some(sha256),
                check_source: false,
                size: Some(size),
                announced_size: None,
                tail: None,
            };
            let written = OnceLock::new();
            let progress = |p: Progress| {
                if p.stage == Stage::ReadBack {
                    let _ = written.set(Instant::now());
                }
            };
            let start = Instant::now();
            // The device holds the image from the run before: writing it is what is timed.
            let options = FlashOptions {
                skip_equal: false,
                ..FlashOptions::default()
            };
            let outcome = writer::flash_stream(
                &expect,
                &mut source,
                vec![writer::Onto::new(target, None)],
                &options,
                &cancel,
                &progress,
            );
            let total = start.elapsed();
            outcome.source?;
            let report = &outcome.targets[0];
            assert!(report.ok, "{:?}", report.error);
            let written = written.get().expect("a read-back").duration_since(start);
            println!(
                "{:.2}  written in {:.2} s, read back by {:.2} s: {}",
                written.as_secs_f64(),
                written.as_secs_f64(),
                total.as_secs_f64(),
                report.verified_sha256.expect("verified")
            );
        }
        "readback" => {
            let size: u64 = arg(2).parse().expect("SIZE in bytes");
            // Any digest: the stage's work is the read and the hash; the found one is printed.
            let expected = verify::Expectation {
                sha256: "0".repeat(64).parse().expect("a digest"),
                size,
                from: "the benchmark".into(),
                archive_sha256: None,
            };
            let found = verify::verify(Path::new(arg(1)), &expected, &cancel, &NoProgress)?;
            println!("{}  {}", found.sha256, found.size);
        }
        other => panic!("unknown stage {other:?}"),
    }
    Ok(())
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
