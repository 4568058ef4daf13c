//! The image a flash writes, as every source prepares it and every writer takes it.

use std::path::PathBuf;

use crate::fetch::digest::Sha256Digest;

/// The image to write, with the digest the read-back must reproduce.
#[derive(Clone, Debug)]
pub struct Image {
    pub path: PathBuf,
    pub sha256: Sha256Digest,
    pub size: u64,
    /// Bytes that belong far past the image (a backup GPT at the target's end), written and read
    /// back after the image, just before the first MiB.
    pub tail: Option<Tail>,
}

#[derive(Clone, Debug)]
pub struct Tail {
    pub offset: u64,
    pub bytes: Vec<u8>,
}
