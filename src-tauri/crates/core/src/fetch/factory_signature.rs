//! An Enterprise Image Factory's signature of an asset: `<asset>.sigstore.json`, a Sigstore
//! bundle signed with the factory's key (see `sigstore_bundle`), checked against that key (see
//! `factory_key`) before any byte of the asset is downloaded. A bundle that holds becomes the
//! expected digest: the download must then hash to the very SHA-256 the factory signed, which is
//! what upstream's own check is (`internal/integration/asset_signature_test.go`: `cosign
//! verify-blob --key signing-key.pub --bundle … --insecure-ignore-tlog` over the asset's bytes as
//! downloaded; key-signed bundles carry no transparency-log entry).
//!
//! Which key: the operator's `--factory-key` file, else the one pinned for the factory's origin,
//! else the one the factory serves, pinned once the download matched what it signed (trust on
//! first use). A served key that differs from the pinned one is refused until the operator says
//! which is right. Once a key is pinned or given, a signature made with it is required.

use std::path::PathBuf;

use url::Url;

use crate::error::{Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::credentials;
use crate::fetch::digest::Sha256Digest;
use crate::fetch::factory_key::{self, FactoryKey};
use crate::fetch::http::Http;
use crate::fetch::sigstore_bundle::{self, Bundle};
use crate::CancellationToken;

/// What a factory's asset signatures are checked with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactoryTrust {
    /// The factory's address, credentials taken out: its key is pinned by this origin.
    pub factory: Url,
    /// `<factory>/oci/cosign/signing-key.pub`.
    pub key_url: Url,
    /// The operator's PEM key file: used instead of the pin; the factory's key is not fetched.
    pub given_key: Option<PathBuf>,
}

/// Where the key that verified a signature came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyTrust {
    /// The operator's `--factory-key` file.
    Given,
    /// The key pinned for this factory earlier, which the factory still serves.
    Pinned,
    /// The factory's key, first seen now and pinned: compare its fingerprint with the factory's.
    PinnedNow,
}

/// A factory signature that held.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FactorySignature {
    /// `sha256:<hex>` of the key's PKIX DER.
    pub key_fingerprint: String,
    pub key: KeyTrust,
    /// The file the factory's key is pinned in (absent for a given key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
}

impl FactorySignature {
    /// Who signed, for people: "the factory key sha256:…".
    pub fn signer(&self) -> String {
        format!("the factory key {}", self.key_fingerprint)
    }

    /// What the operator should know: a key pinned now is trusted because it was first.
    pub fn warning(&self) -> Option<String> {
        (self.key == KeyTrust::PinnedNow).then(|| {
            format!(
                "the factory's signing key {} was seen for the first time and pinned{}: compare it with the key the factory's operator publishes",
                self.key_fingerprint,
                self.pin_file
                    .as_ref()
                    .map(|p| format!(" in {}", p.display()))
                    .unwrap_or_default()
            )
        })
    }
}

/// What `<asset>.sigstore.json` settled.
pub enum Checked {
    /// The factory signed the asset with its key: the download must hash to `digest`.
    Signed {
        digest: Sha256Digest,
        signature: FactorySignature,
        /// A key seen for the first time: pinned only once the download matched `digest`.
        pin: Option<Box<PendingPin>>,
    },
    /// The factory signs keyless, and no key is pinned or given for it: labflash cannot check
    /// that offline and did not.
    Keyless,
    /// The factory serves no signature (a community build answers 402; before v1.1.0, 400), and
    /// no key is pinned or given for it.
    NotServed(u16),
}

/// A factory key first seen on this run, to be pinned once what it signed was downloaded whole
/// and matched: a run that fails pins nothing.
#[derive(Clone, Debug)]
pub struct PendingPin {
    path: PathBuf,
    key: FactoryKey,
    /// The asset, as it may be shown.
    asset: String,
}

impl PendingPin {
    /// Pins the key (see [`factory_key::pin`]); another key pinned meanwhile (by another run) is
    /// kept and this run refused.
    pub fn commit(&self, cache: &Cache) -> Result<()> {
        match factory_key::pin(cache, &self.path, &self.key)? {
            None => Ok(()),
            Some(there) => Err(Error::BadSignature {
                what: self.asset.clone(),
                reason: format!(
                    "it was signed with the key {}, but another run pinned the key {} for the factory meanwhile in {}; run again to check it against the pinned key",
                    self.key.fingerprint(),
                    there.fingerprint(),
                    self.path.display()
                ),
            }),
        }
    }
}

/// The key the operator gave, or the one pinned for the factory, known before anything is asked
/// of the factory.
enum Known {
    Given(FactoryKey),
    Pinned(FactoryKey, PathBuf),
    Unseen(PathBuf),
}

impl Known {
    /// Why a signature is required, when one is.
    fn requirement(&self) -> Option<String> {
        match self {
            Known::Given(_) => Some("a key was given with --factory-key".into()),
            Known::Pinned(key, path) => Some(format!(
                "the factory signed with the key {} before (pinned in {})",
                key.fingerprint(),
                path.display()
            )),
            Known::Unseen(_) => None,
        }
    }
}

