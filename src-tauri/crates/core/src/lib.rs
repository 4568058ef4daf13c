//! labflash-core: the engine behind the `labflash` CLI and the desktop app. It knows nothing of
//! terminals or windows: every operation takes a cancel token and a progress sink and returns a
//! typed result or an [`Error`]. Its folders are its architecture:
//!
//! - [`fetch`]: from a URL to a verified image in the cache: HTTP with retries and resume, the
//!   trust store, digests and checksum files, the cache, decompression. Read `fetch/mod.rs`.
//! - [`sources`]: what can be flashed: a URL or local file, a Talos Image Factory image, a labctl
//!   `talos build`, an IncusOS release, a cidata config image.
//! - [`flash`]: a flash from request to verified drives: the plan, the target rules, the writer,
//!   the streaming pass, the shared read-back, the privileged helper. Read `flash/mod.rs`.
//! - [`io`]: the machine: drives and their identities, mounts and openers, opening devices
//!   (O_DIRECT, O_EXCL, UDisks2). The Linux-only code lives here.
//! - [`verify`]: reading a drive or file back against a digest, without writing.
//! - [`image`]: the image every source prepares and every flash writes.
//! - [`image_kind`]: what an image is from its decoded bytes (a disk, an ISO, or something that
//!   must not be written raw, such as a qcow2 or a tar).

pub mod error;
pub mod fetch;
pub mod flash;
pub mod image;
pub mod image_kind;
pub mod io;
pub mod progress;
pub mod secrets;
pub mod sources;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
pub use tokio_util::sync::CancellationToken;

/// Buffer size for file reads, hashing and decoded output.
pub(crate) const IO_CHUNK: usize = 1 << 20;
