//! Opening a drive through UDisks2 when this user may not open it directly (not root, not in the
//! disk group): UDisks2 asks polkit, which may ask the desktop user for a password, and passes back
//! an open file descriptor. Nothing here listens on a socket; it is a D-Bus client call.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use zbus::zvariant::{OwnedObjectPath, Value};

use crate::error::Error;

const SERVICE: &str = "org.freedesktop.UDisks2";
const BLOCK: &str = "org.freedesktop.UDisks2.Block";
const FILESYSTEM: &str = "org.freedesktop.UDisks2.Filesystem";
const DRIVE: &str = "org.freedesktop.UDisks2.Drive";

/// `Block.OpenDevice(mode, {flags})` on the drive at `path`; `flags` may hold O_EXCL, O_DIRECT,
/// O_SYNC and O_CLOEXEC (UDisks2 refuses others).
pub fn open(path: &Path, write: bool, flags: i32) -> Result<File, Error> {
    let proxy = block_proxy(path, BLOCK)?;
    let mut options: HashMap<&str, Value> = HashMap::new();
    options.insert("flags", Value::from(flags));
    let mode = if write { "rw" } else { "r" };
    let fd: zbus::zvariant::OwnedFd = proxy
        .call("OpenDevice", &(mode, options))
        .map_err(|e| refused_or_failed(path, "opening it", e))?;
    Ok(File::from(OwnedFd::from(fd)))
}

/// `Filesystem.Unmount` on a partition (or whole disk) holding a filesystem.
pub fn unmount(device: &Path) -> Result<(), Error> {
    let proxy = block_proxy(device, FILESYSTEM)?;
    // Not forced: UDisks2 forces with a lazy unmount, which detaches a busy filesystem that is
    // still written to.
    let options: HashMap<&str, Value> = HashMap::new();
    proxy
        .call::<_, _, ()>("Unmount", &(options,))
        .map_err(|e| refused_or_failed(device, "unmounting it", e))
}

/// Whether this user set the loop device at `device` up through UDisks2 (`Loop.SetupByUID`):
/// only such a one is detached without asking polkit (`loop-delete-others`).
pub fn loop_set_up_by_me(device: &Path) -> Result<bool, Error> {
    let by: u32 = block_proxy(device, "org.freedesktop.UDisks2.Loop")?
        .get_property("SetupByUID")
        .map_err(|e| unavailable(device, e))?;
    Ok(by == unsafe { libc::geteuid() })
}

/// `Loop.Delete`: detaches the loop device at `device`.
pub fn delete_loop(device: &Path) -> Result<(), Error> {
    let options: HashMap<&str, Value> = HashMap::new();
    block_proxy(device, "org.freedesktop.UDisks2.Loop")?
        .call::<_, _, ()>("Delete", &(options,))
        .map_err(|e| refused_or_failed(device, "detaching it", e))
}

/// `Drive.PowerOff` on the drive holding `device`; `false` when UDisks2 has no drive there that
/// can be powered off (a loop device, a virtual disk, a drive that says it cannot).
pub fn power_off(device: &Path) -> Result<bool, Error> {
    let block = block_proxy(device, BLOCK)?;
    let drive: OwnedObjectPath = block
        .get_property("Drive")
        .map_err(|e| unavailable(device, e))?;
    if drive.as_str() == "/" {
        return Ok(false);
    }
    let proxy = zbus::blocking::Proxy::new(block.connection(), SERVICE, drive, DRIVE)
        .map_err(|e| unavailable(device, e))?;
    if !proxy.get_property::<bool>("CanPowerOff").unwrap_or(false) {
        return Ok(false);
    }
    let options: HashMap<&str, Value> = HashMap::new();
    proxy
        .call::<_, _, ()>("PowerOff", &(options,))
        .map_err(|e| refused_or_failed(device, "powering it off", e))?;
    Ok(true)
}

/// A proxy for `interface` on the UDisks2 object of the block device at `path`.
fn block_proxy(
    path: &Path,
    interface: &'static str,
) -> Result<zbus::blocking::Proxy<'static>, Error> {
    let name = device_name(path)?;
    let conn = zbus::blocking::Connection::system().map_err(|e| unavailable(path, e))?;
    let object = format!("/org/freedesktop/UDisks2/block_devices/{}", escape(&name));
    zbus::blocking::Proxy::new(&conn, SERVICE, object, interface).map_err(|e| unavailable(path, e))
}

