//! Drive discovery on Linux, from sysfs and /proc (both roots configurable, so tests read fixture
//! trees): every whole-disk block device with what an operator needs to pick the right one, and
//! whether it is a system drive.
//!
//! Not `sysinfo`: its disk list is built from mounted filesystems, so an unmounted stick (the usual
//! target) is not in it, and it knows nothing of partitions, holders, buses or read-only flags.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::mounts::{self, Mount, Swap};
use crate::error::{io_at, Error, Result};
use crate::io::drives::{Bus, Drive, Partition, SystemRoots};
use crate::io::identity::DriveIdentity;

/// Mount points that make the drive under them a system drive.
const SYSTEM_MOUNTS: [&str; 10] = [
    "/",
    "/boot",
    "/boot/efi",
    "/efi",
    "/boot/firmware",
    "/usr",
    "/var",
    "/home",
    "/nix",
    "/opt",
];

/// Every whole-disk block device worth showing (not RAM disks, optical drives, device-mapper or
/// RAID nodes, or unattached loop devices).
pub fn list(roots: &SystemRoots) -> Result<Vec<Drive>> {
    let block = roots.sys.join("block");
    let mounts = mounts::read_mountinfo(&roots.proc)?;
    let swaps = mounts::read_swaps(&roots.proc)?;
    let graph = Graph::read(&roots.sys, &mounts, &swaps)?;
    let mut names: Vec<String> = graph.nodes.keys().cloned().collect();
    names.sort();
    let mut drives = Vec::new();
    for name in names {
        if skipped(&name) {
            continue;
        }
        let dir = block.join(&name);
        let size = read_u64(&dir.join("size")).unwrap_or(0) * 512;
        let backing_file = read_str(&dir.join("loop/backing_file")).map(PathBuf::from);
        if size == 0 || (name.starts_with("loop") && backing_file.is_none()) {
            continue;
        }
        drives.push(graph.drive(&block, &name, size, backing_file));
    }
    Ok(drives)
}

/// The whole drive `target` names (through `/dev/disk/by-id/…` links), its path as the kernel
/// names it, and every drive listed; refused if it names a partition or a device that is not in
/// the list.
pub fn chosen_drive(target: &Path, roots: &SystemRoots) -> Result<(PathBuf, Drive, Vec<Drive>)> {
    let real = fs::canonicalize(target).map_err(|e| Error::io(target, e))?;
    let name = real
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let all = list(roots)?;
    let Some(drive) = all.iter().find(|d| d.name == name).cloned() else {
        let partition = roots.sys.join("class/block").join(&name).join("partition");
        return Err(Error::Refused {
            target: target.display().to_string(),
            reason: if partition.is_file() {
                "it is a partition; choose the whole drive"
            } else {
                "it is not a whole drive that can be flashed"
            }
            .into(),
        });
    };
    Ok((real, drive, all))
}

/// What makes `drive` a system drive, for a refusal: its system mount points, or swap.
pub fn system_use(drive: &Drive) -> String {
    let mounts: Vec<&str> = drive
        .mountpoints
        .iter()
        .map(String::as_str)
        .filter(|m| SYSTEM_MOUNTS.contains(m))
        .collect();
    if mounts.is_empty() {
        "active swap".into()
    } else {
        mounts.join(", ")
    }
}

