//! The target rules: which drives and files may be written, enforced here so every front end (and
//! the privileged helper) obeys the same ones. A refusal writes nothing.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::flash::target_cancel::TargetCancel;
use crate::io::device::{self, PathKind, TargetKind};
use crate::io::drives::{self, Drive, SystemRoots};
use crate::io::identity::{self, drive_changed, DriveIdentity, Identity};
use crate::io::{mounts, openers};

/// How a drive listed under the same name differs from the one chosen.
const REATTACHED: &str = "another disk has its name now, or it was re-attached";

#[derive(Clone, Debug, Default)]
pub struct TargetOptions {
    /// Unmount the drive's filesystems instead of refusing a mounted drive.
    pub unmount: bool,
    /// Accept a fixed, non-removable disk. Front ends ask the operator to confirm it first.
    pub allow_fixed: bool,
    /// Whole-disk block devices only, named by their own path (no symlink): the privileged
    /// helper's rule, since it writes as root what an unprivileged process asked for.
    pub whole_drives_only: bool,
}

/// A target as the operator chose it: a path, and for a drive picked from a list, what that
/// drive was then (the flash is refused if the path names another drive now).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Chosen {
    pub path: PathBuf,
    pub identity: Option<DriveIdentity>,
}

impl Chosen {
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            identity: None,
        }
    }
}

/// A target that passed every rule.
#[derive(Clone, Debug)]
pub struct Approved {
    pub path: PathBuf,
    pub kind: TargetKind,
    /// The drive, for block devices.
    pub drive: Option<Drive>,
    /// Mount points to unmount before writing (only with `TargetOptions::unmount`).
    pub to_unmount: Vec<String>,
    /// What every open of it is checked against.
    pub identity: Identity,
    /// Stops writing this target alone (shared by every copy of this approval).
    pub cancel: TargetCancel,
}

