//! The seed labctl writes into an IncusOS image: `applications.yaml` and `incus.yaml` in a ustar
//! archive (GilmanLab/platform `tools/labctl/internal/app/incusosimage/seed.go`), with the
//! trusted client certificates taken from the operator's secrets.
//!
//! labctl encodes the two files with go-yaml v4; here every string is written double-quoted with
//! JSON's escapes (valid YAML, and never read as another type), so incus-osd reads the same
//! values, not the same bytes. Each file is then checked with incus-osd's own seed types
//! (`incus_seed`) before anything is downloaded.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{ClientCertificate, IncusSeed, Seed};
use crate::error::{Error, Result};
use crate::secrets::SecretResolver;
use crate::sources::{incus, incus_seed};

/// The archive, and what the operator should know about it. No `Debug`: it holds the
/// certificates.
pub(super) struct SeedArchive {
    pub tar: Vec<u8>,
    pub warnings: Vec<String>,
    /// Each trusted client certificate seeded, by fingerprint: what the operator checks.
    pub certificates: Vec<ClientCertificate>,
}

/// Resolves the certificates, renders both files, checks them as incus-osd reads them, and
/// archives them in labctl's order.
pub(super) fn archive(seed: &Seed, secrets: &dyn SecretResolver) -> Result<SeedArchive> {
    let (incus, certificates) = incus_yaml(&seed.incus, secrets)?;
    let files = vec![
        ("applications.yaml".to_string(), applications_yaml(seed)),
        ("incus.yaml".to_string(), incus),
    ];
    for (name, bytes) in &files {
        incus_seed::check_file(name, bytes)?;
    }
    let names: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
    Ok(SeedArchive {
        tar: incus::seed_archive(&files)?,
        warnings: incus_seed::warnings(&names),
        certificates,
    })
}

fn applications_yaml(seed: &Seed) -> Vec<u8> {
    let apps = &seed.applications;
    let mut out = format!("version: {}\napplications:\n", quoted(&apps.version));
    for app in &apps.applications {
        out.push_str(&format!("  - name: {}\n", quoted(&app.name)));
    }
    out.into_bytes()
}

fn incus_yaml(
    incus: &IncusSeed,
    secrets: &dyn SecretResolver,
) -> Result<(Vec<u8>, Vec<ClientCertificate>)> {
    let mut certificates = Vec::new();
    let mut out = format!(
        "version: {}\napply_defaults: {}\npreseed:\n",
        quoted(&incus.version),
        incus.apply_defaults
    );
    // labctl leaves an empty config out (`omitempty`).
    let config: &BTreeMap<String, String> = &incus.preseed.config;
    if !config.is_empty() {
        out.push_str("  config:\n");
        for (key, value) in config {
            out.push_str(&format!("    {}: {}\n", quoted(key), quoted(value)));
        }
    }
    out.push_str("  certificates:\n");
    for cert in &incus.preseed.certificates {
        let secret_ref = &cert.certificate.secret_ref;
        let pem = secrets.resolve(&secret_ref.path, &secret_ref.pointer)?;
        let (sha256, subject) = check_certificate(pem.expose()).map_err(|why| {
            Error::BadInput(format!(
                "the trusted client certificate {:?} ({}{}) is not a PEM X.509 certificate: {why}; Incus's preseed would fail on first boot",
                cert.name, secret_ref.path, secret_ref.pointer
            ))
        })?;
        out.push_str(&format!(
            "    - name: {}\n      type: {}\n      certificate: {}\n",
            quoted(&cert.name),
            quoted(&cert.kind),
            quoted(pem.expose())
        ));
        certificates.push(ClientCertificate {
            name: cert.name.clone(),
            sha256,
            subject,
        });
    }
    Ok((out.into_bytes(), certificates))
}

/// One PEM `CERTIFICATE` block holding a DER X.509 certificate: its DER's SHA-256 (lowercase
/// hex) and its subject (control characters escaped). The reason never quotes the text.
fn check_certificate(pem: &str) -> std::result::Result<(String, String), String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| "it holds no PEM block".to_string())?;
    if block.label != "CERTIFICATE" {
        return Err(format!("its PEM block is a {}", block.label));
    }
    let cert = block
        .parse_x509()
        .map_err(|_| "its PEM block is not a DER X.509 certificate".to_string())?;
    let subject = cert
        .subject()
        .to_string()
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    Ok((hex::encode(Sha256::digest(&block.contents)), subject))
}

/// `text` as a YAML double-quoted scalar: JSON's escapes for `"` and `\`, and `\uXXXX` for every
/// character YAML does not take as printable or reads as a line break (C0 and C1 controls, DEL,
/// U+2028, U+2029, U+FEFF), so the value read back is `text` exactly.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c < ' '
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_read_back_as_themselves() {
        for text in [
            "incus",
            "123",
            "true",
            "yes",
            "null",
            "~",
            "",
            "a: b",
            "- x",
            "#not a comment",
            "tab\there",
            "quote \" and \\ backslash",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "nel\u{85}ls\u{2028}ps\u{2029}bom\u{feff}del\u{7f}",
            "ünïcødé ✓ 𝄞",
        ] {
            let yaml = format!("k: {}\n", quoted(text));
            let back: BTreeMap<String, String> = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(back["k"], text, "{yaml}");
        }
    }
}
