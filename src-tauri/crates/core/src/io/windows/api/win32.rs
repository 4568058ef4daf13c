//! The Win32 calls themselves, kept to asking and returning the answer: opening disks and
//! volumes, `DeviceIoControl`, volume enumeration, the registry. What the answers mean is
//! decided in `io/windows/` (tested everywhere).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{ERROR_WRITE_PROTECT, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem as fs;
use windows_sys::Win32::System::Ioctl as ctl;
use windows_sys::Win32::System::Registry as reg;
use windows_sys::Win32::System::SystemInformation::GetSystemWindowsDirectoryW;

use crate::io::windows::answers;
use crate::io::windows::disks::{disk_path, page_file_path, Machine, SystemPlaces, Volume};
use crate::io::windows::locking::VolumeControl;

/// Disks are numbered from 0; Windows leaves gaps when disks go, so this many are tried.
const MOST_DISKS: u32 = 64;
/// `FILE_SHARE_READ | FILE_SHARE_WRITE`: Windows refuses a disk opened any other way while the
/// volume manager holds it; the volume locks keep other writers out.
pub const SHARE: u32 = fs::FILE_SHARE_READ | fs::FILE_SHARE_WRITE;

/// Opens a disk or volume for IOCTLs that need no access right (any user may ask them).
pub fn open_query(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .access_mode(0)
        .share_mode(SHARE)
        .open(path)
}