/// Fetches and checks the signature of the asset at `asset`. Once a key is given or pinned for
/// the factory, a signature made with it is required: a bundle not served, keyless or unreadable
/// is refused, never replaced by a checksum file.
pub async fn check(
    http: &Http,
    cache: &Cache,
    trust: &FactoryTrust,
    asset: &Url,
    cancel: &CancellationToken,
) -> Result<Checked> {
    // The operator's key file is read (and refused as bad input) before any request.
    let known = match &trust.given_key {
        Some(path) => Known::Given(FactoryKey::from_file(path)?),
        None => {
            let path = factory_key::pin_path(cache, &trust.factory);
            match factory_key::pinned(cache, &path)? {
                Some(key) => Known::Pinned(key, path),
                None => Known::Unseen(path),
            }
        }
    };
    let bundle_url = super::with_suffix(asset, ".sigstore.json");
    let shown = credentials::redact(asset).to_string();
    let refuse = |reason: String| Error::BadSignature {
        what: shown.clone(),
        reason,
    };
    let text = match super::published(http, &bundle_url, cancel).await? {
        Ok(text) => text,
        Err(status) => {
            return match known.requirement() {
                None => Ok(Checked::NotServed(status)),
                Some(why) => Err(refuse(format!(
                    "the factory serves no signature of it ({}: HTTP {status}), though {why}, and a checksum file is not taken in its place",
                    credentials::redact(&bundle_url)
                ))),
            }
        }
    };
    let signed = match sigstore_bundle::parse(&text) {
        Ok(Bundle::Key(signed)) => signed,
        Ok(Bundle::Keyless) => {
            return match known.requirement() {
                None => Ok(Checked::Keyless),
                Some(why) => Err(refuse(format!(
                    "its bundle {} is signed keyless (with a certificate), though {why}, and labflash cannot check a keyless signature",
                    credentials::redact(&bundle_url)
                ))),
            }
        }
        Err(why) => {
            return Err(refuse(format!(
                "its bundle {} cannot be read: {why}",
                credentials::redact(&bundle_url)
            )))
        }
    };
    let (key, how, pin_file) = settle_key(http, known, trust, cancel, &refuse).await?;
    let signature = FactorySignature {
        key_fingerprint: key.fingerprint(),
        key: how,
        pin_file,
    };
    if let Some(hint) = signed.hint.filter(|h| h != key.der_sha256()) {
        return Err(refuse(format!(
            "it was signed with the key {}, not with {}{}",
            factory_key::fingerprint_of(&hint),
            signature.signer(),
            given_hint(how)
        )));
    }
    if !key.verifies(&signed.digest, &signed.signature) {
        return Err(refuse(format!(
            "its bundle's signature is not {}'s signature of the SHA-256 {}{}",
            signature.signer(),
            signed.digest,
            given_hint(how)
        )));
    }
    // Pinned only once the download matched what it signed (see `PendingPin`).
    let pin = (how == KeyTrust::PinnedNow).then(|| {
        Box::new(PendingPin {
            path: signature
                .pin_file
                .clone()
                .expect("a key pinned now has its file"),
            key,
            asset: shown.clone(),
        })
    });
    Ok(Checked::Signed {
        digest: signed.digest,
        signature,
        pin,
    })
}

fn given_hint(how: KeyTrust) -> &'static str {
    match how {
        KeyTrust::Given => " (the key given with --factory-key)",
        KeyTrust::Pinned | KeyTrust::PinnedNow => "",
    }
}

/// The key to verify with, how it is trusted, and where it is (or will be) pinned.
async fn settle_key(
    http: &Http,
    known: Known,
    trust: &FactoryTrust,
    cancel: &CancellationToken,
    refuse: &impl Fn(String) -> Error,
) -> Result<(FactoryKey, KeyTrust, Option<PathBuf>)> {
    let (pinned, path) = match known {
        Known::Given(key) => return Ok((key, KeyTrust::Given, None)),
        Known::Pinned(key, path) => (Some(key), path),
        Known::Unseen(path) => (None, path),
    };
    let served_text = http.get_text_direct(&trust.key_url, cancel).await?;
    let key_url = credentials::redact(&trust.key_url);
    let served = FactoryKey::from_pem(&served_text)
        .map_err(|why| refuse(format!("the factory's key {key_url} cannot be used: {why}")))?;
    match pinned {
        None => Ok((served, KeyTrust::PinnedNow, Some(path))),
        Some(pinned) if pinned.der_sha256() == served.der_sha256() => {
            Ok((pinned, KeyTrust::Pinned, Some(path)))
        }
        Some(pinned) => Err(refuse(format!(
            "the factory now serves the key {} at {key_url}, not the key {} pinned for it in {}; if the factory's key was changed on purpose, give the new key with --factory-key FILE or remove {} to pin it anew",
            served.fingerprint(),
            pinned.fingerprint(),
            path.display(),
            path.display()
        ))),
    }
}
