//! The NoCloud config image Talos reads its machine config from: a FAT filesystem labelled
//! `CIDATA` holding `user-data`, `meta-data` and optionally `network-config` at its root.
//!
//! Reproducible: the same inputs give the same bytes (FAT timestamps are the DOS epoch, the volume
//! serial is taken from a digest of the content), so its SHA-256 can be recorded and compared.
//! Private: it carries cluster secrets, so it is created 0600 and renamed into place complete.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::fetch::digest::Sha256Digest;

const MIB: u64 = 1 << 20;
/// Room for FAT structures and directory entries beside the files.
const OVERHEAD: u64 = 4 * MIB;
const MIN_SIZE: u64 = 16 * MIB;
const MAX_SIZE: u64 = 64 * MIB;
/// 2 KiB clusters keep 16–64 MiB volumes well inside FAT16's cluster-count range (4085–65524);
/// FAT32 would be invalid below 65525 clusters.
const CLUSTER: u32 = 2048;

#[derive(Clone, Debug)]
pub struct CidataRequest {
    pub user_data: PathBuf,
    pub hostname: String,
    /// Defaults to the hostname.
    pub instance_id: Option<String>,
    pub network_config: Option<PathBuf>,
    pub output: PathBuf,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, serde::Serialize)]
pub struct Cidata {
    pub path: PathBuf,
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// The files of a cidata volume, validated.
pub struct Contents {
    pub user_data: Vec<u8>,
    pub meta_data: Vec<u8>,
    pub network_config: Option<Vec<u8>>,
}

impl Contents {
    /// Reads and checks the inputs: the hostname a lowercase DNS label, the files present and YAML.
    /// An empty network-config is left out, as labctl does.
    pub fn read(req: &CidataRequest) -> Result<Self> {
        check_hostname(&req.hostname)?;
        let instance_id = req.instance_id.as_deref().unwrap_or(&req.hostname);
        if instance_id.is_empty() {
            return Err(Error::BadInput("the instance id must not be empty".into()));
        }
        let user_data = read_yaml(&req.user_data, "user-data")?;
        let network_config = req
            .network_config
            .as_deref()
            .map(|p| read_yaml(p, "network-config"))
            .transpose()?
            .filter(|bytes| !bytes.is_empty());
        let meta_data = meta_data(instance_id, &req.hostname).into_bytes();
        Ok(Self {
            user_data,
            meta_data,
            network_config,
        })
    }

    fn files(&self) -> Vec<(&'static str, &[u8])> {
        let mut files = vec![
            ("user-data", self.user_data.as_slice()),
            ("meta-data", self.meta_data.as_slice()),
        ];
        if let Some(n) = &self.network_config {
            files.push(("network-config", n.as_slice()));
        }
        files
    }
}

/// Builds the cidata image at `req.output` (0600, atomic) and reports its digest.
pub fn build(req: &CidataRequest) -> Result<Cidata> {
    let contents = Contents::read(req)?;
    let image = image(&contents)?;
    write_private(&req.output, &image)?;
    Ok(Cidata {
        path: req.output.clone(),
        sha256: Sha256Digest::of_hasher(Sha256::new_with_prefix(&image)),
        size: image.len() as u64,
    })
}

/// The FAT image for `contents`, in memory (at most 64 MiB).
pub fn image(contents: &Contents) -> Result<Vec<u8>> {
    let files = contents.files();
    let payload: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    if payload + OVERHEAD > MAX_SIZE {
        return Err(Error::BadInput(format!(
            "the config files ({payload} bytes) do not fit a cidata image of at most {} MiB",
            MAX_SIZE / MIB
        )));
    }
    let size = (payload + OVERHEAD).max(MIN_SIZE).div_ceil(MIB) * MIB;

    // The serial is a digest of everything on the volume: same content, same serial.
    let mut serial = Sha256::new();
    for (name, bytes) in &files {
        serial.update((name.len() as u64).to_le_bytes());
        serial.update(name.as_bytes());
        serial.update((bytes.len() as u64).to_le_bytes());
        serial.update(bytes);
    }
    let serial = serial.finalize();
    let volume_id = u32::from_le_bytes([serial[0], serial[1], serial[2], serial[3]]);

    let mut disk = Cursor::new(vec![0u8; size as usize]);
    let fat_error = |e: std::io::Error| {
        Error::BadInput(format!("the cidata filesystem could not be built: {e}"))
    };
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat16)
            .bytes_per_sector(512)
            .bytes_per_cluster(CLUSTER)
            .volume_id(volume_id)
            .volume_label(*b"CIDATA     "),
    )
    .map_err(fat_error)?;
    {
        let options = fatfs::FsOptions::new().time_provider(&FIXED_TIME);
        let fs = fatfs::FileSystem::new(&mut disk, options).map_err(fat_error)?;
        for (name, bytes) in files {
            let mut file = fs.root_dir().create_file(name).map_err(fat_error)?;
            file.write_all(bytes).map_err(fat_error)?;
            file.flush().map_err(fat_error)?;
        }
        fs.unmount().map_err(fat_error)?;
    }
    Ok(disk.into_inner())
}

