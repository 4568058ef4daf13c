//! The app's settings that outlive a session, in one JSON file in the user's config folder.

use std::path::PathBuf;
use std::sync::Mutex;

use labflash_core::Error;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    /// A PEM file of CA certificates trusted beside the system's store.
    ca_cert: Option<PathBuf>,
    /// Where every flash's record is written (a lab's goes beside its lab file regardless).
    #[serde(default)]
    records_dir: Option<PathBuf>,
    /// The root an IncusOS index's signature must chain to (a private mirror's), instead of
    /// IncusOS's own.
    #[serde(default)]
    incus_root: Option<PathBuf>,
}

pub struct Settings {
    /// Where they are kept; `None` keeps them for this session only (tests).
    file: Option<PathBuf>,
    saved: Mutex<Saved>,
}

impl Settings {
    /// The settings in `file`; a missing or unreadable file gives the defaults.
    pub fn load(file: PathBuf) -> Settings {
        let saved = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Settings {
            file: Some(file),
            saved: Mutex::new(saved),
        }
    }

    #[cfg(test)]
    pub fn in_memory() -> Settings {
        Settings {
            file: None,
            saved: Mutex::new(Saved::default()),
        }
    }

    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.saved.lock().expect("not poisoned").ca_cert.clone()
    }

    pub fn set_ca_cert(&self, path: Option<PathBuf>) -> Result<(), Error> {
        self.update(|s| s.ca_cert = path)
    }

    pub fn incus_root(&self) -> Option<PathBuf> {
        self.saved.lock().expect("not poisoned").incus_root.clone()
    }

    pub fn set_incus_root(&self, path: Option<PathBuf>) -> Result<(), Error> {
        self.update(|s| s.incus_root = path)
    }

    pub fn records_dir(&self) -> Option<PathBuf> {
        self.saved.lock().expect("not poisoned").records_dir.clone()
    }

    pub fn set_records_dir(&self, dir: Option<PathBuf>) -> Result<(), Error> {
        self.update(|s| s.records_dir = dir)
    }

    /// Changes the settings and saves them; on a failure to save nothing changes.
    fn update(&self, change: impl FnOnce(&mut Saved)) -> Result<(), Error> {
        let mut saved = self.saved.lock().expect("not poisoned");
        let mut next = saved.clone();
        change(&mut next);
        if let Some(file) = &self.file {
            let io = |e| {
                Error::BadInput(format!(
                    "the settings cannot be saved in {}: {e}",
                    file.display()
                ))
            };
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let text = serde_json::to_vec_pretty(&next).expect("plain data");
            std::fs::write(file, text).map_err(io)?;
        }
        *saved = next;
        Ok(())
    }
}