fn skipped(name: &str) -> bool {
    ["ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The block devices as a graph: each node's partitions, holders, mounts and swap use.
struct Graph {
    nodes: HashMap<String, Node>,
}

#[derive(Default)]
struct Node {
    devnum: String,
    partitions: Vec<String>,
    /// Holders of the disk itself; partitions have their own entries.
    holders: Vec<String>,
    mountpoints: Vec<String>,
    swap: bool,
    dm_name: Option<String>,
}

impl Graph {
    fn read(sys: &Path, mounts: &[Mount], swaps: &[Swap]) -> Result<Self> {
        let block = &sys.join("block");
        let mut nodes: HashMap<String, Node> = HashMap::new();
        let by_devnum: HashMap<&str, Vec<&Mount>> =
            mounts.iter().fold(HashMap::new(), |mut acc, m| {
                acc.entry(m.devnum.as_str()).or_default().push(m);
                acc
            });
        let entries = fs::read_dir(block).map_err(io_at(block))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = block.join(&name);
            let mut node = Node::for_dir(&dir, &name, &by_devnum, swaps);
            for sub in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let sub_name = sub.file_name().to_string_lossy().into_owned();
                let sub_dir = dir.join(&sub_name);
                if sub_dir.join("partition").is_file() {
                    node.partitions.push(sub_name.clone());
                    nodes.insert(
                        sub_name.clone(),
                        Node::for_dir(&sub_dir, &sub_name, &by_devnum, swaps),
                    );
                }
            }
            node.partitions.sort();
            nodes.insert(name, node);
        }
        // A filesystem on an anonymous device (btrfs: `0:NN` in mountinfo) is found by its source,
        // and a multi-device btrfs is on all its members (/sys/fs/btrfs/<uuid>/devices).
        let btrfs = btrfs_members(sys);
        for m in mounts.iter().filter(|m| m.devnum.starts_with("0:")) {
            let Some(name) = node_of_source(&nodes, &m.source) else {
                continue;
            };
            let members = btrfs
                .iter()
                .find(|group| group.contains(&name))
                .cloned()
                .unwrap_or_else(|| vec![name]);
            for member in members {
                if let Some(node) = nodes.get_mut(&member) {
                    if !node.mountpoints.contains(&m.mountpoint) {
                        node.mountpoints.push(m.mountpoint.clone());
                    }
                }
            }
        }
        Ok(Self { nodes })
    }

    /// The node and everything stacked on it, transitively.
    fn closure(&self, name: &str) -> Vec<&str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![name];
        let mut order = Vec::new();
        while let Some(n) = stack.pop() {
            let Some((key, node)) = self.nodes.get_key_value(n) else {
                continue;
            };
            if !seen.insert(key.as_str()) {
                continue;
            }
            order.push(key.as_str());
            // What holds it, and the partitions of what holds it (a partitioned RAID: md126p1).
            stack.extend(node.holders.iter().map(String::as_str));
            if key != name {
                stack.extend(node.partitions.iter().map(String::as_str));
            }
        }
        order
    }

    fn drive(&self, block: &Path, name: &str, size: u64, backing_file: Option<PathBuf>) -> Drive {
        let dir = block.join(name);
        let node = &self.nodes[name];
        let mut members = vec![name];
        members.extend(node.partitions.iter().map(String::as_str));
        let mut mountpoints = Vec::new();
        let mut holders = Vec::new();
        let mut system = false;
        for member in &members {
            for (depth, n) in self.closure(member).into_iter().enumerate() {
                let stacked = &self.nodes[n];
                if depth > 0 && !holders.contains(&n.to_string()) {
                    holders.push(n.to_string());
                }
                system |= stacked.swap;
                for mp in &stacked.mountpoints {
                    system |= SYSTEM_MOUNTS.contains(&mp.as_str());
                    if !mountpoints.contains(mp) {
                        mountpoints.push(mp.clone());
                    }
                }
            }
        }
        holders.sort();
        let partitions = node
            .partitions
            .iter()
            .map(|p| {
                let closure = self.closure(p);
                let mut stacked: Vec<String> = closure[1..].iter().map(|s| s.to_string()).collect();
                stacked.sort();
                Partition {
                    path: format!("/dev/{p}"),
                    mountpoints: closure
                        .iter()
                        .flat_map(|n| self.nodes[*n].mountpoints.iter().cloned())
                        .collect(),
                    holders: stacked,
                }
            })
            .collect();
        let identity = DriveIdentity {
            devnum: node.devnum.clone(),
            diskseq: read_u64(&dir.join("diskseq")),
            serial: serial(&dir),
            size,
        };
        let mut devnums = vec![node.devnum.clone()];
        devnums.extend(node.partitions.iter().map(|p| self.nodes[p].devnum.clone()));
        Drive {
            path: format!("/dev/{name}"),
            model: attr(&dir, &["device/model", "device/name"]),
            vendor: attr(&dir, &["device/vendor", "device/manfid"]),
            serial: identity.serial.clone(),
            size,
            logical_block_size: read_u64(&dir.join("queue/logical_block_size")).unwrap_or(512)
                as u32,
            physical_block_size: read_u64(&dir.join("queue/physical_block_size")).unwrap_or(512)
                as u32,
            removable: read_u64(&dir.join("removable")) == Some(1),
            bus: bus(&dir, name),
            read_only: read_u64(&dir.join("ro")) == Some(1),
            system,
            mountpoints,
            partitions,
            holders,
            backing_file,
            identity,
            name: name.to_string(),
            devnums,
        }
    }
}

