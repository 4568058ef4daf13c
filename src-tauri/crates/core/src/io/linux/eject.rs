//! Ejecting a flashed drive so it can be pulled: a USB drive is powered off (UDisks2's
//! `Drive.PowerOff` for a desktop user; as root, the USB device's sysfs `remove`, which is what
//! UDisks2 does itself), a loop device is detached (its backing file keeps the image). The flash
//! has already synced every byte; ejecting only tells the machine the drive is going. Only the
//! drive that was flashed is ejected: its device number and disk sequence must be the same still.

use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::udisks;
use crate::error::Error;
use crate::io::eject::Ejected;
use crate::io::identity::DriveIdentity;

/// `LOOP_CLR_FD` from linux/loop.h.
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;

/// Ejects the whole-disk device at `path` if it is still the drive `flashed` (as root directly,
/// otherwise through UDisks2; polkit may ask the desktop user).
pub fn eject(path: &Path, flashed: &DriveIdentity) -> Result<Ejected, Error> {
    let real = fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    still_flashed(&real, flashed)?;
    let name = real
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let root = unsafe { libc::geteuid() } == 0;
    if name.starts_with("loop") {
        if root {
            return detach_loop(&real);
        }
        // Detaching a loop device another user (root, `losetup`) set up asks polkit again
        // (`loop-delete-others`): a second password for one drive, and nothing to pull.
        if !udisks::loop_set_up_by_me(&real)? {
            return Ok(Ejected::Kept(format!(
                "the loop device {} stays attached; its file holds the image",
                real.display()
            )));
        }
        return udisks::delete_loop(&real).map(|()| Ejected::Detached);
    }
    if root {
        return match usb_device_of(&Path::new("/sys/block").join(&name)) {
            Some(usb) => {
                fs::write(usb.join("remove"), "1").map_err(|e| Error::io(usb.join("remove"), e))?;
                Ok(Ejected::PoweredOff)
            }
            None => Ok(Ejected::Kept(format!(
                "{} is not a USB drive, so it cannot be powered off from here; it is safe to remove once the flash has finished",
                real.display()
            ))),
        };
    }
    Ok(if udisks::power_off(&real)? {
        Ejected::PoweredOff
    } else {
        Ejected::Kept(format!(
            "{} cannot be powered off from here; it is safe to remove once the flash has finished",
            real.display()
        ))
    })
}

/// Refuses a device that is not the drive flashed any more: another disk given its number, or a
/// loop device re-attached to another file (same number, a new disk sequence).
fn still_flashed(real: &Path, flashed: &DriveIdentity) -> Result<(), Error> {
    let meta = fs::metadata(real).map_err(|e| Error::io(real, e))?;
    let devnum = format!("{}:{}", libc::major(meta.rdev()), libc::minor(meta.rdev()));
    // Read through the device number, so it is this device's, whatever its name.
    let diskseq = fs::read_to_string(format!("/sys/dev/block/{devnum}/diskseq"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let how = if !meta.file_type().is_block_device() {
        "it is not a drive now".to_string()
    } else if devnum != flashed.devnum {
        format!("device {devnum}, not {}", flashed.devnum)
    } else if let Some(was) = flashed.diskseq.filter(|was| diskseq != Some(*was)) {
        let now = diskseq.map_or("unknown".into(), |now| now.to_string());
        format!("disk sequence {now}, not {was}")
    } else {
        return Ok(());
    };
    Err(Error::BadInput(format!(
        "{} is not the drive that was flashed ({how}): it was unplugged or re-attached since, so it is not ejected",
        real.display()
    )))
}

fn detach_loop(dev: &Path) -> Result<Ejected, Error> {
    let file = OpenOptions::new()
        .read(true)
        .open(dev)
        .map_err(|e| Error::io(dev, e))?;
    if unsafe { libc::ioctl(file.as_raw_fd(), LOOP_CLR_FD as _, 0) } != 0 {
        return Err(Error::io(dev, std::io::Error::last_os_error()));
    }
    drop(file);
    // A loop device in use elsewhere is only marked to detach when its last user closes it. A
    // probe that opens it for a moment (udev's blkid, run when a written device is closed) goes
    // within a second or two: wait that long before saying it is kept.
    let name = dev.file_name().unwrap_or_default().to_string_lossy();
    let attached = || Path::new(&format!("/sys/block/{name}/loop/backing_file")).exists();
    for _ in 0..40 {
        if !attached() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if attached() {
        return Ok(Ejected::Kept(format!(
            "{} is still in use by another program; it detaches when that program closes it",
            dev.display()
        )));
    }
    Ok(Ejected::Detached)
}

/// The USB device (the one with a vendor id and a `remove` switch) a block device hangs from,
/// walking up its sysfs device path; `None` for a drive on another bus.
pub fn usb_device_of(block: &Path) -> Option<PathBuf> {
    let mut dir = fs::canonicalize(block.join("device")).ok()?;
    loop {
        if dir.join("idVendor").is_file() && dir.join("remove").is_file() {
            return Some(dir);
        }
        if !dir.pop() || dir.as_os_str().len() <= 1 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs-like tree: the block device's `device` link leads into a USB device's subtree.
    #[test]
    fn finds_the_usb_device_a_stick_hangs_from_and_none_for_other_buses() {
        let t = tempfile::tempdir().unwrap();
        let usb = t.path().join("devices/pci0000:00/usb2/2-1");
        let scsi = usb.join("2-1:1.0/host6/target6:0:0/6:0:0:0");
        fs::create_dir_all(&scsi).unwrap();
        fs::write(usb.join("idVendor"), "0781\n").unwrap();
        fs::write(usb.join("remove"), "").unwrap();
        // The interface below the device has a `remove`-less idVendor-less dir: not it.
        let sdb = t.path().join("block/sdb");
        fs::create_dir_all(&sdb).unwrap();
        std::os::unix::fs::symlink(&scsi, sdb.join("device")).unwrap();
        assert_eq!(usb_device_of(&sdb), Some(fs::canonicalize(&usb).unwrap()));

        let nvme = t.path().join("devices/pci0000:00/0000:00:04.0/nvme/nvme0");
        fs::create_dir_all(&nvme).unwrap();
        let disk = t.path().join("block/nvme0n1");
        fs::create_dir_all(&disk).unwrap();
        std::os::unix::fs::symlink(&nvme, disk.join("device")).unwrap();
        assert_eq!(usb_device_of(&disk), None);
        // A loop device has no `device` link at all.
        assert_eq!(usb_device_of(&t.path().join("block/loop0")), None);
    }
}
