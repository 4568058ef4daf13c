//! A flash record: which stick got what, for the operator's files and for `verify` later. One
//! line ([`Stick`]) per target written, with the drive's identity as the operator knows it
//! (model, serial, size), the image's provenance (source, digests, who vouched) and what the
//! read-back proved. Written as pretty JSON; [`Record::summary`] is the same for people.

use std::io::Write as _;
use std::path::Path;

use crate::error::{io_at, Error, Result};
use crate::fetch::digest::Sha256Digest;
use crate::flash::lab::NodeFlashed;
use crate::flash::rules::Approved;
use crate::flash::writer::TargetReport;
use crate::flash::Flashed;
use crate::image_kind::ImageKind;
use crate::io::drives::human_size;
use crate::verify::Expectation;
use crate::ErrorKind;

/// One run of labflash: every stick it wrote (or tried to).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub labflash_version: String,
    /// RFC 3339, UTC.
    pub started: String,
    /// RFC 3339, UTC; null until [`Record::finish`].
    pub ended: Option<String>,
    pub sticks: Vec<Stick>,
    /// Nodes whose flash failed as a whole (refused at open, cancelled, the image unreadable):
    /// no line above, since none of their drives holds what the run meant to write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedNode>,
}

/// A node that got no stick, its drives, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedNode {
    pub node: Option<String>,
    pub drives: Vec<String>,
    pub error: String,
}

/// What a stick is for in its node: the boot image (with its cidata partition on one stick), or
/// the config image alone beside a boot stick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Boot,
    Config,
}

/// What reading the stick back proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadBack {
    /// It holds exactly what was written.
    #[serde(rename = "matches")]
    Matches,
    /// Not read back (`--no-verify`, or the stick failed before its read-back).
    #[serde(rename = "not read back")]
    NotReadBack,
    /// Read back, and it does not hold what was written.
    #[serde(rename = "failed")]
    Failed,
}

/// One stick of a record. The boot image's fields (source, digests, who vouched, kind) are on
/// every line of a node, its config stick's too, so each line says what its node boots.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stick {
    pub node: Option<String>,
    pub role: Role,
    /// The drive or file as it was named for the flash.
    pub path: String,
    /// Vendor and model; null for a file (or a drive that reports neither).
    pub model: Option<String>,
    pub serial: Option<String>,
    /// The drive's size, or the file's after writing; null when it could not be read.
    pub size: Option<u64>,
    /// The boot image's source as given, without credentials.
    #[serde(rename = "sourceURL")]
    pub source_url: String,
    #[serde(rename = "archiveSHA256")]
    pub archive_sha256: Sha256Digest,
    #[serde(rename = "imageSHA256")]
    pub image_sha256: Sha256Digest,
    /// Who vouched for the archive's digest (`flash --json`'s `digestSource`). A string, so a
    /// record written by another version still reads.
    pub digest_source: String,
    pub image_kind: ImageKind,
    /// One stick: the config image in its cidata partition; config stick: the image it holds.
    #[serde(rename = "configSHA256")]
    pub config_sha256: Option<Sha256Digest>,
    /// One stick: the laid-out stream (boot image, cidata partition, GPT), what its read-back
    /// proves.
    #[serde(rename = "stickSHA256")]
    pub stick_sha256: Option<Sha256Digest>,
    /// The bytes the read-back covers, from the stick's first: what `verify` hashes.
    pub written_size: u64,
    pub read_back: ReadBack,
    #[serde(rename = "verifiedSHA256")]
    pub verified_sha256: Option<Sha256Digest>,
    pub ok: bool,
    pub error: Option<String>,
    pub bytes_written: u64,
    pub bytes_skipped: u64,
}

impl Stick {
    /// What the stick should hold over its first `written_size` bytes.
    pub fn expected_sha256(&self) -> Sha256Digest {
        match self.role {
            Role::Config => self.config_sha256.unwrap_or(self.image_sha256),
            Role::Boot => self.stick_sha256.unwrap_or(self.image_sha256),
        }
    }
}