impl Node {
    fn for_dir(
        dir: &Path,
        name: &str,
        mounts: &HashMap<&str, Vec<&Mount>>,
        swaps: &[Swap],
    ) -> Self {
        let devnum = read_str(&dir.join("dev")).unwrap_or_default();
        let mut holders: Vec<String> = fs::read_dir(dir.join("holders"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        holders.sort();
        let mountpoints = mounts
            .get(devnum.as_str())
            .map(|ms| ms.iter().map(|m| m.mountpoint.clone()).collect())
            .unwrap_or_default();
        let dm_name = read_str(&dir.join("dm/name"));
        let swap = swaps.iter().any(|s| match s {
            Swap::Device(device) => {
                device == name
                    || dm_name
                        .as_deref()
                        .is_some_and(|dm| device == &format!("mapper/{dm}"))
            }
            Swap::FileOn(on) => *on == devnum,
        });
        Node {
            devnum,
            partitions: Vec::new(),
            holders,
            mountpoints,
            swap,
            dm_name,
        }
    }
}

/// The block device a mount source names: `/dev/sda2`, `/dev/dm-3` or `/dev/mapper/<dm name>`.
fn node_of_source(nodes: &HashMap<String, Node>, source: &str) -> Option<String> {
    let dev = source.strip_prefix("/dev/")?;
    if let Some(dm) = dev.strip_prefix("mapper/") {
        return nodes
            .iter()
            .find(|(_, n)| n.dm_name.as_deref() == Some(dm))
            .map(|(k, _)| k.clone());
    }
    nodes.contains_key(dev).then(|| dev.to_string())
}

/// The member devices of each btrfs filesystem, by name.
fn btrfs_members(sys: &Path) -> Vec<Vec<String>> {
    fs::read_dir(sys.join("fs/btrfs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|fs_dir| {
            fs::read_dir(fs_dir.path().join("devices"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .filter(|members| !members.is_empty())
        .collect()
}

/// The bus, from where the device sits in the sysfs device tree.
fn bus(dir: &Path, name: &str) -> Bus {
    let real = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let path = real.to_string_lossy();
    if name.starts_with("loop") {
        Bus::Loop
    } else if path.contains("/usb") {
        Bus::Usb
    } else if name.starts_with("mmcblk") || path.contains("/mmc_host/") {
        Bus::Mmc
    } else if name.starts_with("nvme") {
        Bus::Nvme
    } else if path.contains("/ata") {
        Bus::Sata
    } else if path.contains("/virtio") || path.contains("/devices/virtual/") {
        Bus::Virtual
    } else {
        Bus::Other
    }
}

/// The serial from the disk (NVMe, virtio), its device, or the USB device above it.
fn serial(dir: &Path) -> String {
    let direct = attr(dir, &["serial", "device/serial", "device/wwid"]);
    if !direct.is_empty() {
        return direct;
    }
    let Ok(mut at) = fs::canonicalize(dir.join("device")) else {
        return String::new();
    };
    while at.pop() {
        if let Some(s) = read_str(&at.join("serial")) {
            if at.join("idVendor").is_file() {
                return s;
            }
        }
        if at.ends_with("devices") {
            break;
        }
    }
    String::new()
}

fn attr(dir: &Path, candidates: &[&str]) -> String {
    candidates
        .iter()
        .find_map(|c| read_str(&dir.join(c)))
        .unwrap_or_default()
}

fn read_str(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_str(path)?.parse().ok()
}

/// The drive a file lives on (for refusing to overwrite the source image or the cache), found by
/// the file's device number among the drives' disks, partitions and what they hold.
pub fn drive_holding(path: &Path, drives: &[Drive], roots: &SystemRoots) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(path).ok()?.dev();
    let devnum = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let block = roots.sys.join("block");
    // Walk down from the device the file is on (maybe dm-0) through its slaves to a disk.
    let mut frontier = vec![devnum];
    let mut seen = HashSet::new();
    while let Some(num) = frontier.pop() {
        if !seen.insert(num.clone()) {
            continue;
        }
        if let Some(d) = drives.iter().find(|d| d.devnums.contains(&num)) {
            return Some(d.path.clone());
        }
        let Some(name) = name_of_devnum(&block, &num) else {
            continue;
        };
        for slave in fs::read_dir(block.join(&name).join("slaves"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(n) = read_str(&block.join(slave.file_name()).join("dev")) {
                frontier.push(n);
            }
        }
    }
    None
}

fn name_of_devnum(block: &Path, devnum: &str) -> Option<String> {
    fs::read_dir(block).ok()?.flatten().find_map(|e| {
        (read_str(&e.path().join("dev")).as_deref() == Some(devnum))
            .then(|| e.file_name().to_string_lossy().into_owned())
    })
}

#[cfg(test)]
#[path = "drives_tests.rs"]
mod tests;
