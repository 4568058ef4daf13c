//! Taking a disk's volumes from Windows before writing it: each volume is opened, locked
//! (`FSCTL_LOCK_VOLUME`) and dismounted (`FSCTL_DISMOUNT_VOLUME`), in that order, and the handles
//! are held until the flash ends, so Windows neither writes to a filesystem being overwritten
//! nor mounts the new partitions mid-flash. Closing a handle releases its lock. A lock refused
//! while programs have files open is tried again for a moment, then the flash is refused.

use std::io;

/// How many times a lock is asked for, a pause apart, before the volume counts as in use.
pub const LOCK_TRIES: u32 = 20;

/// The volume calls (Win32 in `api/`, a recording fake in tests).
pub trait VolumeControl {
    /// An open volume; dropping it closes it, which releases its lock.
    type Handle;
    fn open(&self, volume: &str) -> io::Result<Self::Handle>;
    fn lock(&self, handle: &Self::Handle) -> io::Result<()>;
    fn dismount(&self, handle: &Self::Handle) -> io::Result<()>;
    /// Waits before asking for a refused lock again.
    fn pause(&self);
}

/// A volume that could not be taken, and why.
#[derive(Debug)]
pub struct NotTaken {
    pub volume: String,
    pub step: &'static str,
    pub error: io::Error,
}

impl std::fmt::Display for NotTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = if self.step == "lock" {
            ": a program has files open on it; close it and try again"
        } else {
            ""
        };
        write!(
            f,
            "Windows would not {} its volume {} ({}){hint}",
            self.step, self.volume, self.error
        )
    }
}

/// Locks and dismounts every volume in `volumes`, in order, and returns the handles holding
/// them. If one fails, the ones already taken are released (their handles dropped) and nothing
/// is left locked.
pub fn take<C: VolumeControl>(control: &C, volumes: &[String]) -> Result<Vec<C::Handle>, NotTaken> {
    let mut held = Vec::with_capacity(volumes.len());
    for volume in volumes {
        let failed = |step, error| NotTaken {
            volume: volume.clone(),
            step,
            error,
        };
        let handle = control.open(volume).map_err(|e| failed("open", e))?;
        lock(control, &handle).map_err(|e| failed("lock", e))?;
        control
            .dismount(&handle)
            .map_err(|e| failed("dismount", e))?;
        held.push(handle);
    }
    Ok(held)
}

fn lock<C: VolumeControl>(control: &C, handle: &C::Handle) -> io::Result<()> {
    let mut tries = 1;
    loop {
        match control.lock(handle) {
            Err(_) if tries < LOCK_TRIES => {
                tries += 1;
                control.pause();
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records every call; `refuse` names calls that fail ("lock B" fails every time,
    /// "lock B×3" the first three times).
    #[derive(Default)]
    struct Fake {
        calls: Rc<RefCell<Vec<String>>>,
        refuse: Vec<&'static str>,
    }

    #[derive(Debug)]
    struct Handle {
        volume: String,
        calls: Rc<RefCell<Vec<String>>>,
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            self.calls
                .borrow_mut()
                .push(format!("close {}", self.volume));
        }
    }

    impl Fake {
        fn call(&self, what: &str) -> io::Result<()> {
            self.calls.borrow_mut().push(what.to_string());
            let times = self.calls.borrow().iter().filter(|c| *c == what).count();
            let refused = self.refuse.iter().any(|r| match r.split_once('×') {
                Some((call, n)) => call == what && times <= n.parse().unwrap(),
                None => *r == what,
            });
            if refused {
                Err(io::Error::from_raw_os_error(5))
            } else {
                Ok(())
            }
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl VolumeControl for Fake {
        type Handle = Handle;
        fn open(&self, volume: &str) -> io::Result<Handle> {
            self.call(&format!("open {volume}"))?;
            Ok(Handle {
                volume: volume.to_string(),
                calls: self.calls.clone(),
            })
        }
        fn lock(&self, h: &Handle) -> io::Result<()> {
            self.call(&format!("lock {}", h.volume))
        }
        fn dismount(&self, h: &Handle) -> io::Result<()> {
            self.call(&format!("dismount {}", h.volume))
        }
        fn pause(&self) {
            self.calls.borrow_mut().push("pause".into());
        }
    }

    fn volumes() -> Vec<String> {
        vec!["A".into(), "B".into()]
    }

    #[test]
    fn each_volume_is_opened_locked_then_dismounted_and_held() {
        let fake = Fake::default();
        let held = take(&fake, &volumes()).unwrap();
        assert_eq!(
            fake.calls(),
            [
                "open A",
                "lock A",
                "dismount A",
                "open B",
                "lock B",
                "dismount B"
            ]
        );
        drop(held);
        assert_eq!(fake.calls()[6..], ["close A", "close B"]);
        assert!(take(&fake, &[]).unwrap().is_empty());
    }

    #[test]
    fn a_refused_lock_is_asked_again_then_the_taken_volumes_are_released() {
        let fake = Fake {
            refuse: vec!["lock B×2"],
            ..Fake::default()
        };
        let held = take(&fake, &volumes()).unwrap();
        assert_eq!(
            fake.calls()[3..],
            [
                "open B",
                "lock B",
                "pause",
                "lock B",
                "pause",
                "lock B",
                "dismount B"
            ]
        );
        drop(held);

        let fake = Fake {
            refuse: vec!["lock B"],
            ..Fake::default()
        };
        let err = take(&fake, &volumes()).unwrap_err();
        let calls = fake.calls();
        let locks = calls.iter().filter(|c| *c == "lock B").count();
        assert_eq!(locks, LOCK_TRIES as usize);
        assert!(!calls.contains(&"dismount B".to_string()));
        // Nothing stays locked: B's handle and A's are closed, B's first.
        assert_eq!(calls[calls.len() - 2..], ["close B", "close A"]);
        let said = err.to_string();
        assert!(
            said.starts_with("Windows would not lock its volume B ("),
            "{said}"
        );
        assert!(
            said.ends_with("): a program has files open on it; close it and try again"),
            "{said}"
        );
    }

    #[test]
    fn a_failed_dismount_or_open_releases_what_was_taken() {
        let fake = Fake {
            refuse: vec!["dismount B"],
            ..Fake::default()
        };
        let err = take(&fake, &volumes()).unwrap_err();
        assert_eq!((err.volume.as_str(), err.step), ("B", "dismount"));
        assert!(!err.to_string().contains("files open"), "{err}");
        assert_eq!(
            fake.calls()[fake.calls().len() - 2..],
            ["close B", "close A"]
        );

        let fake = Fake {
            refuse: vec!["open A"],
            ..Fake::default()
        };
        let err = take(&fake, &volumes()).unwrap_err();
        assert_eq!((err.volume.as_str(), err.step), ("A", "open"));
        assert_eq!(fake.calls(), ["open A"]);
    }
}