/// `DeviceIoControl` with `input`, returning up to `out_len` bytes of answer.
pub fn ioctl(file: &File, code: u32, input: &[u8], out_len: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; out_len];
    let mut returned = 0u32;
    // SAFETY: both buffers are valid for the lengths passed; the handle is open for the call.
    let ok = unsafe {
        windows_sys::Win32::System::IO::DeviceIoControl(
            file.as_raw_handle(),
            code,
            if input.is_empty() {
                std::ptr::null()
            } else {
                input.as_ptr().cast()
            },
            input.len() as u32,
            if out.is_empty() {
                std::ptr::null_mut()
            } else {
                out.as_mut_ptr().cast()
            },
            out.len() as u32,
            &mut returned,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    out.truncate(returned as usize);
    Ok(out)
}

/// `IOCTL_STORAGE_QUERY_PROPERTY`, standard query, of `property`; asked again with the size the
/// descriptor's header names when the first answer was cut short.
pub fn query_property(file: &File, property: i32) -> io::Result<Vec<u8>> {
    let mut query = [0u8; 12];
    query[..4].copy_from_slice(&property.to_le_bytes());
    let mut len = 1024;
    loop {
        let answer = ioctl(file, ctl::IOCTL_STORAGE_QUERY_PROPERTY, &query, len)?;
        let wanted = answer.get(4..8).map_or(0, |b| {
            u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize
        });
        if wanted <= answer.len() || wanted <= len || wanted > 1 << 16 {
            return Ok(answer);
        }
        len = wanted;
    }
}

/// The device descriptor of an open disk.
pub fn device_descriptor(file: &File) -> io::Result<Vec<u8>> {
    query_property(file, ctl::StorageDeviceProperty)
}

/// The access-alignment descriptor of an open disk.
pub fn alignment_descriptor(file: &File) -> io::Result<Vec<u8>> {
    query_property(file, ctl::StorageAccessAlignmentProperty)
}

/// A `GET_LENGTH_INFORMATION` answer: `IOCTL_DISK_GET_LENGTH_INFO` needs read access (an
/// administrator's), so for a handle without it the size comes from `DISK_GEOMETRY_EX`'s
/// `DiskSize` (after the 24-byte `DISK_GEOMETRY`), which any user may ask.
pub fn length_info(file: &File) -> io::Result<Vec<u8>> {
    ioctl(file, ctl::IOCTL_DISK_GET_LENGTH_INFO, &[], 8).or_else(|_| {
        geometry(file)?
            .get(24..32)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    })
}

/// A `DISK_GEOMETRY_EX` answer (`IOCTL_DISK_GET_DRIVE_GEOMETRY_EX`), which any user may ask.
pub fn geometry(file: &File) -> io::Result<Vec<u8>> {
    ioctl(file, ctl::IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, &[], 256)
}

/// The device GUID answer of an open disk (`IOCTL_STORAGE_GET_DEVICE_NUMBER_EX`, Windows 10+).
pub fn device_number_ex(file: &File) -> io::Result<Vec<u8>> {
    ioctl(file, ctl::IOCTL_STORAGE_GET_DEVICE_NUMBER_EX, &[], 40)
}

/// The disk number of an open disk (`IOCTL_STORAGE_GET_DEVICE_NUMBER`).
pub fn device_number(file: &File) -> io::Result<u32> {
    answers::device_number(&ioctl(file, ctl::IOCTL_STORAGE_GET_DEVICE_NUMBER, &[], 12)?)
}

/// A path as Windows wants it: UTF-16, NUL-terminated.
pub fn wide(s: impl AsRef<OsStr>) -> Vec<u16> {
    s.as_ref().encode_wide().chain(Some(0)).collect()
}

/// The string a call wrote into `buf` (up to its first NUL).
fn from_wide(buf: &[u16]) -> String {
    let end = buf.iter().position(|u| *u == 0).unwrap_or(buf.len());
    String::from_utf16_lossy(&buf[..end])
}

/// The volume (`\\?\Volume{…}\`) holding `path`.
pub fn volume_of(path: &Path) -> Option<String> {
    let mut root = [0u16; 1024];
    let mut name = [0u16; 64];
    // SAFETY: NUL-terminated input; output buffers valid for the lengths passed.
    unsafe {
        if fs::GetVolumePathNameW(wide(path).as_ptr(), root.as_mut_ptr(), root.len() as u32) == 0 {
            return None;
        }
        if fs::GetVolumeNameForVolumeMountPointW(root.as_ptr(), name.as_mut_ptr(), 64) == 0 {
            return None;
        }
    }
    Some(from_wide(&name))
}

/// The machine as Win32 answers.
pub struct Win32;

impl Win32 {
    fn disk(n: u32) -> io::Result<File> {
        open_query(&disk_path(n))
    }
}

impl Machine for Win32 {
    fn disk_numbers(&self) -> Vec<u32> {
        (0..MOST_DISKS).filter(|n| Self::disk(*n).is_ok()).collect()
    }
    fn device_descriptor(&self, disk: u32) -> io::Result<Vec<u8>> {
        device_descriptor(&Self::disk(disk)?)
    }
    fn alignment_descriptor(&self, disk: u32) -> io::Result<Vec<u8>> {
        alignment_descriptor(&Self::disk(disk)?)
    }
    fn length_info(&self, disk: u32) -> io::Result<Vec<u8>> {
        length_info(&Self::disk(disk)?)
    }
    fn device_number_ex(&self, disk: u32) -> io::Result<Vec<u8>> {
        device_number_ex(&Self::disk(disk)?)
    }
    fn write_protected(&self, disk: u32) -> bool {
        Self::disk(disk)
            .and_then(|f| ioctl(&f, ctl::IOCTL_DISK_IS_WRITABLE, &[], 0))
            .is_err_and(|e| e.raw_os_error() == Some(ERROR_WRITE_PROTECT as i32))
    }
    fn volumes(&self) -> Vec<Volume> {
        volume_names().into_iter().map(|n| volume(&n)).collect()
    }
    fn system_places(&self) -> SystemPlaces {
        let mut folder = [0u16; 260];
        // SAFETY: the buffer is valid for its length.
        let len = unsafe { GetSystemWindowsDirectoryW(folder.as_mut_ptr(), 260) } as usize;
        let windows = (len > 0 && len < 260).then(|| from_wide(&folder));
        let (mut page_files, mut unplaced) = (Vec::new(), Vec::new());
        for file in registry_multi(
            r"SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management",
            "ExistingPageFiles",
        )
        .iter()
        .map(|name| page_file_path(name))
        {
            match volume_of(Path::new(&file)) {
                Some(volume) => page_files.push((file, volume)),
                None => unplaced.push(format!("the page file {file}")),
            }
        }
        SystemPlaces {
            windows_volume: windows.and_then(|w| volume_of(Path::new(&w))),
            boot_device: registry_string(r"SYSTEM\Setup", "SystemPartition"),
            page_files,
            unplaced,
        }
    }
}

/// Every volume name Windows knows (`FindFirstVolumeW`, `FindNextVolumeW`).
fn volume_names() -> Vec<String> {
    let mut names = Vec::new();
    let mut buf = [0u16; 64];
    // SAFETY: the buffer is valid for its length; the search handle is closed below.
    unsafe {
        let find = fs::FindFirstVolumeW(buf.as_mut_ptr(), 64);
        if find == INVALID_HANDLE_VALUE {
            return names;
        }
        loop {
            names.push(from_wide(&buf));
            if fs::FindNextVolumeW(find, buf.as_mut_ptr(), 64) == 0 {
                break;
            }
        }
        fs::FindVolumeClose(find);
    }
    names
}

/// A volume's NT device, mount paths and disk extents; what cannot be read is left empty.
fn volume(guid_path: &str) -> Volume {
    let bare = guid_path.trim_end_matches('\\');
    let mut device = [0u16; 260];
    let mut paths = vec![0u16; 4096];
    let mut returned = 0u32;
    // SAFETY: NUL-terminated inputs; output buffers valid for the lengths passed.
    let (device_len, listed) = unsafe {
        (
            fs::QueryDosDeviceW(
                wide(bare.strip_prefix(r"\\?\").unwrap_or(bare)).as_ptr(),
                device.as_mut_ptr(),
                260,
            ),
            fs::GetVolumePathNamesForVolumeNameW(
                wide(guid_path).as_ptr(),
                paths.as_mut_ptr(),
                paths.len() as u32,
                &mut returned,
            ),
        )
    };
    let extents = open_query(bare)
        .and_then(|f| {
            ioctl(
                &f,
                fs::IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS,
                &[],
                // Room for 1024 extents: a smaller answer than the volume's fails whole
                // (ERROR_MORE_DATA), and the volume would seem to lie on no disk.
                8 + 24 * 1024,
            )
        })
        .unwrap_or_default();
    Volume {
        guid_path: guid_path.to_string(),
        device: if device_len > 0 {
            from_wide(&device)
        } else {
            String::new()
        },
        mount_paths: if listed != 0 {
            answers::multi_string(&paths)
        } else {
            Vec::new()
        },
        extents,
    }
}

/// A value under `HKEY_LOCAL_MACHINE\key` of the types `flags` allows, as UTF-16 units.
fn registry(key: &str, value: &str, flags: u32) -> Option<Vec<u16>> {
    let mut units = vec![0u16; 4096];
    let mut bytes = (units.len() * 2) as u32;
    // SAFETY: NUL-terminated names; the buffer is valid for `bytes` bytes.
    let status = unsafe {
        reg::RegGetValueW(
            reg::HKEY_LOCAL_MACHINE,
            wide(key).as_ptr(),
            wide(value).as_ptr(),
            flags,
            std::ptr::null_mut(),
            units.as_mut_ptr().cast(),
            &mut bytes,
        )
    };
    (status == 0).then(|| {
        units.truncate(bytes as usize / 2);
        units
    })
}

fn registry_string(key: &str, value: &str) -> Option<String> {
    registry(key, value, reg::RRF_RT_REG_SZ).map(|u| from_wide(&u))
}

fn registry_multi(key: &str, value: &str) -> Vec<String> {
    registry(key, value, reg::RRF_RT_REG_MULTI_SZ)
        .map(|u| answers::multi_string(&u))
        .unwrap_or_default()
}

/// Volumes locked and dismounted through Win32 (an administrator's handles).
pub struct Volumes;

impl VolumeControl for Volumes {
    type Handle = File;
    fn open(&self, volume: &str) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .share_mode(SHARE)
            .open(volume.trim_end_matches('\\'))
    }
    fn lock(&self, handle: &File) -> io::Result<()> {
        ioctl(handle, ctl::FSCTL_LOCK_VOLUME, &[], 0).map(drop)
    }
    fn dismount(&self, handle: &File) -> io::Result<()> {
        ioctl(handle, ctl::FSCTL_DISMOUNT_VOLUME, &[], 0).map(drop)
    }
    fn pause(&self) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
