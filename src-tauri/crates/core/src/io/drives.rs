//! The drives an operator can pick, whatever the system: what each is, what it holds, whether
//! it is a system drive, and their comings and goings. Discovery is the platform's: sysfs and
//! /proc on Linux (`linux/drives.rs`), the physical disks and their volumes on Windows.

use std::path::PathBuf;
use std::time::Duration;

use crate::io::identity::DriveIdentity;
pub use crate::io::sys::drives::{chosen_drive, drive_holding, list, system_use};
use crate::CancellationToken;

/// Where to read the kernel's view from: `/sys` and `/proc`, or a fixture tree.
#[derive(Clone, Debug)]
pub struct SystemRoots {
    pub sys: PathBuf,
    pub proc: PathBuf,
}

impl Default for SystemRoots {
    fn default() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
        }
    }
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    Usb,
    Mmc,
    Nvme,
    Sata,
    Virtual,
    Loop,
    Other,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    pub path: String,
    pub mountpoints: Vec<String>,
    pub holders: Vec<String>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    pub path: String,
    pub model: String,
    pub vendor: String,
    pub serial: String,
    pub size: u64,
    pub logical_block_size: u32,
    pub physical_block_size: u32,
    pub removable: bool,
    pub bus: Bus,
    pub read_only: bool,
    /// Holds a mounted /, /boot, /boot/efi, /usr, /var, /home or active swap, directly or
    /// through a holder (LVM, RAID, dm-crypt). Never a target.
    pub system: bool,
    /// Everything mounted from this drive: the disk, its partitions and their holders.
    pub mountpoints: Vec<String>,
    pub partitions: Vec<Partition>,
    /// Devices stacked on the disk or its partitions (dm-0, md127, …).
    pub holders: Vec<String>,
    /// For loop devices: the file behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub backing_file: Option<PathBuf>,
    /// What a flash checks the opened device against (see `identity`).
    pub identity: DriveIdentity,
    #[serde(skip)]
    pub name: String,
    /// `major:minor` of the disk and of each partition, for matching files to drives.
    #[serde(skip)]
    pub devnums: Vec<String>,
}

impl Drive {
    /// Media meant to be plugged in and out: what `labflash drives` lists by default.
    pub fn is_removable_media(&self) -> bool {
        self.removable || matches!(self.bus, Bus::Usb | Bus::Mmc)
    }

    /// A built-in disk: writing to one needs the operator's explicit say-so.
    pub fn is_fixed(&self) -> bool {
        !self.is_removable_media() && self.bus != Bus::Loop
    }

    /// A short human description: "SanDisk Ultra (usb, 30.8 GB)".
    pub fn describe(&self) -> String {
        let name = [self.vendor.as_str(), self.model.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let name = if name.is_empty() {
            "unnamed drive".into()
        } else {
            name
        };
        format!(
            "{name} ({}, {})",
            serde_json::to_value(self.bus)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            human_size(self.size)
        )
    }
}

/// "30.8 GB", in the decimal units drive makers print on the label.
/// Two sizes for one sentence ("needs 201.3 MB, holds 67.1 MB"): in bytes when they would read
/// the same rounded.
pub fn human_sizes(a: u64, b: u64) -> (String, String) {
    let (ha, hb) = (human_size(a), human_size(b));
    match ha == hb && a != b {
        true => (format!("{a} bytes"), format!("{b} bytes")),
        false => (ha, hb),
    }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A drive appearing or disappearing.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum DriveEvent {
    Added { drive: Box<Drive> },
    Removed { path: String },
    Changed { drive: Box<Drive> },
}

/// Polls the drive list every `interval` and sends the differences until cancelled. Polling is
/// enough for a picker (sticks come and go at human speed) and needs no udev.
pub async fn watch(
    roots: SystemRoots,
    interval: Duration,
    cancel: CancellationToken,
    events: tokio::sync::mpsc::Sender<DriveEvent>,
) {
    let mut known: Vec<Drive> = Vec::new();
    let mut first = true;
    loop {
        if let Ok(now) = list(&roots) {
            for event in diff(&known, &now, first) {
                if events.send(event).await.is_err() {
                    return;
                }
            }
            known = now;
            first = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

pub(crate) fn diff(before: &[Drive], after: &[Drive], initial: bool) -> Vec<DriveEvent> {
    let mut events = Vec::new();
    for old in before {
        if !after.iter().any(|d| d.path == old.path) {
            events.push(DriveEvent::Removed {
                path: old.path.clone(),
            });
        }
    }
    for new in after {
        match before.iter().find(|d| d.path == new.path) {
            None => events.push(DriveEvent::Added {
                drive: Box::new(new.clone()),
            }),
            Some(old) if old != new && !initial => events.push(DriveEvent::Changed {
                drive: Box::new(new.clone()),
            }),
            Some(_) => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(30_752_000_000), "30.8 GB");
        assert_eq!(human_size(2_000_000_000_000), "2.0 TB");
    }
}
