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
    /// Reads and checks the inputs as Talos's nocloud platform reads them: the hostname a
    /// lowercase DNS label, user-data a Talos machine config (see [`check_user_data`]),
    /// network-config version 1 or 2 (see [`check_network_config`]). An empty network-config is
    /// left out, as labctl does.
    pub fn read(req: &CidataRequest) -> Result<Self> {
        check_hostname(&req.hostname)?;
        let instance_id = req.instance_id.as_deref().unwrap_or(&req.hostname);
        if instance_id.is_empty() {
            return Err(Error::BadInput("the instance id must not be empty".into()));
        }
        let user_data = read_user_data(&req.user_data)?;
        let network_config = req
            .network_config
            .as_deref()
            .map(read_network_config)
            .transpose()?
            .flatten();
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
///
/// A hostname over 63 characters is refused here (`talos build` only warns: labctl takes it):
/// Talos's nocloud platform turns `local-hostname` into its hostname with
/// `HostnameSpecSpec.ParseFQDN` (nocloud.go:42-57), whose `Validate` refuses a hostname longer
/// than 63 (siderolabs/talos @ ad8823176e75,
/// pkg/machinery/resources/network/hostname_spec.go:39-44), and then applies neither the hostname
/// nor the network-config.
pub fn build(req: &CidataRequest) -> Result<Cidata> {
    check_hostname_length(&req.hostname)?;
    let contents = Contents::read(req)?;
    let image = image(&contents)?;
    write_private(&req.output, &image)?;
    Ok(Cidata {
        path: req.output.clone(),
        sha256: Sha256Digest::of_hasher(Sha256::new_with_prefix(&image)),
        size: image.len() as u64,
    })
}

/// Checks that the config image at `path` is one Talos's nocloud reads, before a stick is given
/// it: a FAT volume whose label is `cidata` or `CIDATA` (the two labels nocloud looks for,
/// platform/nocloud/metadata.go:42 and :184-189 in siderolabs/talos) holding a `user-data` its
/// config loader takes, and a `network-config` it reads if there is one. Anything else would be
/// written, read back as verified, and never read by the node. (labflash and labctl make FAT;
/// an ISO 9660 cidata is refused here because its files cannot be checked.)
pub fn check_image(path: &Path) -> Result<()> {
    use std::io::Read;
    let refuse = |why: String| {
        Error::BadInput(format!(
            "{} is not a config image Talos reads: {why}",
            path.display()
        ))
    };
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("it cannot be read ({e})")))?;
    if bytes.len() as u64 > 4 * MAX_SIZE {
        return Err(refuse(format!(
            "it is {} bytes, larger than any cidata volume",
            bytes.len()
        )));
    }
    let fs = fatfs::FileSystem::new(Cursor::new(bytes), fatfs::FsOptions::new()).map_err(|_| {
        refuse("it is not a FAT filesystem (make it with labflash cidata or talos build)".into())
    })?;
    let label = fs.volume_label();
    if !matches!(label.trim_end(), "cidata" | "CIDATA") {
        return Err(refuse(format!(
            "its volume label is {:?}, and Talos looks only for cidata or CIDATA",
            label.trim_end()
        )));
    }
    let read = |name: &str| -> Result<Option<String>> {
        let mut text = String::new();
        match fs.root_dir().open_file(name) {
            Ok(mut file) => file
                .read_to_string(&mut text)
                .map(|_| Some(text))
                .map_err(|e| refuse(format!("its {name} cannot be read ({e})"))),
            Err(_) => Ok(None),
        }
    };
    let user_data = read("user-data")?.ok_or_else(|| refuse("it holds no user-data".into()))?;
    check_user_data(&user_data).map_err(|why| refuse(format!("its user-data: {why}")))?;
    if let Some(network) = read("network-config")? {
        check_network_config(&network)
            .map_err(|why| refuse(format!("its network-config: {why}")))?;
    }
    Ok(())
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
    let dir = crate::io::device::folder_of(path);
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