/// Checks the chosen target against the rules for writing an image of `image_size` bytes (unknown for a
/// stream being decoded: the writer then stops at the drive's end). `protected` are the files
/// that must survive (the source image, the cache folder): their drives are refused.
pub fn approve(
    chosen: &Chosen,
    image_size: Option<u64>,
    protected: &[&Path],
    options: &TargetOptions,
    roots: &SystemRoots,
) -> Result<Approved> {
    let target = chosen.path.as_path();
    if options.whole_drives_only {
        device::check_names_a_drive(target)?;
    }
    match device::kind_of(target) {
        Ok(PathKind::File) => approve_file(chosen, protected),
        Ok(PathKind::Drive) => approve_drive(chosen, image_size, protected, options, roots),
        Ok(PathKind::Other) => Err(refused(target, "it is neither a drive nor a regular file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => approve_new_file(chosen),
        Err(e) => Err(Error::io(target, e)),
    }
}

fn refused(target: &Path, reason: impl Into<String>) -> Error {
    Error::Refused {
        target: target.display().to_string(),
        reason: reason.into(),
    }
}

/// A path that names nothing yet: a new image file (a VM disk, say), if its folder exists and
/// it was not chosen as a drive.
fn approve_new_file(chosen: &Chosen) -> Result<Approved> {
    let target = chosen.path.as_path();
    if chosen.identity.is_some() {
        return Err(refused(
            target,
            "it was chosen as a drive and no longer exists",
        ));
    }
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty());
    if target.starts_with("/dev") || parent.is_some_and(|p| !p.is_dir()) {
        return Err(refused(target, "it does not exist"));
    }
    if std::fs::symlink_metadata(target).is_ok() {
        return Err(refused(target, "it is a symbolic link to nothing"));
    }
    Ok(Approved {
        path: target.to_path_buf(),
        kind: TargetKind::File,
        drive: None,
        to_unmount: Vec::new(),
        identity: Identity::NewFile,
        cancel: TargetCancel::default(),
    })
}

/// An existing image file, unless it is one of the `protected` files.
fn approve_file(chosen: &Chosen, protected: &[&Path]) -> Result<Approved> {
    let target = chosen.path.as_path();
    // A drive's identity never vouches for a file (a name swapped for one since the list).
    if chosen.identity.is_some() {
        return Err(refused(
            target,
            "it was chosen as a drive and is a file now",
        ));
    }
    // The file as the open reaches it (a VM disk behind a link of root's or this user's),
    // identified from that descriptor, not from where the name pointed a moment before.
    let path = device::resolve_file_target(target)?;
    let (folder, name) = device::Folder::of(&path)?;
    let (dev, ino) = folder
        .open_existing(name, false)
        .and_then(|f| identity::file_id(&f))
        .map_err(|e| Error::io(&path, e))?;
    if protected
        .iter()
        .any(|p| identity::file_id_at(p) == Some((dev, ino)))
    {
        return Err(refused(target, "it is the source image itself"));
    }
    Ok(Approved {
        path,
        kind: TargetKind::File,
        drive: None,
        to_unmount: Vec::new(),
        identity: Identity::File { dev, ino },
        cancel: TargetCancel::default(),
    })
}

/// A block device: a whole drive in the list, still the one chosen, that may take the image.
fn approve_drive(
    chosen: &Chosen,
    image_size: Option<u64>,
    protected: &[&Path],
    options: &TargetOptions,
    roots: &SystemRoots,
) -> Result<Approved> {
    let target = chosen.path.as_path();
    let (real, drive, all) = drives::chosen_drive(target, roots)?;

    if let Some(listed) = &chosen.identity {
        if *listed != drive.identity {
            return Err(drive_changed(target, REATTACHED));
        }
    }
    if let Some(why) =
        unsuitable(&drive, image_size).or_else(|| holding(&drive, protected, &all, roots))
    {
        return Err(refused(target, why.reason));
    }
    if drive.is_fixed() && !options.allow_fixed {
        return Err(refused(target, format!(
            "it is a fixed {} disk, not removable media; allow fixed disks explicitly to write to it",
            serde_json::to_value(drive.bus).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        )));
    }
    if !drive.mountpoints.is_empty() && !options.unmount {
        return Err(refused(
            target,
            format!(
                "it has mounted filesystems ({}); unmount them or let labflash unmount them",
                drive.mountpoints.join(", ")
            ),
        ));
    }
    Ok(Approved {
        path: real,
        kind: TargetKind::BlockDevice,
        to_unmount: drive.mountpoints.clone(),
        identity: Identity::Drive(drive.identity.clone()),
        drive: Some(drive),
        cancel: TargetCancel::default(),
    })
}

/// Why a drive cannot take an image: a short badge for a list of drives ("Too small — needs
/// 1.3 GB") and the reason as a clause ("the image needs … and it holds only …").
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsuitable {
    pub badge: String,
    pub reason: String,
}

/// Why a drive can never take this image, whatever the options: a system drive, read-only, or
/// too small. Front ends list such drives disabled with this reason.
pub fn unsuitable(drive: &Drive, image_size: Option<u64>) -> Option<Unsuitable> {
    if drive.system {
        return Some(Unsuitable {
            badge: "System drive".into(),
            reason: format!(
                "it is a system drive (it holds {})",
                drives::system_use(drive)
            ),
        });
    }
    if drive.read_only {
        return Some(Unsuitable {
            badge: "Read-only".into(),
            reason: "it is read-only (check the card's lock switch)".into(),
        });
    }
    match image_size {
        Some(size) if drive.size < size => Some(Unsuitable {
            badge: format!("Too small — needs {}", drives::human_size(size)),
            reason: {
                let (needs, holds) = drives::human_sizes(size, drive.size);
                format!("the image needs {needs} and it holds only {holds}")
            },
        }),
        _ => None,
    }
}

/// Whether the drive holds one of the files the flash reads (the source image, the cache), or is
/// a loop device backed by one: writing it would destroy what is being written.
pub fn holding(
    drive: &Drive,
    protected: &[&Path],
    all: &[Drive],
    roots: &SystemRoots,
) -> Option<Unsuitable> {
    for p in protected {
        if drives::drive_holding(p, all, roots).as_deref() == Some(drive.path.as_str()) {
            return Some(Unsuitable {
                badge: "Holds the source".into(),
                reason: format!("it holds {}, which labflash is using", p.display()),
            });
        }
        if let (Some(backing), Ok(source)) = (&drive.backing_file, std::fs::canonicalize(p)) {
            if *backing == source {
                return Some(Unsuitable {
                    badge: "Holds the source".into(),
                    reason: format!("this loop device is backed by {}", p.display()),
                });
            }
        }
    }
    None
}

/// Refuses a drive that is no longer the one approved (its name now another disk's: checked
/// before anything is unmounted, from what the kernel lists, serial included), or that another
/// process uses: open on the disk or a partition, or holding a file or its working folder in one
/// of the drive's filesystems (which would keep it from unmounting).
pub fn check_unused(approved: &Approved, roots: &SystemRoots) -> Result<()> {
    let Some(drive) = &approved.drive else {
        return Ok(());
    };
    let now = drives::list(roots)?
        .into_iter()
        .find(|d| d.name == drive.name)
        .map(|d| d.identity);
    if now.as_ref() != Some(&drive.identity) {
        return Err(drive_changed(&approved.path, REATTACHED));
    }
    // Tools probe drives for a moment (udev's blkid, losetup looking for a free loop device):
    // only a process still holding it after half a second counts.
    let mut users = openers::users_of(drive, roots);
    for _ in 0..5 {
        if users.is_empty() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = openers::users_of(drive, roots);
        users.retain(|u| now.contains(u));
    }
    if users.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = users.iter().map(ToString::to_string).collect();
    Err(Error::Refused {
        target: approved.path.display().to_string(),
        reason: format!(
            "another program is using it ({}); close it and try again",
            names.join("; ")
        ),
    })
}

/// Unmounts what `approve` found mounted, never lazily, and refuses if anything stays.
pub fn unmount(approved: &Approved, roots: &SystemRoots) -> Result<()> {
    let Some(drive) = &approved.drive else {
        return Ok(());
    };
    if approved.to_unmount.is_empty() {
        return Ok(());
    }
    mounts::unmount_drive(drive, &approved.to_unmount, &approved.path, roots)?;
    tracing::info!(drive = %drive.path, "unmounted {}", approved.to_unmount.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::drives::Bus;

    /// A 1 GB USB stick, nothing mounted (io/linux/drives_tests.rs finds real causes in sysfs trees).
    fn stick() -> Drive {
        Drive {
            path: "/dev/sdz".into(),
            model: "Ultra".into(),
            vendor: "SanDisk".into(),
            serial: "4C53".into(),
            size: 1_000_000_000,
            logical_block_size: 512,
            physical_block_size: 512,
            removable: true,
            bus: Bus::Usb,
            read_only: false,
            system: false,
            mountpoints: Vec::new(),
            partitions: Vec::new(),
            holders: Vec::new(),
            backing_file: None,
            identity: DriveIdentity {
                devnum: "8:208".into(),
                diskseq: Some(9),
                serial: "4C53".into(),
                size: 1_000_000_000,
            },
            name: "sdz".into(),
            devnums: vec!["8:208".into()],
        }
    }

    #[test]
    fn a_system_drive_is_never_suitable_and_says_what_it_holds() {
        assert_eq!(unsuitable(&stick(), Some(1 << 20)), None);
        assert_eq!(unsuitable(&stick(), None), None);
        // System beats every other reason: it is the one that must never be overridden.
        let mut root = stick();
        (root.system, root.read_only) = (true, true);
        root.mountpoints = vec!["/media/x".into(), "/".into(), "/home".into()];
        for size in [None, Some(1), Some(u64::MAX)] {
            let why = unsuitable(&root, size).expect("a system drive is refused");
            assert_eq!(why.badge, "System drive");
            assert_eq!(why.reason, "it is a system drive (it holds /, /home)");
        }
        // Swap alone: no system mount to name.
        let mut swap = stick();
        swap.system = true;
        swap.mountpoints = vec!["/media/x".into()];
        let why = unsuitable(&swap, Some(1)).expect("a swap drive is refused");
        assert_eq!(
            why.reason, "it is a system drive (it holds active swap)",
            "{why:?}"
        );
    }

    #[test]
    fn a_drive_identity_never_vouches_for_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("victim.conf");
        std::fs::write(&file, b"keep").unwrap();
        let as_drive = |path: &Path| Chosen {
            path: path.to_path_buf(),
            identity: Some(DriveIdentity {
                devnum: "7:0".into(),
                diskseq: Some(1),
                serial: String::new(),
                size: 4,
            }),
        };
        let approve = |chosen: &Chosen| {
            approve(
                chosen,
                Some(4),
                &[],
                &TargetOptions::default(),
                &SystemRoots::default(),
            )
        };
        for (path, why) in [
            (file.clone(), "is a file now"),
            (dir.path().join("new.img"), "no longer exists"),
        ] {
            let err = approve(&as_drive(&path)).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
            assert!(approve(&Chosen::path(&path)).is_ok(), "as a file it may be");
        }
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    #[test]
    fn read_only_and_too_small_drives_are_unsuitable() {
        let mut ro = stick();
        ro.read_only = true;
        assert_eq!(unsuitable(&ro, None).unwrap().badge, "Read-only");
        let small = unsuitable(&stick(), Some(1_000_000_001)).unwrap();
        assert_eq!(small.badge, "Too small — needs 1.0 GB");
        // Sizes that read the same rounded are said in bytes.
        assert_eq!(
            small.reason,
            "the image needs 1000000001 bytes and it holds only 1000000000 bytes"
        );
        let tiny = unsuitable(&stick(), Some(2_013_000_000)).unwrap();
        assert!(tiny
            .reason
            .ends_with("the image needs 2.0 GB and it holds only 1.0 GB"));
        assert_eq!(unsuitable(&stick(), Some(1_000_000_000)), None);
    }
}
