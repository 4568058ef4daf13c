//! Which servers labflash trusts: the ones this machine trusts, plus any CA the operator names.
//!
//! Certificates are checked by the platform's verifier (`rustls-platform-verifier`): on Linux the
//! system store (`/etc/ssl/certs`, or `SSL_CERT_FILE` / `SSL_CERT_DIR` as curl and Go honour them),
//! the OS verifier on Windows and macOS. An operator's extra CA (`--ca-cert`, the app's setting, an
//! ImageBuild config) is added to those roots, never used instead of them. There is no way to turn
//! verification off.
//!
//! When a certificate is refused, [`Explaining`] reads it once more to say why in terms an operator
//! can act on: who issued it, when it expired, which names it is for. The explanation travels inside
//! the TLS error as a [`CertProblem`], which [`crate::fetch::http`] finds and reports without retrying.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_platform_verifier::Verifier;

use crate::error::{CertProblem, Error, Result};

/// A rustls client configuration that verifies servers as described above.
pub(crate) fn client_config(extra_ca: &[PathBuf]) -> Result<rustls::ClientConfig> {
    let mut extra = Vec::new();
    for path in extra_ca {
        extra.extend(read_ca_file(path)?);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Without an extra CA, the plain verifier: the same roots, and on Windows no chain engine of
    // labflash's own (the system's is used; Wine cannot create one).
    let verifier = if extra.is_empty() {
        Verifier::new(provider.clone())
    } else {
        Verifier::new_with_extra_roots(extra, provider.clone())
    };
    let verifier = verifier.map_err(|e| {
        Error::BadInput(format!(
            "no CA certificates can be trusted ({e}): install the system's CA bundle (ca-certificates) or name a CA file with --ca-cert"
        ))
    })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::BadInput(format!("TLS cannot be set up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Explaining { inner: verifier }))
        .with_no_client_auth();
    // reqwest sets ALPN only on configurations it builds itself.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificates of a PEM file (one or more); a file that holds none is an error.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad =
        |why: String| Error::BadInput(format!("the CA certificate file {} {why}", path.display()));
    let text = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (a PEM \"BEGIN CERTIFICATE\" block is expected)".into(),
        ));
    }
    Ok(certs)
}

/// The platform verifier, with refusals explained as [`CertProblem`]s.
#[derive(Debug)]
struct Explaining {
    inner: Verifier,
}

impl ServerCertVerifier for Explaining {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| {
                let problem = explain(&e, end_entity, &server_name.to_str());
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    problem,
                ))))
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Turns the verifier's error into a [`CertProblem`], reading the certificate for what the error
/// does not carry (its issuer, its validity, its names).
fn explain(error: &rustls::Error, cert: &CertificateDer<'_>, host: &str) -> CertProblem {
    let host = host.to_string();
    let parsed = x509_parser::parse_x509_certificate(cert)
        .ok()
        .map(|(_, c)| c);
    let issuer = || {
        parsed
            .as_ref()
            .map_or_else(|| "an unknown issuer".into(), |c| c.issuer().to_string())
    };
    let date = |t: Option<i64>| t.map_or_else(|| "an unreadable date".into(), utc_date);
    let validity = parsed.as_ref().map(|c| {
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    });
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return CertProblem::Other {
            host,
            detail: error.to_string(),
        };
    };
    match cert_error {
        CertificateError::UnknownIssuer => CertProblem::Untrusted {
            host,
            issuer: issuer(),
        },
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            CertProblem::Expired {
                host,
                not_after: date(validity.map(|v| v.1)),
            }
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            CertProblem::NotYetValid {
                host,
                not_before: date(validity.map(|v| v.0)),
            }
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            CertProblem::WrongName {
                host,
                names: parsed.as_ref().map(names_of).unwrap_or_default(),
            }
        }
        CertificateError::Other(OtherError(inner)) => CertProblem::Other {
            host,
            detail: inner.to_string(),
        },
        other => CertProblem::Other {
            host,
            detail: format!("{other:?}"),
        },
    }
}

/// The DNS names and IP addresses a certificate is for (its subject alternative names).
fn names_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `2025-01-31 12:00:00 UTC` for seconds since the epoch (proleptic Gregorian calendar).
fn utc_date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The certificate problem inside a transport error's chain, if that is why it failed.
pub(crate) fn problem_in(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut next = Some(e);
    while let Some(mut err) = next {
        // io::Error hides the error it wraps from `source()`, and connectors nest them.
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(o))) => {
                    match o.downcast_ref::<CertProblem>() {
                        Some(p) => TlsFailure::Certificate(p.clone()),
                        None => TlsFailure::Handshake(tls.to_string()),
                    }
                }
                other => TlsFailure::Handshake(other.to_string()),
            });
        }
        next = err.source();
    }
    None
}

/// A TLS failure: both kinds are permanent (another attempt meets the same certificate).
pub(crate) enum TlsFailure {
    Certificate(CertProblem),
    Handshake(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31 23:59:59 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = read_ca_file(&path).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
        let err = read_ca_file(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be read"), "{err}");
    }
}