fn device_name(path: &Path) -> Result<String, Error> {
    let real = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    Ok(real
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned())
}

/// UDisks2 object paths keep [A-Za-z0-9] and write every other byte as `_XX` (hex).
fn escape(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("_{b:02x}")
            }
        })
        .collect()
}

fn unavailable(path: &Path, e: zbus::Error) -> Error {
    tracing::info!("UDisks2 is not reachable: {e}");
    Error::NoAccess {
        target: path.display().to_string(),
    }
}

/// Whether UDisks2 answers on the system bus. It is D-Bus activatable: one that is installed but
/// not running yet is started first (asking whether the name has an owner would not start it).
pub fn available() -> bool {
    let Ok(conn) = zbus::blocking::Connection::system() else {
        return false;
    };
    let Ok(proxy) = zbus::blocking::fdo::DBusProxy::new(&conn) else {
        return false;
    };
    let name = zbus::names::WellKnownName::from_static_str_unchecked(SERVICE);
    if let Err(e) = proxy.start_service_by_name(name.clone(), 0) {
        tracing::info!("UDisks2 could not be started: {e}");
    }
    proxy.name_has_owner(name.into()).unwrap_or(false)
}

/// `doing`: what was asked ("opening it"), for the refusal's words.
fn refused_or_failed(path: &Path, doing: &str, e: zbus::Error) -> Error {
    let text = e.to_string();
    if let zbus::Error::MethodError(name, message, _) = &e {
        let message = message.clone().unwrap_or_default();
        if name.as_str().contains("NotAuthorized") {
            return Error::Permission {
                target: path.display().to_string(),
                detail: not_authorized(name.as_str(), doing, &message),
            };
        }
        if message.contains("busy") {
            return Error::Refused {
                target: path.display().to_string(),
                reason: "it is busy: a filesystem on it is mounted or another program has it open"
                    .into(),
            };
        }
        return Error::Permission {
            target: path.display().to_string(),
            detail: format!("UDisks2 refused: {message}"),
        };
    }
    Error::Permission {
        target: path.display().to_string(),
        detail: format!("UDisks2 failed: {text}"),
    }
}

/// Why polkit said no, and what to do, from UDisks2's error name (udisks
/// `udisksdaemonutil.c` `check_authorization_sync`): `NotAuthorizedDismissed` when a prompt was
/// shown and dismissed, `NotAuthorizedCanObtain` when a password would have done but no
/// authentication agent could ask for it (outside a desktop session; `pkttyagent` registers only
/// for one process, its parent or `--process PID`), plain `NotAuthorized` when no password can.
fn not_authorized(error: &str, doing: &str, message: &str) -> String {
    if error.ends_with("NotAuthorizedDismissed") {
        format!("polkit did not authorize {doing}: the password prompt was dismissed; try again")
    } else if error.ends_with("NotAuthorizedCanObtain") {
        format!("polkit did not authorize {doing}: no polkit authentication agent is running, so nobody could be asked for the password; log in to a desktop session (which runs one), or run labflash as root")
    } else {
        format!("polkit did not authorize {doing} ({message})")
    }
}

#[cfg(test)]
mod tests {
    /// UDisks2's three refusals (udisks `udisksdaemonutil.c`), each with what to do.
    #[test]
    fn each_refusal_says_what_to_do() {
        let said = |name| super::not_authorized(name, "opening it", "Not authorized");
        assert!(said("org.freedesktop.UDisks2.Error.NotAuthorizedDismissed")
            .ends_with("the password prompt was dismissed; try again"));
        assert!(said("org.freedesktop.UDisks2.Error.NotAuthorizedCanObtain")
            .ends_with("log in to a desktop session (which runs one), or run labflash as root"));
        assert_eq!(
            said("org.freedesktop.UDisks2.Error.NotAuthorized"),
            "polkit did not authorize opening it (Not authorized)"
        );
    }

    #[test]
    fn object_path_escaping() {
        assert_eq!(super::escape("sdb"), "sdb");
        assert_eq!(super::escape("mmcblk0"), "mmcblk0");
        assert_eq!(super::escape("dm-0"), "dm_2d0");
    }
}