/// Every timestamp on the volume: 1980-01-01 00:00, the first valid FAT date (fatfs would
/// otherwise write a zero date, month 0, which is not a date).
#[derive(Debug)]
struct FixedTime;

static FIXED_TIME: FixedTime = FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 1980,
            month: 1,
            day: 1,
        }
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

/// Writes `bytes` to `path` through a temp file that is 0600 from its creation, fsynced and
/// renamed into place.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = crate::fetch::cache::folder_of(path);
    if !dir.is_dir() {
        return Err(Error::BadInput(format!(
            "the folder {} does not exist",
            dir.display()
        )));
    }
    let mut tmp = crate::fetch::cache::temp_file_beside(path)?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    crate::fetch::cache::commit(tmp, path)
}

/// `meta-data` as YAML: `instance-id`, then `local-hostname` (labctl's order), each value written
/// so that it reads back as that string: `null`, `yes`, `123` or `1e3` are quoted.
pub fn meta_data(instance_id: &str, hostname: &str) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        yaml_string(instance_id),
        yaml_string(hostname)
    )
}

/// A YAML scalar that any YAML 1.1 or 1.2 reader takes as exactly `value`, as a string: plain when
/// it starts with a letter, holds only letters, digits, `-`, `_` and `.`, and is no YAML word
/// (booleans, null); otherwise double-quoted, whose escapes are JSON's.
fn yaml_string(value: &str) -> String {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    let plain = value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !WORDS.contains(&value.to_ascii_lowercase().as_str());
    if plain {
        value.to_string()
    } else {
        serde_json::to_string(value).expect("a string serializes")
    }
}

/// A hostname as labctl takes it: one lowercase DNS label (a-z, 0-9 and '-', not starting or
/// ending with '-'). labctl sets no length limit, so neither does this; `talos build` warns over 63.
pub fn check_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "the hostname {name:?} is not a lowercase DNS label (a-z, 0-9 and '-', not starting or ending with '-')"
        )))
    }
}

/// Reads a file that must be YAML (any number of documents); the error gives line and column.
fn read_yaml(path: &Path, what: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::BadInput(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Error::BadInput(format!(
            "the {what} file {} is not UTF-8 text: {e}",
            path.display()
        ))
    })?;
    serde_saphyr::from_multiple::<serde::de::IgnoredAny>(text).map_err(|e| {
        Error::BadInput(format!(
            "the {what} file {} is not valid YAML: {}",
            path.display(),
            one_line(&e.to_string())
        ))
    })?;
    Ok(bytes)
}

/// The parser's first line ("line 2 column 2: …"), without its source snippet.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    let first = first.split(" --> ").next().unwrap_or(first);
    first.trim_start_matches("error: ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_reads_back_as_the_strings_given() {
        assert_eq!(
            meta_data("bootstrap-instance-1", "bootstrap-controlplane-1"),
            "instance-id: bootstrap-instance-1\nlocal-hostname: bootstrap-controlplane-1\n"
        );
        for tricky in [
            "null",
            "yes",
            "No",
            "ON",
            "y",
            "123",
            "1e3",
            "0x1f",
            "0o17",
            "1_000",
            "12:30",
            "2024-01-02",
            ".inf",
            "-1",
            "~",
            "a: b",
            "#x",
            "it's",
            "line\nbreak",
            "",
        ] {
            #[derive(serde::Deserialize)]
            struct Meta {
                #[serde(rename = "instance-id")]
                instance_id: String,
                #[serde(rename = "local-hostname")]
                hostname: String,
            }
            let text = meta_data(tricky, tricky);
            let read: Meta =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (read.instance_id.as_str(), read.hostname.as_str()),
                (tricky, tricky),
                "{text}"
            );
            if tricky.parse::<f64>().is_ok()
                || ["null", "yes", "No", "ON", "y", "~"].contains(&tricky)
            {
                assert!(text.contains(&format!("\"{tricky}\"")), "{text}");
            }
        }
    }

    #[test]
    fn hostnames() {
        for good in ["cp-1", "a", "node01", &"x".repeat(63), &"x".repeat(64)] {
            assert!(check_hostname(good).is_ok(), "{good}");
        }
        for bad in ["", "CP-1", "-cp", "cp-", "cp_1", "cp.lab", "cp 1"] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_follow_the_payload() {
        let contents = |n: usize| Contents {
            user_data: vec![b'a'; n],
            meta_data: b"instance-id: a\nlocal-hostname: a\n".to_vec(),
            network_config: None,
        };
        assert_eq!(image(&contents(10)).unwrap().len() as u64, 16 * MIB);
        assert_eq!(
            image(&contents(20 * MIB as usize)).unwrap().len() as u64,
            25 * MIB
        );
        assert_eq!(
            image(&contents(60 * MIB as usize - 40)).unwrap().len() as u64,
            64 * MIB
        );
        assert!(matches!(
            image(&contents(60 * MIB as usize)),
            Err(Error::BadInput(_))
        ));
    }
}
