//! IncusOS's signed index, `index.sjson`, verified as incus-osd verifies it: the publisher signs
//! `index.json` with `openssl smime -text -sign` (a multipart/signed S/MIME message: the text
//! part, then a detached CMS signature carrying the signer's certificate and the "Update E1"
//! intermediate), and incus-osd runs `openssl smime -verify -text -CAfile <root>`
//! (lxc/incus-os incus-osd/internal/util/ssl.go, `VerifySMIME`) against the "Root E1" it embeds
//! (incus-osd/certs/files/root-E1.crt, pinned here as `trust/incus-root-E1.crt`).
//!
//! What is checked, as OpenSSL's S/MIME verification checks it: the message digest in the signed
//! attributes is the digest of the text part (its lines ending in CRLF, as S/MIME signs them);
//! the signer's ECDSA signature over those attributes; a chain from the signer's certificate
//! through certificates the message carries to the pinned root, each signature verified, each
//! certificate valid now, each issuer a CA; the signer's key usage and extended key usage, where
//! present, allow S/MIME signing. Only ECDSA (P-256, P-384 with SHA-256, SHA-384) is accepted:
//! what the IncusOS keys are.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::Digest as _;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;
use x509_parser::time::ASN1Time;

use crate::error::{Error, Result};

/// The root IncusOS's publisher signs under ("Incus OS - Root E1", Linux Containers), from
/// lxc/incus-os incus-osd/certs/files/root-E1.crt.
pub const INCUS_ROOT: &[u8] = include_bytes!("trust/incus-root-E1.crt");

/// A verified message: the text the publisher signed (its MIME header gone) and who signed it.
#[derive(Debug)]
pub struct Signed {
    pub content: Vec<u8>,
    /// The signer certificate's subject, as `CN=…, O=…`.
    pub signer: String,
}

