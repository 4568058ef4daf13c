//! Credentials for an Enterprise Image Factory: HTTP Basic from a URL's `user:password@`, and a
//! download token. They go on the wire and nowhere else: every URL labflash prints, logs,
//! records or names a cache file after is first [`redact`]ed, and [`Secret`] hides from `{:?}`.
//!
//! The token travels as the `token` query parameter: the factory reads it there on
//! `GET|HEAD /image/…` (siderolabs/image-factory at 26b95ca, v1.5.0-4,
//! `internal/frontend/http/http.go:369-370`) and knows no header form of it; every other route
//! takes Basic (`enterprise/auth/auth.go:166`). It is sent on every request to the factory all
//! the same: a route that does not read it ignores it.

use url::Url;

/// The query parameter a download token travels in.
const TOKEN_PARAM: &str = "token";

/// A secret: shown as `***` by `{:?}`, so no log of a struct holding one shows it. It can be
/// read (from the window) but never written out.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// HTTP Basic: a user and a password (empty when the URL gave none).
    pub basic: Option<(String, Secret)>,
    pub token: Option<Secret>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.basic.is_none() && self.token.is_none()
    }

    /// `url` with the token, if there is one, as its `token` query parameter.
    pub(crate) fn with_token(&self, url: &Url) -> Url {
        let mut url = url.clone();
        if let Some(token) = &self.token {
            url.query_pairs_mut()
                .append_pair(TOKEN_PARAM, token.expose());
        }
        url
    }
}

/// `url` without its credentials, and them: `user:password@` as Basic (percent-decoded, as
/// reqwest would send them), the last `token` query parameter as the token.
pub fn split(url: &Url) -> (Url, Credentials) {
    let basic = (!url.username().is_empty() || url.password().is_some()).then(|| {
        (
            super::percent_decode(url.username()),
            Secret::new(super::percent_decode(url.password().unwrap_or(""))),
        )
    });
    let token = url
        .query_pairs()
        .filter(|(k, _)| k == TOKEN_PARAM)
        .last()
        .map(|(_, v)| Secret::new(v));
    (redact(url), Credentials { basic, token })
}

/// `url` as it may be shown: without `user:password@` and without a `token` query parameter.
pub fn redact(url: &Url) -> Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.query_pairs().any(|(k, _)| k == TOKEN_PARAM) {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != TOKEN_PARAM)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    url
}

/// `source` as it may be shown in a message: a URL [`redact`]ed, anything else as it is.
pub fn shown(source: &str) -> String {
    Url::parse(source).map_or_else(|_| source.to_string(), |url| redact(&url).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_splits_into_a_clean_url_and_its_credentials() {
        let url = Url::parse("https://op%40lab:p%3Ass@f.example/sub/?x=1&token=t%2Bk").unwrap();
        let (clean, creds) = split(&url);
        assert_eq!(clean.as_str(), "https://f.example/sub/?x=1");
        assert_eq!(
            creds.basic,
            Some(("op@lab".to_string(), Secret::new("p:ss")))
        );
        assert_eq!(creds.token, Some(Secret::new("t+k")));
        assert_eq!(
            creds.with_token(&clean).as_str(),
            "https://f.example/sub/?x=1&token=t%2Bk"
        );
        assert!(!format!("{creds:?}").contains("p:ss"));
        assert!(!format!("{creds:?}").contains("t+k"));
    }

    #[test]
    fn a_url_without_credentials_is_left_as_it_is() {
        let url = Url::parse("https://f.example/a.raw?sig=abc").unwrap();
        let (clean, creds) = split(&url);
        assert_eq!(clean, url);
        assert!(creds.is_empty());
    }
}
