//! Ejecting a flashed drive so it can be pulled, once every byte is synced: on Linux a USB drive
//! is powered off and a loop device detached, on Windows the media is ejected. Only the drive
//! that was flashed is ejected: its identity must be the same still.

pub use crate::io::sys::eject::eject;

/// What ejecting did.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "why")]
pub enum Ejected {
    /// The drive was powered off (on Windows: its media ejected): it can be pulled.
    PoweredOff,
    /// The loop device was detached from its file.
    Detached,
    /// Nothing was done, and why (a drive that cannot be powered off from here).
    Kept(String),
}