/// Verifies the S/MIME message `message` against the root certificate `root_pem` at `now`.
pub fn verify(message: &[u8], root_pem: &[u8], now: SystemTime) -> Result<Signed> {
    let root_der = pem_der(root_pem, "CERTIFICATE")
        .ok_or_else(|| Error::BadInput("the trusted root is not a PEM certificate".into()))?;
    let (_, root) = X509Certificate::from_der(&root_der)
        .map_err(|e| Error::BadInput(format!("the trusted root cannot be read: {e}")))?;
    let (text_part, signature) = split_multipart(message)?;
    let signed_bytes = canonical(text_part);
    let content = text_content(&signed_bytes)?;
    let cms = pem_der(
        &[
            b"-----BEGIN PKCS7-----\n".as_slice(),
            signature,
            b"\n-----END PKCS7-----\n",
        ]
        .concat(),
        "PKCS7",
    )
    .ok_or_else(|| refused("its signature part is not base64"))?;
    let signed_data = SignedData::parse(&cms)?;
    let certs = signed_data
        .certificates
        .iter()
        .map(|der| X509Certificate::from_der(der).map(|(_, c)| c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| refused(&format!("a certificate in it cannot be read: {e}")))?;
    let signer_info = &signed_data.signer;
    let signer = certs
        .iter()
        .find(|c| c.issuer().as_raw() == signer_info.issuer && c.raw_serial() == signer_info.serial)
        .ok_or_else(|| refused("it does not carry its signer's certificate"))?;

    let digest = Hash::of_oid(&signer_info.digest_algorithm)?.digest(&signed_bytes);
    if signer_info.message_digest.as_deref() != Some(digest.as_slice()) {
        return Err(refused(
            "the index does not match its signature (it was changed after it was signed)",
        ));
    }
    verify_signature(
        signer.public_key(),
        Hash::of_oid(&signer_info.digest_algorithm)?,
        &signer_info.signed_attrs_der,
        &signer_info.signature,
    )
    .map_err(|_| refused("its signature is not the signer's"))?;
    check_signer_use(signer)?;
    let at =
        ASN1Time::from_timestamp(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64)
            .map_err(|e| refused(&format!("the time now: {e}")))?;
    chain_to_root(signer, &certs, &root, at)?;
    Ok(Signed {
        content,
        signer: signer.subject().to_string(),
    })
}

/// The subject of the PEM root certificate `pem` (`CN=…, O=…`): whether a chosen trust root can
/// be one.
pub fn root_subject(pem: &[u8]) -> Result<String> {
    let der = pem_der(pem, "CERTIFICATE")
        .ok_or_else(|| Error::BadInput("it is not a PEM certificate".into()))?;
    let (_, root) = X509Certificate::from_der(&der)
        .map_err(|e| Error::BadInput(format!("its certificate cannot be read: {e}")))?;
    Ok(root.subject().to_string())
}

fn refused(why: &str) -> Error {
    Error::BadSignature {
        what: "the IncusOS index".into(),
        reason: why.into(),
    }
}

/// The DER inside the first PEM block labelled `label`.
fn pem_der(pem: &[u8], label: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(|p| p.ok())
        .find(|p| p.label == label)
        .map(|p| p.contents)
}

/// The signed text part (as it stands between the boundaries) and the signature part's base64
/// body, from a `multipart/signed` message.
fn split_multipart(message: &[u8]) -> Result<(&[u8], &[u8])> {
    let text = std::str::from_utf8(message).map_err(|_| refused("it is not text"))?;
    let (head, body) = split_header(text).ok_or_else(|| refused("it has no MIME header"))?;
    let content_type = header_value(head, "content-type")
        .filter(|v| v.to_ascii_lowercase().starts_with("multipart/signed"))
        .ok_or_else(|| refused("it is not a multipart/signed S/MIME message"))?;
    let boundary = parameter(content_type, "boundary")
        .ok_or_else(|| refused("its multipart header names no boundary"))?;
    let delimiter = format!("--{boundary}");
    // Parts start after a delimiter line; the line break before the next delimiter is the
    // delimiter's (RFC 2046 5.1.1).
    let mut parts = Vec::new();
    let mut rest = body;
    let mut at = rest
        .find(&delimiter)
        .ok_or_else(|| refused("its first part is missing"))?;
    loop {
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with("--") {
            break;
        }
        rest = rest
            .strip_prefix("\r\n")
            .or_else(|| rest.strip_prefix('\n'))
            .ok_or_else(|| refused("a part boundary is malformed"))?;
        at = rest
            .find(&format!("\n{delimiter}"))
            .ok_or_else(|| refused("a part does not end"))?;
        let part = rest[..at].strip_suffix('\r').unwrap_or(&rest[..at]);
        parts.push(part);
        at += 1;
    }
    let [signed, signature] = parts[..] else {
        return Err(refused("it does not have exactly two parts"));
    };
    let (sig_head, sig_body) =
        split_header(signature).ok_or_else(|| refused("its signature part has no header"))?;
    let pkcs7 = header_value(sig_head, "content-type").is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        v.starts_with("application/x-pkcs7-signature")
            || v.starts_with("application/pkcs7-signature")
    });
    if !pkcs7 {
        return Err(refused("its second part is not a PKCS #7 signature"));
    }
    Ok((signed.as_bytes(), sig_body.as_bytes()))
}

/// A MIME header block and what follows its blank line.
fn split_header(text: &str) -> Option<(&str, &str)> {
    let lf = text.find("\n\n").map(|i| (i, 2));
    let crlf = text.find("\r\n\r\n").map(|i| (i, 4));
    let (i, n) = match (lf, crlf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some((&text[..i], &text[i + n..]))
}

/// The value of header `name` (case-insensitive), its continuation lines joined.
fn header_value(head: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                v.push_str(line.trim());
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                value = Some(v.trim().to_string());
            }
        }
    }
    value
}

