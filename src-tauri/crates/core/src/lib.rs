//! labflash-core: the engine behind the `labflash` CLI and the desktop app. It knows nothing of
//! terminals or windows: every operation takes a cancel token and a progress sink and returns a
//! typed result or an [`Error`].
//!
//! The flow of a fetch, top to bottom, is in [`fetch`]; each step has its own module:
//! [`http`] (retries, timeouts, resume), [`digest`] (SHA-256, sidecars), [`cache`] (layout, locks,
//! atomic files), [`decompress`] (xz, gzip, zstd, raw; bounded). A flash from a URL is one
//! streaming pass through all of them and [`write`]: read [`pipeline`].

pub mod cache;
pub mod cidata;
pub mod decompress;
pub mod device;
pub mod digest;
pub mod drives;
pub mod error;
pub mod factory;
pub mod fetch;
pub mod flash;
pub mod gpt;
pub mod helper;
pub mod http;
pub mod identity;
pub mod incus;
pub mod mounts;
pub mod onestick;
pub mod openers;
pub mod pipeline;
pub mod progress;
mod readback;
pub mod source;
pub mod talos;
pub mod target;
pub mod tls;
pub mod udisks;
pub mod verify;
pub mod write;

pub use error::{Error, ErrorKind, Result};
pub use tokio_util::sync::CancellationToken;

/// Buffer size for file reads, hashing and decoded output.
pub(crate) const IO_CHUNK: usize = 1 << 20;
