//! Why a server's certificate was refused: plain data, so the error type can carry it without
//! depending on the TLS code that finds it (`fetch::tls`).

use std::fmt;

/// Why a server's certificate was refused, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProblem {
    /// No trusted CA vouches for it.
    Untrusted {
        host: String,
        issuer: String,
    },
    Expired {
        host: String,
        not_after: String,
    },
    NotYetValid {
        host: String,
        not_before: String,
    },
    /// It was issued for other names.
    WrongName {
        host: String,
        names: Vec<String>,
    },
    Other {
        host: String,
        detail: String,
    },
}

const ADD_CA: &str =
    "add the CA that issued it to this machine's trust store, or pass its PEM file with --ca-cert";

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertProblem::Untrusted { host, issuer } => write!(
                f,
                "the certificate of {host} is not trusted: it was issued by {issuer:?}, which is not a CA this machine trusts; {ADD_CA}"
            ),
            CertProblem::Expired { host, not_after } => write!(
                f,
                "the certificate of {host} expired on {not_after}: the server must renew it (or this machine's clock is wrong)"
            ),
            CertProblem::NotYetValid { host, not_before } => write!(
                f,
                "the certificate of {host} is not valid before {not_before}: check this machine's clock"
            ),
            CertProblem::WrongName { host, names } => write!(
                f,
                "the certificate of {host} is for {} only, not {host}: use one of those names in the URL, or have the certificate reissued for {host}",
                if names.is_empty() { "no name".into() } else { names.join(", ") }
            ),
            CertProblem::Other { host, detail } => write!(
                f,
                "the certificate of {host} was refused ({detail}); {ADD_CA} if the problem is its issuer"
            ),
        }
    }
}

impl std::error::Error for CertProblem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_says_what_to_do() {
        let untrusted = CertProblem::Untrusted {
            host: "factory.lab".into(),
            issuer: "CN=Lab CA".into(),
        }
        .to_string();
        assert!(untrusted.contains("CN=Lab CA") && untrusted.contains("--ca-cert"));
        let wrong = CertProblem::WrongName {
            host: "127.0.0.1".into(),
            names: vec!["factory.lab".into(), "mirror.lab".into()],
        }
        .to_string();
        assert!(
            wrong.contains("factory.lab, mirror.lab only, not 127.0.0.1"),
            "{wrong}"
        );
    }
}