/// A parameter of a header value (`boundary="…"`), unquoted.
fn parameter(value: String, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The part as S/MIME signs it (OpenSSL's `SMIME_crlf_copy`): every line's trailing CRs and LFs
/// gone, and a line that ended in LF ending in CRLF.
fn canonical(part: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(part.len() + part.len() / 32);
    for line in part.split_inclusive(|b| *b == b'\n') {
        let ended = line.ends_with(b"\n");
        let end = line
            .iter()
            .rposition(|b| *b != b'\r' && *b != b'\n')
            .map_or(0, |i| i + 1);
        out.extend_from_slice(&line[..end]);
        if ended {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The signed text's content, from the signed bytes themselves: what follows its header, which
/// must say `text/plain` (`openssl smime -verify -text` requires it and removes it).
fn text_content(signed: &[u8]) -> Result<Vec<u8>> {
    let end = signed
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| refused("its signed part has no header"))?;
    let head = String::from_utf8_lossy(&signed[..end]);
    let plain = header_value(&head, "content-type")
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/plain"));
    if !plain {
        return Err(refused("its signed part is not text/plain"));
    }
    Ok(signed[end + 4..].to_vec())
}

/// The parts of a CMS SignedData (RFC 5652) this needs, from its DER.
struct SignedData {
    certificates: Vec<Vec<u8>>,
    signer: SignerInfo,
}

struct SignerInfo {
    issuer: Vec<u8>,
    serial: Vec<u8>,
    digest_algorithm: String,
    /// The signed attributes as signed: re-tagged as a SET (RFC 5652 5.4).
    signed_attrs_der: Vec<u8>,
    message_digest: Option<Vec<u8>>,
    signature: Vec<u8>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const CONTEXT_0: u8 = 0xA0;
const CONTEXT_1: u8 = 0xA1;

impl SignedData {
    fn parse(der: &[u8]) -> Result<SignedData> {
        let bad = || refused("its CMS signature is malformed");
        let content_info = Der::one(der, SEQUENCE).ok_or_else(bad)?;
        let mut ci = content_info.children();
        let kind = ci.next_tagged(OID).ok_or_else(bad)?;
        if oid_text(kind.content) != "1.2.840.113549.1.7.2" {
            return Err(refused("it is not a CMS SignedData"));
        }
        let explicit = ci.next_tagged(CONTEXT_0).ok_or_else(bad)?;
        let signed = Der::one(explicit.content, SEQUENCE).ok_or_else(bad)?;
        let mut sd = signed.children();
        sd.next_tagged(INTEGER).ok_or_else(bad)?;
        sd.next_tagged(SET).ok_or_else(bad)?;
        let encap = sd.next_tagged(SEQUENCE).ok_or_else(bad)?;
        if encap.children().nth(1).is_some() {
            return Err(refused(
                "its signature carries the content (expected a detached one)",
            ));
        }
        let mut certificates = Vec::new();
        let mut next = sd.next().ok_or_else(bad)?;
        if next.tag == CONTEXT_0 {
            certificates = next
                .children()
                .filter(|c| c.tag == SEQUENCE)
                .map(|c| c.whole.to_vec())
                .collect();
            next = sd.next().ok_or_else(bad)?;
        }
        if next.tag == CONTEXT_1 {
            next = sd.next().ok_or_else(bad)?;
        }
        if next.tag != SET {
            return Err(bad());
        }
        let mut signers = next.children();
        let first = signers.next().ok_or_else(|| refused("it has no signer"))?;
        if signers.next().is_some() {
            return Err(refused("it has more than one signer"));
        }
        Ok(SignedData {
            certificates,
            signer: SignerInfo::parse(first).ok_or_else(bad)?,
        })
    }
}

impl SignerInfo {
    fn parse(info: Der) -> Option<SignerInfo> {
        let mut fields = info.children();
        fields.next_tagged(INTEGER)?;
        // Identified by issuer and serial number (what openssl writes).
        let sid = fields.next_tagged(SEQUENCE)?;
        let mut sid = sid.children();
        let issuer = sid.next_tagged(SEQUENCE)?.whole.to_vec();
        let serial = sid.next_tagged(INTEGER)?.content.to_vec();
        let digest_algorithm = oid_text(
            fields
                .next_tagged(SEQUENCE)?
                .children()
                .next_tagged(OID)?
                .content,
        );
        let attrs = fields.next_tagged(CONTEXT_0)?;
        let mut signed_attrs_der = attrs.whole.to_vec();
        signed_attrs_der[0] = SET;
        let message_digest = attrs.children().find_map(|attr| {
            let mut a = attr.children();
            let kind = a.next_tagged(OID)?;
            (oid_text(kind.content) == "1.2.840.113549.1.9.4")
                .then(|| {
                    Some(
                        a.next_tagged(SET)?
                            .children()
                            .next_tagged(OCTET_STRING)?
                            .content
                            .to_vec(),
                    )
                })
                .flatten()
        });
        fields.next_tagged(SEQUENCE)?;
        let signature = fields.next_tagged(OCTET_STRING)?.content.to_vec();
        Some(SignerInfo {
            issuer,
            serial,
            digest_algorithm,
            signed_attrs_der,
            message_digest,
            signature,
        })
    }
}

/// One DER element: its tag, its content, and all of its bytes.
#[derive(Clone, Copy)]
struct Der<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

impl<'a> Der<'a> {
    /// The element at the start of `bytes` (definite lengths only, as DER has).
    fn read(bytes: &'a [u8]) -> Option<(Der<'a>, &'a [u8])> {
        let tag = *bytes.first()?;
        let first = *bytes.get(1)?;
        let (len, head) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return None;
            }
            let len = bytes
                .get(2..2 + n)?
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        let end = head.checked_add(len)?;
        let whole = bytes.get(..end)?;
        Some((
            Der {
                tag,
                content: &whole[head..],
                whole,
            },
            &bytes[end..],
        ))
    }

    /// The element `bytes` holds, if it is all of it and tagged `tag`.
    fn one(bytes: &'a [u8], tag: u8) -> Option<Der<'a>> {
        let (der, rest) = Der::read(bytes)?;
        (der.tag == tag && rest.is_empty()).then_some(der)
    }

    fn children(&self) -> Children<'a> {
        Children { rest: self.content }
    }
}

struct Children<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Children<'a> {
    type Item = Der<'a>;
    fn next(&mut self) -> Option<Der<'a>> {
        let (der, rest) = Der::read(self.rest)?;
        self.rest = rest;
        Some(der)
    }
}

impl<'a> Children<'a> {
    fn next_tagged(&mut self, tag: u8) -> Option<Der<'a>> {
        self.next().filter(|d| d.tag == tag)
    }
}

/// An OID's content bytes as dotted text.
fn oid_text(content: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for b in content {
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    fn of_oid(oid: &str) -> Result<Hash> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Ok(Hash::Sha256),
            "2.16.840.1.101.3.4.2.2" => Ok(Hash::Sha384),
            other => Err(refused(&format!(
                "its digest algorithm {other} is not SHA-256 or SHA-384"
            ))),
        }
    }

    /// The hash an ECDSA signature algorithm names.
    fn of_signature_oid(oid: &str) -> Option<Hash> {
        match oid {
            "1.2.840.10045.4.3.2" => Some(Hash::Sha256),
            "1.2.840.10045.4.3.3" => Some(Hash::Sha384),
            _ => None,
        }
    }

    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(bytes).to_vec(),
        }
    }
}