/// At most 63 characters, the longest hostname Talos takes (see [`build`]).
fn check_hostname_length(name: &str) -> Result<()> {
    if name.len() > 63 {
        return Err(Error::BadInput(format!(
            "the hostname {name:?} is {} characters long: Talos refuses a hostname over 63, and would apply neither it nor the network-config",
            name.len()
        )));
    }
    Ok(())
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

/// Reads the user-data file: YAML, and a config Talos's nocloud platform loads.
fn read_user_data(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_yaml(path, "user-data")?;
    let text = std::str::from_utf8(&bytes).expect("read_yaml checked UTF-8");
    check_user_data(text)
        .map_err(|why| Error::BadInput(format!("the user-data file {} {why}", path.display())))?;
    Ok(bytes)
}

/// Reads the network-config file: `None` when it is empty (left out, as labctl does), else
/// YAML of a version Talos's nocloud platform reads.
fn read_network_config(path: &Path) -> Result<Option<Vec<u8>>> {
    let bytes = read_yaml(path, "network-config")?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(&bytes).expect("read_yaml checked UTF-8");
    check_network_config(text).map_err(|why| {
        Error::BadInput(format!("the network-config file {} {why}", path.display()))
    })?;
    Ok(Some(bytes))
}

/// Is `text` (valid YAML) a config Talos loads from nocloud's `user-data`? The error completes
/// "the user-data file X …" in one sentence.
///
/// What Talos does with user-data (siderolabs/talos @ ad8823176e75,
/// `internal/app/machined/pkg/runtime/v1alpha1/platform/nocloud/nocloud.go`):
/// - lines 99-105: a first line `#cloud-config` (trimmed) is skipped, as if there were no config
///   (`ErrNoConfigSource`); v1.9.0's nocloud.go:98 skipped any user-data that merely starts with
///   `#cloud-config`, so both are refused here;
/// - lines 106-107: a first line `#include` fetches the config from the one URL on the next line
///   (`ExtractIncludeURL`, lines 976-1003; since v1.11.0, commit 60c12bad9);
/// - otherwise the bytes are the machine config, loaded by `pkg/machinery/config/configloader`
///   (configloader.go `newConfig`, internal/decoder/decoder.go `parse` and `decode`), whose shapes
///   are checked here:
///   - zero documents (empty, or comments only) is `ErrNoConfig`, "config not found"
///     (configloader.go:43-45);
///   - a `null` document is skipped; any other document must be a mapping (decoder.go:105-118);
///   - a mapping with a `machine`, `cluster`, `debug` or `persist` key is the v1alpha1 config
///     (decoder.go:170-181; its testdata `empty1.test` is just `machine:`); any other document
///     needs both `apiVersion` and `kind` (decoder.go:182-185: `ErrMissingKind`,
///     `ErrMissingAPIVersion`), e.g. testdata `multidoc1.test` (SideroLinkConfig, KmsgLogConfig,
///     EventSinkConfig, no v1alpha1 document at all);
///   - two documents with the same apiVersion, kind and name are refused (decoder.go:120-130).
///
/// Field names and values inside a document are Talos's to check (unknown keys fail there too,
/// decoder.go:74 and 198); they change with every release, so they are not checked here.
pub fn check_user_data(text: &str) -> std::result::Result<(), String> {
    if text.trim().is_empty() {
        return Err("is empty: Talos would find no machine config in it; give the controlplane.yaml or worker.yaml that talosctl gen config writes".into());
    }
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let first = first.trim();
    if first.starts_with("#cloud-config") {
        return Err("is cloud-init #cloud-config, which Talos's nocloud platform skips (the node would boot without a config); give a Talos machine config such as talosctl gen config's controlplane.yaml".into());
    }
    if first == "#include" {
        let urls: Vec<&str> = rest
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return match urls.as_slice() {
            [url] if url.starts_with("http://") || url.starts_with("https://") => Ok(()),
            _ => Err("starts with #include but is not followed by exactly one http(s) URL, the one line Talos fetches its config from".into()),
        };
    }
    let docs: Vec<Yaml> = serde_saphyr::from_multiple(text)
        .map_err(|e| format!("is not valid YAML: {}", one_line(&e.to_string())))?;
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for (n, doc) in docs.iter().enumerate() {
        let n = n + 1;
        let map = match doc {
            Yaml::Null => continue,
            Yaml::Map(map) => map,
            _ => {
                return Err(format!(
                    "is not a Talos machine config: its document {n} is not a YAML mapping"
                ))
            }
        };
        let text_of = |key: &str| {
            map.iter().find_map(|(k, v)| match (k, v) {
                (Yaml::Str(k), Yaml::Str(v)) if k == key => Some(v.clone()),
                _ => None,
            })
        };
        let has = |key: &str| {
            map.iter()
                .any(|(k, _)| matches!(k, Yaml::Str(k) if k == key))
        };
        let v1alpha1 = ["machine", "cluster", "debug", "persist"]
            .iter()
            .any(|k| has(k));
        let (api_version, kind) = (text_of("apiVersion"), text_of("kind"));
        let id = match (v1alpha1, api_version, kind) {
            (true, v, k) => (
                v.unwrap_or_default(),
                k.unwrap_or_else(|| "v1alpha1".into()),
                text_of("name").unwrap_or_default(),
            ),
            (false, Some(v), Some(k)) => (v, k, text_of("name").unwrap_or_default()),
            (false, _, _) => {
                return Err(format!(
                    "is not a Talos machine config: its document {n} has neither `machine:` (the v1alpha1 config) nor both `apiVersion` and `kind`"
                ))
            }
        };
        if seen.contains(&id) {
            return Err(format!(
                "is not a Talos machine config: its document {n} repeats {}/{}/{}, which Talos refuses",
                id.0, id.1, id.2
            ));
        }
        seen.push(id);
    }
    if seen.is_empty() {
        return Err("holds no YAML document (only comments or nulls): Talos would find no machine config in it; give the controlplane.yaml or worker.yaml that talosctl gen config writes".into());
    }
    Ok(())
}

/// Is `text` (valid YAML) a network-config Talos's nocloud platform reads? The error completes
/// "the network-config file X …".
///
/// siderolabs/talos @ ad8823176e75, `internal/app/machined/pkg/runtime/v1alpha1/platform/nocloud/`:
/// nocloud.go:187-219 `DecodeNetworkConfig` takes the cloud-init form (a top-level `network:`
/// holding `version`, since v1.9.0, commit aa846cc18) or the plain form (a top-level `version`),
/// and nothing else; metadata.go:55 types `version` as an integer; nocloud.go:64-75 applies
/// version 1 or 2 and fails on any other ("network-config metadata version=%d is not
/// supported"). Its testdata `in-v1.yaml`, `in-v2-nocloud.yaml` and `in-v2-cloud-init.yaml` are
/// the three shapes.
pub fn check_network_config(text: &str) -> std::result::Result<(), String> {
    let doc: Yaml = serde_saphyr::from_str(text)
        .map_err(|e| format!("is not valid YAML: {}", one_line(&e.to_string())))?;
    let get = |map: &[(Yaml, Yaml)], key: &str| {
        map.iter()
            .find(|(k, _)| matches!(k, Yaml::Str(k) if k == key))
            .map(|(_, v)| v.clone())
    };
    let Yaml::Map(top) = doc else {
        return Err(
            "is not a YAML mapping with a `version` (1 or 2), so Talos cannot read it".into(),
        );
    };
    let version = match get(&top, "network") {
        Some(Yaml::Map(inner)) => get(&inner, "version"),
        Some(_) => return Err("has a `network:` that is not a mapping holding `version` (1 or 2), so Talos cannot read it".into()),
        None => get(&top, "version"),
    };
    match version {
        Some(Yaml::Int(1 | 2)) => Ok(()),
        Some(Yaml::Int(v)) => Err(format!(
            "has version {v}: Talos's nocloud platform reads network-config versions 1 and 2 only"
        )),
        Some(_) => {
            Err("has a `version` that is not the number 1 or 2, so Talos cannot read it".into())
        }
        None => Err(
            "has no `version` (1 or 2) at its top or under `network:`, so Talos cannot read it"
                .into(),
        ),
    }
}

/// A YAML value, as much of it as the checks above look at.
#[derive(Clone, Debug, PartialEq)]
enum Yaml {
    Null,
    Str(String),
    Int(i128),
    /// Booleans, floats and sequences: only their presence matters here.
    Other,
    Map(Vec<(Yaml, Yaml)>),
}

impl<'de> serde::Deserialize<'de> for Yaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Yaml;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<Yaml, D::Error> {
                <Yaml as serde::Deserialize>::deserialize(d)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Other)
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Int(v))
            }
            fn visit_u128<E>(self, v: u128) -> std::result::Result<Yaml, E> {
                Ok(i128::try_from(v).map_or(Yaml::Other, Yaml::Int))
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Other)
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Yaml, E> {
                Ok(Yaml::Str(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Yaml, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Yaml::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Yaml, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Yaml>()? {
                    // Only top-level scalars and `network:` are looked into.
                    let value = map.next_value::<Yaml>()?;
                    entries.push((key, value));
                }
                Ok(Yaml::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
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

    /// siderolabs/talos's own files (tests/fixtures/talos/README.md names each one's path):
    /// pkg/machinery/config/configloader/testdata/*.test, all of which its loader accepts.
    const TALOS_CONFIGS: [(&str, &str); 5] = [
        (
            "controlplane",
            include_str!("../../../../../tests/fixtures/talos/configloader-controlplane.yaml"),
        ),
        (
            "worker",
            include_str!("../../../../../tests/fixtures/talos/configloader-worker.yaml"),
        ),
        (
            "multidoc1",
            include_str!("../../../../../tests/fixtures/talos/configloader-multidoc1.yaml"),
        ),
        (
            "multidoc3",
            include_str!("../../../../../tests/fixtures/talos/configloader-multidoc3.yaml"),
        ),
        (
            "empty1",
            include_str!("../../../../../tests/fixtures/talos/configloader-empty1.yaml"),
        ),
    ];

    #[test]
    fn talos_s_own_configs_are_user_data() {
        for (name, text) in TALOS_CONFIGS {
            assert_eq!(check_user_data(text), Ok(()), "{name}");
        }
        // With a v1alpha1 document and typed ones, `---` separated, and a null document.
        let mixed = format!("{}---\n---\n{}", TALOS_CONFIGS[1].1, TALOS_CONFIGS[2].1);
        assert_eq!(check_user_data(&mixed), Ok(()));
        assert_eq!(
            check_user_data("#include\nhttps://config.example/cp.yaml\n"),
            Ok(())
        );
    }

    #[test]
    fn cloud_config_user_data_is_refused() {
        let worker = TALOS_CONFIGS[1].1;
        for text in [
            "#cloud-config\nhostname: cp-1\n".to_string(),
            format!("#cloud-config\n{worker}"),
            "  #cloud-config  \r\nusers: []\n".to_string(),
            format!("#cloud-config-archive\n{worker}"),
        ] {
            let err = check_user_data(&text).unwrap_err();
            assert!(
                err.contains("#cloud-config") && err.contains("skips"),
                "{err}"
            );
        }
    }

    #[test]
    fn empty_user_data_is_refused() {
        for text in ["", "\n", "  \n\t\n"] {
            assert!(
                check_user_data(text).unwrap_err().contains("is empty"),
                "{text:?}"
            );
        }
        for text in ["# only a comment\n", "---\n", "~\n---\nnull\n"] {
            assert!(
                check_user_data(text)
                    .unwrap_err()
                    .contains("no YAML document"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn user_data_that_is_not_a_talos_config_is_refused() {
        let cases = [
            ("hostname: cp-1\nusers: []\n", "neither `machine:`"),
            ("version: v1alpha1\n", "neither `machine:`"),
            ("apiVersion: v1alpha1\nname: x\n", "both `apiVersion` and `kind`"),
            ("kind: HostnameConfig\nhostname: x\n", "both `apiVersion` and `kind`"),
            ("- machine\n", "not a YAML mapping"),
            ("just words\n", "not a YAML mapping"),
            (
                "machine: {}\n---\nversion: v1alpha1\ncluster: {}\n",
                "repeats",
            ),
            (
                "apiVersion: v1alpha1\nkind: KmsgLogConfig\nname: a\n---\napiVersion: v1alpha1\nkind: KmsgLogConfig\nname: a\n",
                "repeats v1alpha1/KmsgLogConfig/a",
            ),
            ("#include\n", "exactly one http(s) URL"),
            ("#include\nhttps://a/1\nhttps://a/2\n", "exactly one http(s) URL"),
            ("#include\nfile:///etc/cp.yaml\n", "exactly one http(s) URL"),
        ];
        for (text, expected) in cases {
            let err = check_user_data(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        // Two KmsgLogConfigs with different names are two documents, as in Talos.
        assert_eq!(
            check_user_data("apiVersion: v1alpha1\nkind: KmsgLogConfig\nname: a\n---\napiVersion: v1alpha1\nkind: KmsgLogConfig\nname: b\n"),
            Ok(())
        );
    }

    /// siderolabs/talos's own nocloud test inputs
    /// (internal/app/machined/pkg/runtime/v1alpha1/platform/nocloud/testdata/in-*.yaml).
    #[test]
    fn talos_s_own_network_configs_are_read_and_other_versions_refused() {
        for (name, text) in [
            (
                "in-v1",
                include_str!("../../../../../tests/fixtures/talos/nocloud-in-v1.yaml"),
            ),
            (
                "in-v2-nocloud",
                include_str!("../../../../../tests/fixtures/talos/nocloud-in-v2-nocloud.yaml"),
            ),
            (
                "in-v2-cloud-init",
                include_str!("../../../../../tests/fixtures/talos/nocloud-in-v2-cloud-init.yaml"),
            ),
        ] {
            assert_eq!(check_network_config(text), Ok(()), "{name}");
        }
        let cases = [
            ("version: 3\nethernets: {}\n", "has version 3"),
            ("network:\n  version: 3\n", "has version 3"),
            ("version: 0\n", "has version 0"),
            ("version: \"2\"\n", "not the number"),
            ("ethernets:\n  eth0:\n    dhcp4: true\n", "has no `version`"),
            ("network:\n  config: disabled\n", "has no `version`"),
            ("network: 2\n", "not a mapping"),
            ("- version: 2\n", "not a YAML mapping"),
        ];
        for (text, expected) in cases {
            let err = check_network_config(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    /// The meta-data labflash writes has the shape and keys of Talos's own nocloud test file
    /// (nocloud/testdata/metadata-nocloud.yaml), and Talos reads these two keys: metadata.go's
    /// `MetadataConfig` (`local-hostname` → InternalDNS, the hostname when `hostname` is absent,
    /// nocloud.go:42-45; `instance-id` → InstanceID).
    #[test]
    fn meta_data_has_talos_s_shape() {
        let talos =
            include_str!("../../../../../tests/fixtures/talos/nocloud-metadata-nocloud.yaml");
        let ours = meta_data("80d6927ecb30c1707b12f38ed1211535930ff16e", "talos-worker-3");
        // The same keys and string values (ours quotes an instance id that starts with a digit).
        type Meta = std::collections::BTreeMap<String, String>;
        let read = |text: &str| serde_saphyr::from_str::<Meta>(text).unwrap();
        assert_eq!(read(&ours), read(talos), "{ours}");
        assert_eq!(
            read(&ours).keys().collect::<Vec<_>>(),
            ["instance-id", "local-hostname"]
        );
    }

    #[test]
    fn files_are_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let request = |user_data: PathBuf, network_config: Option<PathBuf>| CidataRequest {
            user_data,
            hostname: "cp-1".into(),
            instance_id: None,
            network_config,
            output: dir.path().join("out.img"),
        };
        let good = write("cp.yaml", TALOS_CONFIGS[0].1);
        let cloud = write("cc.yaml", "#cloud-config\nhostname: a\n");
        let v3 = write("net.yaml", "version: 3\n");
        let empty = write("empty.yaml", "");
        assert!(Contents::read(&request(good.clone(), None)).is_ok());
        assert!(Contents::read(&request(good.clone(), Some(empty.clone())))
            .unwrap()
            .network_config
            .is_none());
        for (req, expected) in [
            (request(cloud, None), "cc.yaml is cloud-init #cloud-config"),
            (request(empty, None), "empty.yaml is empty"),
            (request(good, Some(v3)), "net.yaml has version 3"),
        ] {
            let err = Contents::read(&req).err().unwrap().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn a_hostname_talos_refuses_is_refused_by_build() {
        let dir = tempfile::tempdir().unwrap();
        let ud = dir.path().join("cp.yaml");
        std::fs::write(&ud, TALOS_CONFIGS[0].1).unwrap();
        let req = |hostname: String| CidataRequest {
            user_data: ud.clone(),
            hostname,
            instance_id: None,
            network_config: None,
            output: dir.path().join("out.img"),
        };
        assert!(build(&req("x".repeat(63))).is_ok());
        let err = build(&req("x".repeat(64))).unwrap_err();
        assert!(
            matches!(&err, Error::BadInput(m) if m.contains("is 64 characters long")),
            "{err}"
        );
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