impl Record {
    /// A record of a run starting now.
    pub fn start() -> Record {
        Record {
            labflash_version: env!("CARGO_PKG_VERSION").to_string(),
            started: now(),
            ended: None,
            sticks: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Adds a lab run's nodes: each node's sticks, or the node as failed with the drives it was
    /// to write.
    pub fn add_lab(&mut self, source: &str, nodes: &[NodeFlashed]) {
        for node in nodes {
            match &node.flashed {
                Some(flashed) => self.add(Some(&node.node), source, flashed, &node.approved),
                None => {
                    let error = node.error.as_deref().unwrap_or("failed");
                    self.add_failed(Some(&node.node), &node.approved, error);
                }
            }
        }
    }

    /// Records a node whose flash failed as a whole, with the drives it was to write.
    fn add_failed(&mut self, node: Option<&str>, approved: &[Approved], error: &str) {
        self.failed.push(FailedNode {
            node: node.map(String::from),
            drives: approved
                .iter()
                .map(|a| a.path.display().to_string())
                .collect(),
            error: error.to_string(),
        });
    }

    /// Adds a line for each target of `flashed` (the config stick's marked as such). `approved`
    /// are the plan's targets (`Plan::all_targets`), for each drive's model, serial and size;
    /// `source` is the boot image's source as the operator gave it.
    pub fn add(
        &mut self,
        node: Option<&str>,
        source: &str,
        flashed: &Flashed,
        approved: &[Approved],
    ) {
        let boot = Boot {
            node,
            source_url: without_credentials(source),
            flashed,
        };
        for report in &flashed.targets {
            self.sticks
                .push(boot.stick(Role::Boot, report, approved, flashed));
        }
        if let Some(config) = &flashed.config_stick {
            for report in &config.targets {
                self.sticks
                    .push(boot.stick(Role::Config, report, approved, config));
            }
        }
    }

    pub fn finish(&mut self) {
        self.ended = Some(now());
    }

    /// Writes the record as pretty JSON, atomically: a temp file beside `path`, renamed over it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut tmp = crate::fetch::cache::temp_file_beside(path)?;
        let mut json = serde_json::to_vec_pretty(self).expect("a record serializes");
        json.push(b'\n');
        tmp.write_all(&json).map_err(io_at(tmp.path()))?;
        crate::fetch::cache::commit(tmp, path)
    }

    /// Checks that a record can be written at `path` (its folder exists and takes a new file),
    /// before anything is flashed: a run whose record cannot be kept should not start.
    pub fn check_writable(path: &Path) -> Result<()> {
        if path.is_dir() {
            return Err(Error::BadInput(format!(
                "{} is a folder, not a file for the record",
                path.display()
            )));
        }
        let folder = crate::io::device::folder_of(path);
        if !folder.is_dir() {
            return Err(Error::BadInput(format!(
                "the folder {} for the record does not exist",
                folder.display()
            )));
        }
        crate::fetch::cache::temp_file_beside(path).map(drop)
    }

    pub fn read(path: &Path) -> Result<Record> {
        let text = std::fs::read(path).map_err(io_at(path))?;
        serde_json::from_slice(&text).map_err(|e| {
            Error::BadInput(format!(
                "{} is not a labflash flash record: {e}",
                path.display()
            ))
        })
    }

    /// The record as a table for people: one row per stick, digests shortened.
    pub fn summary(&self) -> String {
        let mut rows = vec![[
            "NODE", "ROLE", "DRIVE", "MODEL", "SIZE", "RESULT", "IMAGE", "CONFIG", "STICK",
        ]
        .map(String::from)];
        let mut errors = Vec::new();
        for s in &self.sticks {
            let result = match (s.ok, s.read_back) {
                (true, ReadBack::Matches) => "verified",
                (true, _) => "written, not read back",
                (false, _) => "FAILED",
            };
            if let Some(e) = &s.error {
                errors.push(format!("{}: {e}", s.path));
            }
            rows.push([
                s.node.clone().unwrap_or_else(|| "-".into()),
                format!("{:?}", s.role).to_lowercase(),
                s.path.clone(),
                dash(s.model.clone()),
                dash(s.size.map(human_size)),
                result.into(),
                short(Some(s.image_sha256)),
                short(s.config_sha256),
                short(s.stick_sha256),
            ]);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut text = format!(
            "labflash {} flash record, {} to {}\n",
            self.labflash_version,
            self.started,
            self.ended.as_deref().unwrap_or("(not finished)")
        );
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        for f in &self.failed {
            errors.push(format!(
                "node {} ({}) FAILED, nothing verified: {}",
                f.node.as_deref().unwrap_or("-"),
                f.drives.join(", "),
                f.error
            ));
        }
        for e in errors {
            text.push_str(&format!("failed: {e}\n"));
        }
        text
    }

    /// The line of the record that `target` was flashed as: the one whose path is `stick` when
    /// given, else the target's path (or a link to the same file).
    pub fn line_for(&self, target: &Path, stick: Option<&str>) -> Result<&Stick> {
        let wanted = stick.map_or_else(|| target.display().to_string(), str::to_string);
        let mut found: Vec<&Stick> = self.sticks.iter().filter(|s| s.path == wanted).collect();
        if found.is_empty() && stick.is_none() {
            // `/dev/disk/by-id/…` at flash time, `/dev/sdb` now (or the other way round).
            if let Ok(real) = std::fs::canonicalize(target) {
                found = self
                    .sticks
                    .iter()
                    .filter(|s| std::fs::canonicalize(&s.path).is_ok_and(|p| p == real))
                    .collect();
            }
        }
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::BadInput(format!(
                "the record has no line for {wanted} (it lists {}); name the line with --stick",
                self.sticks
                    .iter()
                    .map(|s| s.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Err(Error::BadInput(format!(
                "the record has {} lines for {wanted}, so which one it holds is not known",
                found.len()
            ))),
        }
    }

    /// What `target` must hold by the record's line for it (see [`Record::line_for`]), for
    /// `verify::verify`.
    pub fn expectation(&self, target: &Path, stick: Option<&str>) -> Result<Expectation> {
        let line = self.line_for(target, stick)?;
        if line.written_size == 0 {
            return Err(Error::BadInput(format!(
                "the record says nothing was written to {}{}",
                line.path,
                line.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )));
        }
        let node = line
            .node
            .as_deref()
            .map(|n| format!(" of node {n}"))
            .unwrap_or_default();
        let one_stick = line.role == Role::Boot && line.config_sha256.is_some();
        if one_stick && line.stick_sha256.is_none() {
            return Err(Error::BadInput(format!(
                "the record does not say what {} should hold: its flash failed before the stick was given its whole stream{}",
                line.path,
                line.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )));
        }
        let role = match line.role {
            Role::Boot if one_stick => "boot and config stick",
            Role::Boot => "boot stick",
            Role::Config => "config stick",
        };
        // The archive vouches for exactly the image only on a plain boot stick.
        let plain = line.role == Role::Boot && !one_stick;
        Ok(Expectation {
            sha256: line.expected_sha256(),
            size: line.written_size,
            from: format!(
                "the flash record's line for {} ({role}{node}, flashed {} from {})",
                line.path, self.started, line.source_url
            ),
            archive_sha256: plain.then_some(line.archive_sha256),
        })
    }
}

/// What every line of one `add` shares.
struct Boot<'a> {
    node: Option<&'a str>,
    source_url: String,
    /// The boot stick's flash (a config stick's lines name the image its node boots).
    flashed: &'a Flashed,
}

impl Boot<'_> {
    /// The line for `report`, a target of `written` (the boot flash, or its config stick's).
    fn stick(
        &self,
        role: Role,
        report: &TargetReport,
        approved: &[Approved],
        written: &Flashed,
    ) -> Stick {
        let boot = self.flashed;
        let drive = approved
            .iter()
            .find(|a| a.path.display().to_string() == report.path)
            .and_then(|a| a.drive.as_ref());
        let (model, serial, size) = match drive {
            Some(d) => {
                let model = [d.vendor.trim(), d.model.trim()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                let serial = d.serial.trim().to_string();
                (nonempty(model), nonempty(serial), Some(d.size))
            }
            None => (
                None,
                None,
                std::fs::metadata(&report.path).ok().map(|m| m.len()),
            ),
        };
        let (config_sha256, stick_sha256) = match role {
            Role::Boot => (boot.config_sha256, boot.stick_sha256),
            Role::Config => (Some(written.image_sha256), None),
        };
        let expected = match role {
            Role::Boot => stick_sha256.unwrap_or(boot.image_sha256),
            Role::Config => written.image_sha256,
        };
        Stick {
            node: self.node.map(str::to_string),
            role,
            path: report.path.clone(),
            model,
            serial,
            size,
            source_url: self.source_url.clone(),
            archive_sha256: boot.archive_sha256,
            image_sha256: boot.image_sha256,
            digest_source: serde_json::to_value(boot.digest_source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            image_kind: boot.image_kind,
            config_sha256,
            stick_sha256,
            written_size: report.bytes_written + report.bytes_skipped,
            read_back: read_back(report, expected),
            verified_sha256: report.verified_sha256,
            ok: report.ok,
            error: report.error.clone(),
            bytes_written: report.bytes_written,
            bytes_skipped: report.bytes_skipped,
        }
    }
}

/// What the read-back proved: a digest read back is compared with what was written (a target
/// that differs from the others carries the digest of what it holds).
fn read_back(report: &TargetReport, expected: Sha256Digest) -> ReadBack {
    match report.verified_sha256 {
        Some(d) if d == expected => ReadBack::Matches,
        Some(_) => ReadBack::Failed,
        None if report.error_kind == Some(ErrorKind::DigestMismatch) => ReadBack::Failed,
        None => ReadBack::NotReadBack,
    }
}

/// `source` as it may be kept in a file others read: a URL without `user:password@` and without
/// an Image Factory download token (`?token=`); a path as it is.
pub fn without_credentials(source: &str) -> String {
    match url::Url::parse(source) {
        Ok(url) if crate::fetch::is_url(source) => {
            crate::fetch::credentials::redact(&url).to_string()
        }
        _ => source.to_string(),
    }
}

/// Now, RFC 3339 in UTC to the second (the `time` crate: already built for x509-parser).
fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".into())
}

/// The first 12 hex digits: enough to tell images apart in a table.
fn short(d: Option<Sha256Digest>) -> String {
    d.map_or_else(|| "-".into(), |d| d.hex()[..12].to_string())
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