/// Verifies an ECDSA signature (ASN.1 form) by the key `spki` over `message` hashed with `hash`.
fn verify_signature(
    spki: &x509_parser::x509::SubjectPublicKeyInfo,
    hash: Hash,
    message: &[u8],
    signature: &[u8],
) -> std::result::Result<(), ()> {
    use ring::signature as sig;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let algorithm: &dyn sig::VerificationAlgorithm = match (curve.as_deref(), hash) {
        (Some("1.2.840.10045.3.1.7"), Hash::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
        (Some("1.2.840.10045.3.1.7"), Hash::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
        (Some("1.3.132.0.34"), Hash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (Some("1.3.132.0.34"), Hash::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
        _ => return Err(()),
    };
    sig::UnparsedPublicKey::new(algorithm, &spki.subject_public_key.data)
        .verify(message, signature)
        .map_err(|_| ())
}

/// OpenSSL's S/MIME signing purpose for the signer: a key usage, where given, allows signatures.
fn check_signer_use(signer: &X509Certificate) -> Result<()> {
    let usage = signer
        .key_usage()
        .map_err(|_| refused("its signer's key usage cannot be read"))?;
    if usage.is_some_and(|u| !u.value.digital_signature() && !u.value.non_repudiation()) {
        return Err(refused("its signer's certificate may not sign"));
    }
    Ok(())
}

/// What OpenSSL asks of every certificate of an S/MIME chain: an extended key usage, where given,
/// names e-mail protection ("any" is not enough for S/MIME), and no critical extension it does
/// not know.
fn check_purpose(cert: &X509Certificate) -> Result<()> {
    let extended = cert.extended_key_usage().map_err(|_| {
        refused(&format!(
            "the extended key usage of {} cannot be read",
            cert.subject()
        ))
    })?;
    if extended.is_some_and(|e| !e.value.email_protection) {
        return Err(refused(&format!(
            "the certificate of {} is not for S/MIME signing",
            cert.subject()
        )));
    }
    let unknown = cert.extensions().iter().find(|e| {
        e.critical && (e.parsed_extension().unsupported() || e.parsed_extension().error().is_some())
    });
    if let Some(extension) = unknown {
        return Err(refused(&format!(
            "the certificate of {} has a critical extension {} that is not understood",
            cert.subject(),
            extension.oid.to_id_string()
        )));
    }
    Ok(())
}

/// From `signer` through `certs` to `root`: each certificate valid at `at` and signed by the next,
/// each issuer a CA, ending in a certificate the pinned root signed.
fn chain_to_root(
    signer: &X509Certificate,
    certs: &[X509Certificate],
    root: &X509Certificate,
    at: ASN1Time,
) -> Result<()> {
    let mut current = signer;
    // How many CAs stand between the signer and the next issuer (its path length).
    for below in 0..8 {
        if !current.validity().is_valid_at(at) {
            return Err(refused(&format!(
                "the certificate of {} is not valid now",
                current.subject()
            )));
        }
        check_purpose(current)?;
        if current.issuer().as_raw() == root.subject().as_raw() && signed_by(current, root) {
            check_purpose(root)?;
            return check_issuer(root, below, at);
        }
        let issuer = certs
            .iter()
            .filter(|c| !std::ptr::eq(*c, current))
            .find(|c| c.subject().as_raw() == current.issuer().as_raw() && signed_by(current, c))
            .ok_or_else(|| {
                refused(&format!(
                    "{} was not signed by the trusted root ({}) or a certificate it carries",
                    current.subject(),
                    root.subject()
                ))
            })?;
        check_issuer(issuer, below, at)?;
        current = issuer;
    }
    Err(refused("its certificate chain is too long"))
}

fn signed_by(cert: &X509Certificate, issuer: &X509Certificate) -> bool {
    let Some(hash) = Hash::of_signature_oid(&cert.signature_algorithm.algorithm.to_id_string())
    else {
        return false;
    };
    verify_signature(
        issuer.public_key(),
        hash,
        cert.tbs_certificate.as_ref(),
        &cert.signature_value.data,
    )
    .is_ok()
}

/// An issuer with `below` CAs under it in the chain: a CA whose path length allows them, whose
/// key usage, where given, allows signing certificates, valid now.
fn check_issuer(issuer: &X509Certificate, below: u32, at: ASN1Time) -> Result<()> {
    let cannot_read = |what: &str| {
        refused(&format!(
            "the {what} of {} cannot be read",
            issuer.subject()
        ))
    };
    let constraints = issuer
        .basic_constraints()
        .map_err(|_| cannot_read("basic constraints"))?
        .filter(|b| b.value.ca)
        .ok_or_else(|| refused(&format!("{} is not a CA", issuer.subject())))?;
    if constraints
        .value
        .path_len_constraint
        .is_some_and(|n| below > n)
    {
        return Err(refused(&format!(
            "{} may not have {below} CAs under it",
            issuer.subject()
        )));
    }
    let usage = issuer.key_usage().map_err(|_| cannot_read("key usage"))?;
    if usage.is_some_and(|u| !u.value.key_cert_sign()) {
        return Err(refused(&format!(
            "{} may not sign certificates",
            issuer.subject()
        )));
    }
    if !issuer.validity().is_valid_at(at) {
        return Err(refused(&format!(
            "the certificate of {} is not valid now",
            issuer.subject()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by tests/fixtures/incus/signed/make.sh the way incus-os makes its test certificates;
    // index.sjson signs tests/fixtures/incus/index.json.
    const ROOT: &[u8] = include_bytes!("../../../../../tests/fixtures/incus/signed/root-E1.crt");
    const OTHER_ROOT: &[u8] =
        include_bytes!("../../../../../tests/fixtures/incus/signed/other-root-E1.crt");
    const SIGNED: &[u8] = include_bytes!("../../../../../tests/fixtures/incus/signed/index.sjson");
    const INDEX: &[u8] = include_bytes!("../../../../../tests/fixtures/incus/index.json");

    fn reason(e: Error) -> String {
        match e {
            Error::BadSignature { reason, .. } => reason,
            e => panic!("not a refusal: {e}"),
        }
    }

    #[test]
    fn the_signed_index_is_what_the_publisher_signed_and_names_its_signer() {
        let signed = verify(SIGNED, ROOT, SystemTime::now()).unwrap();
        assert_eq!(
            String::from_utf8(signed.content).unwrap().trim_end(),
            String::from_utf8(INDEX.to_vec()).unwrap().trim_end()
        );
        assert_eq!(signed.signer, "CN=TestOS - Update Test Cert E1, O=TestOS");
        // Its lines all ending LF, or all CRLF (as a mirror may rewrite it), are the same
        // message: S/MIME signs the text part's lines as CRLF.
        let lf = String::from_utf8_lossy(SIGNED).replace("\r\n", "\n");
        verify(lf.as_bytes(), ROOT, SystemTime::now()).unwrap();
        let crlf = lf.replace('\n', "\r\n");
        verify(crlf.as_bytes(), ROOT, SystemTime::now()).unwrap();
    }

    /// Line ends as OpenSSL canonicalises them: extra CRs before a line's end are dropped, and
    /// the content is cut from the signed bytes, whatever form the blank line after the part's
    /// header takes.
    #[test]
    fn line_ends_are_read_as_openssl_reads_them() {
        let text = String::from_utf8_lossy(SIGNED).into_owned();
        for (from, to) in [
            (
                "Content-Type: text/plain\r\n\r\n",
                "Content-Type: text/plain\r\r\n\r\n",
            ),
            (
                "Content-Type: text/plain\r\n\r\n",
                "Content-Type: text/plain\n\r\n",
            ),
        ] {
            let changed = text.replacen(from, to, 1);
            assert_ne!(changed, text);
            let signed = verify(changed.as_bytes(), ROOT, SystemTime::now()).unwrap();
            assert_eq!(
                String::from_utf8(signed.content).unwrap().trim_end(),
                String::from_utf8(INDEX.to_vec()).unwrap().trim_end(),
                "{to:?}"
            );
        }
    }

    #[test]
    fn a_changed_index_is_refused() {
        let text = String::from_utf8_lossy(SIGNED);
        let tampered = text.replacen("\"stable\"", "\"stabl3\"", 1);
        assert_ne!(tampered, text);
        let why = reason(verify(tampered.as_bytes(), ROOT, SystemTime::now()).unwrap_err());
        assert!(why.contains("changed after it was signed"), "{why}");
    }

    #[test]
    fn another_root_of_the_same_name_is_not_the_pinned_one() {
        let why = reason(verify(SIGNED, OTHER_ROOT, SystemTime::now()).unwrap_err());
        assert!(why.contains("not signed by the trusted root"), "{why}");
        // The real IncusOS root did not sign the test chain either.
        let why = reason(verify(SIGNED, INCUS_ROOT, SystemTime::now()).unwrap_err());
        assert!(why.contains("Incus OS - Root E1"), "{why}");
    }

    #[test]
    fn an_expired_chain_is_refused() {
        let later = SystemTime::now() + std::time::Duration::from_secs(20 * 365 * 86400);
        let why = reason(verify(SIGNED, ROOT, later).unwrap_err());
        assert!(why.contains("not valid now"), "{why}");
    }

    #[test]
    fn a_signature_that_is_not_the_signers_is_refused() {
        // One byte of the base64 signature body changed near its end (the signature value).
        let text = String::from_utf8_lossy(SIGNED).into_owned();
        let end = text.rfind("\n\n------").unwrap();
        let at = text[..end].rfind('\n').unwrap() + 3;
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let why = reason(verify(&bytes, ROOT, SystemTime::now()).unwrap_err());
        assert!(
            why.contains("not the signer's") || why.contains("malformed"),
            "{why}"
        );
    }

    /// A chain made with openssl as incus-os makes its own (tests/fixtures/incus/signed/make.sh),
    /// each certificate with the extensions given (an openssl extension section's lines), signing
    /// the fixture index: the root it chains to (PEM) and the signed message.
    fn chain(root_ext: &str, ca_ext: &str, signer_ext: &str) -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.path().join("ext.conf"),
            format!("[root]\n{root_ext}\n[ca]\n{ca_ext}\n[signer]\n{signer_ext}\n"),
        )
        .unwrap();
        for name in ["root", "ca", "signer"] {
            run(&[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-out",
                &format!("{name}.key"),
            ]);
        }
        // Each certificate from its request, with its section of extensions; the root signs
        // itself (-signkey), so its extensions come from the same file.
        for (name, issuer) in [("root", None), ("ca", Some("root")), ("signer", Some("ca"))] {
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            let subject = format!("/CN=Chain {name}");
            run(&[
                "req", "-new", "-SHA384", "-key", &key, "-nodes", "-out", &csr, "-subj", &subject,
            ]);
            let (issuer_crt, issuer_key) = issuer.map_or((None, key.clone()), |i| {
                (Some(format!("{i}.crt")), format!("{i}.key"))
            });
            let mut args = vec![
                "x509", "-req", "-SHA384", "-days", "30", "-in", &csr, "-out", &crt,
            ];
            args.extend(["-extfile", "ext.conf", "-extensions", name]);
            match &issuer_crt {
                None => args.extend(["-signkey", &issuer_key]),
                Some(ca) => args.extend(["-CA", ca, "-CAkey", &issuer_key]),
            }
            run(&args);
        }
        std::fs::write(dir.path().join("index.json"), INDEX).unwrap();
        run(&[
            "smime",
            "-text",
            "-sign",
            "-signer",
            "signer.crt",
            "-inkey",
            "signer.key",
            "-certfile",
            "ca.crt",
            "-in",
            "index.json",
            "-out",
            "index.sjson",
        ]);
        (
            std::fs::read(dir.path().join("root.crt")).unwrap(),
            std::fs::read(dir.path().join("index.sjson")).unwrap(),
        )
    }

    /// What OpenSSL's S/MIME verification refuses in a chain, this refuses too (each case was
    /// checked with `openssl smime -verify` by the review that asked for it).
    #[test]
    fn chains_openssl_refuses_are_refused() {
        let ca = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign";
        let root = ca;
        let signer = "keyUsage=digitalSignature";
        let (r, s) = chain(root, ca, signer);
        verify(&s, &r, SystemTime::now()).expect("the well-formed chain");
        let cases = [
            (
                "basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign",
                ca,
                signer,
                "may not have 1 CAs under it",
            ),
            (
                root,
                "basicConstraints=critical,CA:true\nkeyUsage=critical,cRLSign",
                signer,
                "may not sign certificates",
            ),
            (
                root,
                &format!("{ca}\nextendedKeyUsage=codeSigning"),
                signer,
                "not for S/MIME signing",
            ),
            (
                root,
                ca,
                "extendedKeyUsage=anyExtendedKeyUsage",
                "not for S/MIME signing",
            ),
            (
                root,
                ca,
                "1.2.3.4=critical,ASN1:NULL",
                "critical extension 1.2.3.4",
            ),
        ];
        for (root_ext, ca_ext, signer_ext, why) in cases {
            let (r, s) = chain(root_ext, ca_ext, signer_ext);
            let got = reason(verify(&s, &r, SystemTime::now()).unwrap_err());
            assert!(
                got.contains(why),
                "{root_ext} / {ca_ext} / {signer_ext}: {got}"
            );
        }
    }

    #[test]
    fn an_unsigned_index_is_not_a_signed_one() {
        let why = reason(verify(INDEX, ROOT, SystemTime::now()).unwrap_err());
        assert!(
            why.contains("no MIME header") || why.contains("not a multipart"),
            "{why}"
        );
    }
}
