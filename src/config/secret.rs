//! Secret-bearing config values.
//!
//! Anything that may contain a `${VAR}` secret (URLs with passwords or tokens,
//! header values) is held in one of these types. They never print their content:
//! `Debug` and `Display` show a redacted form, and the plain text is reachable
//! only through [`ExposeSecret`], at the single place a client is built.
//!
//! This module must never log, and must never hand out the secret in an error.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer};
use url::Url;

/// Gives the plain text of a secret to the code that builds a client from it.
pub trait ExposeSecret {
    /// The secret's plain text. Call only to hand it to a client, never to log it.
    fn expose(&self) -> &str;
}

/// A secret string, e.g. an `Authorization` header value.
#[derive(Clone)]
pub struct SecretText(SecretString);

impl SecretText {
    /// Wraps a plain string.
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }
}

impl ExposeSecret for SecretText {
    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor).map(Self::new)
    }
}

/// Reads a secret's text from any scalar: a password of digits given through
/// the environment or written unquoted is still a password. Anything else is
/// refused with a message that shows the kind of value, never the value.
struct SecretVisitor;

impl serde::de::Visitor<'_> for SecretVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret's text (a string; a number or boolean is taken as its text)")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A URL that may carry credentials (user:password, tokens in the query).
///
/// Displayed as scheme, host, port and path only: user info and query are
/// replaced, so the URL can name its target in logs and errors.
#[derive(Clone)]
pub struct SecretUrl {
    secret: SecretString,
    redacted: String,
}

impl SecretUrl {
    /// Wraps a URL string.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        let redacted = redact_url(&url);
        Self {
            secret: SecretString::from(url),
            redacted,
        }
    }

    /// The URL with credentials and query removed, safe to log.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The scheme (text before `:`), lower-cased, when it looks like one
    /// (a letter, then at most 11 letters, `+`, `-` or `.`); else empty. A
    /// "URL" that is really a bare secret (`hunter2:…`) shows nothing of it.
    pub fn scheme(&self) -> String {
        let Some((scheme, _)) = self.secret.expose_secret().split_once(':') else {
            return String::new();
        };
        let mut chars = scheme.chars();
        let looks_like_one = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.len() <= 12
            && chars.all(|c| c.is_ascii_alphabetic() || matches!(c, '+' | '-' | '.'));
        if looks_like_one {
            scheme.to_ascii_lowercase()
        } else {
            String::new()
        }
    }

    /// Why this URL's scheme is not one of `expected` (as `"http:// or https://"`),
    /// naming the scheme only when it can be shown.
    pub fn scheme_problem(&self, expected: &str) -> String {
        match self.scheme().as_str() {
            "" => format!("not a URL with a scheme (expected {expected})"),
            scheme => format!("unsupported scheme \"{scheme}\" (expected {expected})"),
        }
    }
}

impl ExposeSecret for SecretUrl {
    fn expose(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor).map(Self::new)
    }
}

/// Removes user info and query from a URL; an unparsable URL keeps only its scheme.
fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        // Without a host, the rest of an opaque URL (`scheme:user:pw`) may be
        // anything, secrets included.
        Ok(url) if url.host().is_none() && url.scheme() != "sqlite" => {
            format!("{}:…", url.scheme())
        }
        Ok(mut url) => {
            let had_query = url.query().is_some();
            // Setting these can only fail for URLs that cannot have them
            // (e.g. `mailto:`), in which case there is nothing to hide there.
            if !url.username().is_empty() {
                let _ = url.set_username("***");
            }
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.set_query(None);
            url.set_fragment(None);
            // An HTTP path can itself be the secret (a Slack or Zapier webhook
            // URL is a bearer token): show only where it points. A database
            // URL's path is the database name, which helps and hides nothing.
            let hide_path = matches!(url.scheme(), "http" | "https") && url.path() != "/";
            if hide_path {
                url.set_path("/…");
            }
            let mut shown = url.to_string().replace("/%E2%80%A6", "/…");
            if had_query {
                shown.push_str("?…");
            }
            shown
        }
        Err(_) => match raw.split_once(':') {
            Some((scheme, _)) if scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') => {
                format!("{scheme}:…")
            }
            _ => "[unparsable url]".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_never_shown() {
        let u = SecretUrl::new("postgres://bi:hunter2@db.internal:5432/shop?sslmode=require");
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("sslmode"), "{shown}");
        assert!(shown.contains("db.internal:5432/shop"), "{shown}");
        assert_eq!(u.scheme(), "postgres");
        assert_eq!(
            u.expose(),
            "postgres://bi:hunter2@db.internal:5432/shop?sslmode=require"
        );
    }

    #[test]
    fn http_paths_are_hidden_because_webhook_paths_are_secrets() {
        let u = SecretUrl::new("https://hooks.slack.com/services/T000/B000/XXXXSECRET");
        assert_eq!(u.redacted(), "https://hooks.slack.com/…");
        assert!(!format!("{u:?}").contains("XXXXSECRET"));
        assert_eq!(
            SecretUrl::new("http://127.0.0.1:9090/").redacted(),
            "http://127.0.0.1:9090/"
        );
    }

    #[test]
    fn text_debug_is_redacted() {
        let t = SecretText::new("Bearer abc123");
        assert_eq!(format!("{t:?}"), "\"[redacted]\"");
        assert_eq!(t.expose(), "Bearer abc123");
    }

    #[test]
    fn unparsable_url_keeps_only_scheme() {
        assert_eq!(redact_url("mssql:user:pw"), "mssql:…");
        assert_eq!(redact_url("user:pw@host"), "user:…");
        assert_eq!(redact_url("no scheme here"), "[unparsable url]");
    }
}
