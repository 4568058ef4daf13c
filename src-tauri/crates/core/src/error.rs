//! The engine's one error type. Front ends map `Error::kind()` to their own conventions (the CLI's
//! exit codes); the message of every variant is a complete sentence naming the cause.

use std::path::PathBuf;

mod cert;

pub use cert::CertProblem;

/// What sort of failure this is, for front ends deciding exit codes and wording.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// A digest did not match: the bytes are not the ones that were published.
    DigestMismatch,
    /// The caller's input was unusable (bad value, over a limit the caller set).
    BadInput,
    /// The operation was cancelled through its cancel token.
    Cancelled,
    /// Anything else: network, I/O, the publisher's data.
    Failure,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {what} does not match its expected SHA-256: expected {expected}, got {actual}")]
    DigestMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },

    /// A download that does not match the SHA-512 its `.sha512` file gives.
    #[error("the download does not match the SHA-512 its .sha512 file gives: expected {expected}, got {actual}")]
    Sha512Mismatch { expected: String, actual: String },

    /// A publisher's signature that does not verify: like a digest that does not match, the
    /// bytes are not vouched for by the one who publishes them.
    #[error("the signature of {what} does not hold: {reason}")]
    BadSignature { what: String, reason: String },

    #[error("{0}")]
    BadInput(String),

    #[error("refusing to write to {target}: {reason}")]
    Refused { target: String, reason: String },

    #[error("permission denied for {target}: {detail}")]
    Permission { target: String, detail: String },

    #[error("no access to {target}: it cannot be opened directly and UDisks2 is not running")]
    NoAccess { target: String },

    #[error("{target} does not hold the image: read back SHA-256 {actual}, expected {expected}; the first difference is in MiB {first_bad_mib}")]
    ReadBackMismatch {
        target: String,
        expected: String,
        actual: String,
        first_bad_mib: u64,
    },

    #[error("the checksum file {url} is empty")]
    SidecarEmpty { url: String },

    #[error("the checksum file {url} has no digest on its first line")]
    SidecarNoDigest { url: String },

    #[error("the checksum file {url} starts with {token:?}, which is not a 64-digit hex SHA-256")]
    SidecarMalformed { url: String, token: String },

    #[error("the checksum file {url} starts with {token:?}, which is not a 128-digit hex SHA-512")]
    Sha512Malformed { url: String, token: String },

    #[error("the checksum file {url} is of the file {named:?}, not of {asset:?}")]
    ChecksumOfAnotherFile {
        url: String,
        named: String,
        asset: String,
    },

    /// `why` is one clause: what the server answered instead of a checksum.
    #[error("{url} has no published checksum: {why}")]
    NoExpectedDigest { url: String, why: String },

    #[error("{url} does not exist (the server answers HTTP 404 Not Found)")]
    NotFound { url: String },

    /// `sent`: whether the request carried credentials (see
    /// [`crate::fetch::http::Http::with_credentials`]).
    #[error("{url} answered HTTP {status}: {}", if *sent { "it refused the credentials" } else { "it wants credentials" })]
    Unauthorized {
        url: String,
        status: u16,
        sent: bool,
    },

    /// A 401 or 403 from an Image Factory, from any of its routes.
    #[error("the Image Factory {} (HTTP {status})", if *sent { "refused the credentials" } else { "wants credentials" })]
    FactoryUnauthorized { status: u16, sent: bool },

    #[error("{url} answered HTTP {status}{}", reason.map(|r| format!(" {r}")).unwrap_or_default())]
    HttpStatus {
        url: String,
        status: u16,
        reason: Option<&'static str>,
    },

    #[error("could not download {url}: {detail}")]
    Network { url: String, detail: String },

    #[error("could not download {url}: {problem}")]
    Certificate { url: String, problem: CertProblem },

    #[error("{from} redirected to {to}: labflash does not follow a redirect from https to plain http (whoever is on the plain-HTTP path could choose the image and its digest)")]
    InsecureRedirect { from: String, to: String },

    #[error("{url} sent nothing for {secs} s while {during}")]
    Timeout {
        url: String,
        secs: u64,
        during: &'static str,
    },

    #[error("the image is larger than the limit of {limit} bytes ({}); raise the limit (--max-image-size; in the app, Settings: Largest image accepted) if this image is expected to be that large", crate::io::drives::human_size(*limit))]
    ImageTooLarge { limit: u64 },

    #[error("the download is larger than {cap} bytes ({}), more than any archive of an image within the size limit can be; raise the limit (--max-image-size; in the app, Settings: Largest image accepted) if this image is expected to be that large", crate::io::drives::human_size(*cap))]
    ArchiveTooLarge { cap: u64 },

    #[error("the {format} archive {path} cannot be decompressed: {detail}")]
    Corrupt {
        format: &'static str,
        path: PathBuf,
        detail: String,
    },

    /// A cache folder another user could change, or a link where the cache expects a file or
    /// folder: refused, never followed.
    #[error("labflash refuses {} as part of its cache: {why}", path.display())]
    UnsafeCache { path: PathBuf, why: String },

    /// A `secretRef` path labflash will not read: empty, absolute, with `..` or `\`, or no
    /// such file in the secrets checkout.
    #[error("the secret path {path:?} {why}")]
    SecretPath { path: String, why: String },

    /// A `secretRef` pointer that selects no string. `why` never quotes a value.
    #[error("the secret pointer {pointer:?} in {path} {why}")]
    SecretPointer {
        path: String,
        pointer: String,
        why: String,
    },

    /// A `secretRef` pointer that selects a value the document's sops rules leave unencrypted.
    #[error("the value at {pointer:?} is stored in plain text in {path}: labflash reads only encrypted values")]
    SecretPlaintext { path: String, pointer: String },

    /// A document that is not SOPS-encrypted YAML labflash reads. `why` never quotes a value.
    #[error("{path} is not a SOPS document labflash can read: {why}")]
    SopsDocument { path: String, why: String },

    /// No age identity anywhere labflash looked (`looked` names those places, never a key).
    #[error("no age key to decrypt {path}: labflash looked in {looked}")]
    NoAgeKey { path: String, looked: String },

    /// An age key source that cannot be read as age identities (`why` names the line, never
    /// its text).
    #[error("the age keys in {source_name} cannot be used: {why}")]
    AgeKeySource { source_name: String, why: String },

    /// Age keys were found, but none is a recipient of the document's data key.
    #[error("the age keys found ({count}) do not decrypt {path}: its data key is encrypted for {recipients}")]
    AgeKeyMismatch {
        path: String,
        count: usize,
        recipients: String,
    },

    /// A value's GCM tag or the document's MAC does not hold: the document was changed after
    /// SOPS encrypted it.
    #[error("{path} is not what SOPS encrypted: {why}; refusing its secrets")]
    SopsTampered { path: String, why: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An error that happened upstream of a target (the image failed its digest, the download
    /// broke), as each target reports it.
    #[error("{message}")]
    Upstream { kind: ErrorKind, message: String },

    #[error("cancelled")]
    Cancelled,

    /// The writer's word that no target is left to write to (each failed); never reported as
    /// such: the flash reports [`Error::EveryTargetFailed`] with their own errors.
    #[error("no target is left to write to")]
    NoTargetLeft,

    #[error("every target failed: {}", targets.iter().map(|t| format!("{}: {}", t.path, t.error)).collect::<Vec<_>>().join("; "))]
    EveryTargetFailed { targets: Vec<TargetFailure> },
}

/// One target's failure, as [`Error::EveryTargetFailed`] names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetFailure {
    pub path: String,
    pub error: String,
    pub kind: Option<ErrorKind>,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::DigestMismatch { .. }
            | Error::ReadBackMismatch { .. }
            | Error::Sha512Mismatch { .. }
            | Error::ChecksumOfAnotherFile { .. }
            | Error::BadSignature { .. } => ErrorKind::DigestMismatch,
            // Exit 1, not 2: like a signature that does not hold, the bytes are not the ones
            // their author sealed. The path, pointer and key were right (the data key opened);
            // what is wrong is the document, and only a fresh copy from its author fixes it.
            Error::SopsTampered { .. } => ErrorKind::DigestMismatch,
            Error::SecretPath { .. }
            | Error::SecretPointer { .. }
            | Error::SecretPlaintext { .. }
            | Error::SopsDocument { .. }
            | Error::NoAgeKey { .. }
            | Error::AgeKeySource { .. }
            | Error::AgeKeyMismatch { .. } => ErrorKind::BadInput,
            Error::BadInput(_)
            | Error::Refused { .. }
            | Error::UnsafeCache { .. }
            | Error::ImageTooLarge { .. }
            | Error::ArchiveTooLarge { .. } => ErrorKind::BadInput,
            Error::Cancelled => ErrorKind::Cancelled,
            // The most telling of the targets' kinds: a mismatch, else bad input if all were.
            Error::EveryTargetFailed { targets } => {
                let kinds: Vec<ErrorKind> = targets.iter().filter_map(|t| t.kind).collect();
                if kinds.contains(&ErrorKind::DigestMismatch) {
                    ErrorKind::DigestMismatch
                } else if !kinds.is_empty() && kinds.iter().all(|k| *k == ErrorKind::BadInput) {
                    ErrorKind::BadInput
                } else {
                    ErrorKind::Failure
                }
            }
            Error::Upstream { kind, .. } => *kind,
            _ => ErrorKind::Failure,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Closure-friendly `Error::io` for `map_err`.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Carries an engine error through an `io::Read` (a decoder reading a verified stream), so the
/// reader's caller gets it back with [`from_io`] and its kind intact.
pub(crate) fn into_io(error: Error) -> std::io::Error {
    std::io::Error::other(error)
}

/// Whether `e` carries an engine error.
pub(crate) fn wraps(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Error>())
}

/// The engine error `e` carries, if it carries one.
pub(crate) fn carried(e: std::io::Error) -> Option<Error> {
    if !wraps(&e) {
        return None;
    }
    e.into_inner()?.downcast::<Error>().ok().map(|error| *error)
}

/// The engine error `e` carries, else an I/O error on `path`.
pub(crate) fn from_io(path: &std::path::Path, e: std::io::Error) -> Error {
    if wraps(&e) {
        return carried(e).expect("checked by wraps");
    }
    Error::io(path, e)
}
