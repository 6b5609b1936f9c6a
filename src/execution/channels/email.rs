//! The e-mail channel: renders a [`Message`] into a complete MIME message for
//! one address and hands it to an SMTP server.
//!
//! Rendering is pure and deterministic, so the bytes a dry run records are
//! the bytes a live run sends but for one line: `multipart/alternative` with
//! a plain-text part (the text without its `*bold*` markers) and an HTML part
//! (laid out in `body`), a fixed boundary, and a `Date` header that reads
//! `Date: (set when sent)` ([`DATE_PENDING`]) until the send puts the time
//! of sending there (RFC 5322 requires it; Postfix adds none for remote
//! clients).
//!
//! Every send has its own Message-ID, derived from the action, its firing
//! episode and repeat (the effect key's) and the addresses: a retried send
//! keeps it (so a receiver can drop the duplicate when the first attempt did
//! arrive), a repeat with the same text gets a new one (providers hide
//! messages that reuse an id). Messages of one conversation (an alert
//! instance's firing episode, see [`Thread`]) name the Message-ID of the
//! episode's first notification in `In-Reply-To` and `References`, so
//! repeats and the resolution thread under it.
//!
//! Sending is one attempt, on a fresh connection, within the configured
//! timeout; retries, pacing and breakers wrap every channel elsewhere. Failures
//! are classified for that wrapper: unreachable servers, timeouts and 4xx
//! replies are transient; 5xx replies (unknown user, rejected credentials),
//! TLS failures and a server lacking what the settings require are permanent.
//!
//! This module must never address anyone but the target (the envelope and the
//! `To` header name it alone), and never put the SMTP URL's credentials or the
//! password into an error, a log event or `Debug` output.

mod body;

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::address::Envelope;
use lettre::message::header::{self, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use sha2::{Digest as _, Sha256};
use url::{Host, Url};

use super::Channel;
use crate::config::EmailSettings;
use crate::config::secret::ExposeSecret as _;
use crate::model::{ChannelError, Message, Receipt, Rendered, Target, Thread};

/// `Rendered::content_type` of an e-mail: the full MIME message.
pub const CONTENT_TYPE: &str = "message/rfc822";

/// At most this many bytes of message content (subject, text, evidence,
/// tables, context) go into one e-mail; the rest is cut with a note.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// The `Date` header of a rendered e-mail until it is sent: the send puts
/// the time of sending in its place.
pub const DATE_PENDING: &str = "Date: (set when sent)\r\n";

/// RFC 3834: marks the mail as sent by a machine, so out-of-office and other
/// auto-responders do not answer it.
const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");

/// Default ports when the URL names none: 25 where TLS is optional or off
/// (the relay port, where STARTTLS is offered but not mandatory), 587 where
/// STARTTLS is required (submission), 465 for TLS from the start.
const PORT_SMTP: u16 = 25;
const PORT_SUBMISSION: u16 = 587;
const PORT_SUBMISSIONS: u16 = 465;

/// Sends notifications as e-mail over SMTP.
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The sender: the `From` header and the envelope's `MAIL FROM`.
    from: Mailbox,
    /// The limit on one whole send (connect, TLS, auth, transfer).
    timeout: Duration,
    /// The SMTP URL without credentials or query, for errors and logs.
    server: String,
}

impl fmt::Debug for EmailChannel {
    // By hand: the transport holds the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Builds the channel and its SMTP transport from the settings.
    ///
    /// The URL decides the connection: `smtp://host[:port]` upgrades with
    /// STARTTLS when the server offers it (`?tls=opportunistic`, the default
    /// without credentials; with credentials the default is `required`, so a
    /// password never travels in clear text unless the URL says `tls=none`),
    /// `?tls=required` insists on it, `?tls=none` never uses TLS, and
    /// `smtps://host[:port]` speaks TLS from the start. A path
    /// (`smtp://host/agent.example.com`) is the name sent in `EHLO`.
    /// Credentials come from `username`/`password`, else from the URL's user
    /// info. Nothing connects yet: an unreachable server shows on first send.
    ///
    /// Fails (permanently) on an unusable URL, a sender that is not an
    /// address, or a user name without a password (or the reverse).
    pub fn new(settings: &EmailSettings) -> Result<Self, ChannelError> {
        let server = settings.smtp_url.redacted().to_owned();
        let from: Mailbox = settings.from.parse().map_err(|e| {
            ChannelError::Permanent(format!(
                "email: `from` {:?} is not an e-mail address: {e}",
                settings.from
            ))
        })?;
        let transport = transport(settings, &server)?;
        Ok(Self {
            transport,
            from,
            timeout: settings.timeout,
            server,
        })
    }

    /// Renders into the MIME bytes (see the module docs for what is fixed).
    fn render_email(&self, message: &Message, address: &str) -> Result<Rendered, ChannelError> {
        let to: Mailbox = address
            .parse()
            .map_err(|e| ChannelError::Permanent(format!("email: target {address:?} is not an e-mail address: {e}")))?;
        let (fitted, truncated) = body::fit(message, MAX_TEXT_BYTES);
        let plain = body::plain(&fitted, truncated);
        let html = body::html(&fitted, truncated);

        let digest = content_digest(message, &to, &self.from)?;
        let boundary = boundary(&digest, &plain, &html);
        let (message_id, opener) = identity(&message.thread, &digest, &to, &self.from);

        let mut built = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(body::one_line(&message.subject))
            .message_id(Some(message_id));
        if let Some(opener) = opener {
            built = built.in_reply_to(opener.clone()).references(opener);
        }
        let text = MultiPart::alternative()
            .boundary(&boundary)
            .singlepart(SinglePart::plain(plain))
            .singlepart(SinglePart::html(html));
        // The full list travels as a CSV attachment when the text names fewer.
        let parts = if message.cut() {
            let csv = crate::execution::list_csv::csv(&message.list)
                .map_err(|e| ChannelError::Permanent(format!("email: {e}")))?;
            let content_type = ContentType::parse("text/csv; charset=utf-8")
                .map_err(|e| ChannelError::Permanent(format!("email: {e}")))?;
            MultiPart::mixed()
                .boundary(format!("{boundary}-mixed"))
                .multipart(text)
                .singlepart(Attachment::new(crate::execution::list_csv::file_name(message)).body(csv, content_type))
        } else {
            text
        };
        let built = built
            .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".to_owned()))
            .multipart(parts);
        let mut built = built.map_err(|e| ChannelError::Permanent(format!("email: cannot build the message: {e}")))?;
        // lettre stamps the current time when `Date` is missing; the send
        // does, so that a render stays deterministic.
        built.headers_mut().remove::<header::Date>();
        // lettre encodes every header and body part to 7-bit ASCII (RFC 2047
        // words, quoted-printable, base64), so this cannot fail; checked
        // rather than assumed because `Rendered::body` is a `String`.
        let formatted = String::from_utf8(built.formatted())
            .map_err(|_| ChannelError::Permanent("email: the rendered message is not text".to_owned()))?;
        let body = format!("{DATE_PENDING}{formatted}");
        Ok(Rendered {
            target: Target::Email(address.to_owned()),
            content_type: CONTENT_TYPE.to_owned(),
            body,
            truncated,
            idempotency_key: None,
        })
    }

    /// One SMTP transaction for a rendered e-mail.
    async fn send_email(&self, rendered: &Rendered) -> Result<Receipt, ChannelError> {
        let Target::Email(address) = &rendered.target else {
            return Err(not_email(&rendered.target));
        };
        if rendered.content_type != CONTENT_TYPE {
            return Err(ChannelError::Permanent(format!(
                "email: cannot send a {} payload as e-mail",
                rendered.content_type
            )));
        }
        let to: Mailbox = address
            .parse()
            .map_err(|e| ChannelError::Permanent(format!("email: target {address:?} is not an e-mail address: {e}")))?;
        // The envelope, not the headers, decides where the mail goes: it
        // names the target alone, whatever the payload's headers say.
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![to.email])
            .map_err(|e| ChannelError::Permanent(format!("email: invalid envelope for {address}: {e}")))?;
        // lettre ends DATA with CRLF "." CRLF after the bytes it is given, so
        // a message that already ends in CRLF would arrive with an extra empty
        // line. Without its last CRLF, the server stores exactly `body`, with
        // the time of sending as its date.
        let data = rendered.body.strip_suffix("\r\n").unwrap_or(&rendered.body);
        let data = dated(data, crate::clock::now());
        let attempt = self.transport.send_raw(&envelope, data.as_bytes());
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(response)) => {
                let reply = format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                );
                tracing::debug!(server = %self.server, to = %address, reply = %reply, "E-mail accepted.");
                Ok(Receipt {
                    reference: Some(reply.trim_end().to_owned()),
                })
            }
            Ok(Err(e)) => Err(classify(&e, address, &self.server)),
            // The transaction may have got as far as the message: sending it
            // again could deliver it twice.
            Err(_) => Err(ChannelError::Unknown(format!(
                "email to {address} via {}: no answer within {}; it may have been accepted",
                self.server,
                humantime::format_duration(self.timeout)
            ))),
        }
    }
}

impl Channel for EmailChannel {
    fn key(&self) -> String {
        "email".to_owned()
    }

    fn render(&self, message: &Message, target: &Target) -> Result<Rendered, ChannelError> {
        match target {
            Target::Email(address) => self.render_email(message, address),
            other => Err(not_email(other)),
        }
    }

    fn send<'a>(&'a self, rendered: &'a Rendered) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(self.send_email(rendered))
    }
}

fn not_email(target: &Target) -> ChannelError {
    ChannelError::Permanent(format!("email: cannot deliver to {target}: not an e-mail target"))
}

/// Sorts an SMTP failure: a refused connection or a 4xx is transient (worth
/// a retry), a 5xx or a setting the server cannot meet is permanent, and a
/// conversation that broke off (a timeout, a connection closed or reset, a
/// reply cut short) is unknown: it may have ended after the server had the
/// message, and sending it again could deliver it twice.
fn classify(e: &lettre::transport::smtp::Error, address: &str, server: &str) -> ChannelError {
    // lettre's messages hold the server's reply or an I/O or TLS error,
    // never the credentials.
    let message = format!("email to {address} via {server}: {e}");
    if e.is_transient() {
        return ChannelError::Transient {
            message,
            retry_after: None,
        };
    }
    if e.is_permanent() || e.is_tls() || e.is_client() {
        // 5xx; a certificate the platform does not trust; or something the
        // settings demand that the server lacks (STARTTLS, an AUTH mechanism):
        // none of that changes within a retry's wait.
        return ChannelError::Permanent(message);
    }
    if is_connect_failure(e) {
        return ChannelError::Transient {
            message,
            retry_after: None,
        };
    }
    ChannelError::Unknown(format!("{message}; it may have been accepted"))
}

/// Whether lettre failed to open the connection at all (nothing was sent):
/// its "Connection error" kind, which has no public predicate.
fn is_connect_failure(e: &lettre::transport::smtp::Error) -> bool {
    e.to_string().starts_with("Connection error")
}

/// Builds the transport the URL and credentials describe (see [`EmailChannel::new`]).
fn transport(settings: &EmailSettings, server: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, ChannelError> {
    let bad = |what: String| ChannelError::Permanent(format!("email: smtp_url {server}: {what}"));
    // url's parse errors are fixed phrases ("invalid port number"), never the input.
    let url = Url::parse(settings.smtp_url.expose()).map_err(|e| bad(e.to_string()))?;
    // TLS verifies the name without brackets; connecting accepts either.
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("no host".to_owned())),
    };
    let mut mode = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" => mode = Some(value.into_owned()),
            // The name only: the value may be a secret.
            other => return Err(bad(format!("unknown parameter {other:?} (only `tls`)"))),
        }
    }
    let params = || TlsParameters::new(host.clone()).map_err(|e| bad(format!("cannot set up TLS for {host}: {e}")));
    let login = credentials(settings, &url, &bad)?;
    let (tls, default_port) = match (url.scheme(), mode.as_deref()) {
        // With a password to send, a server (or anyone between) that simply
        // does not offer STARTTLS must not get it in clear text: unless the
        // URL says otherwise, TLS is then required.
        ("smtp", None) if login.is_some() => (Tls::Required(params()?), PORT_SUBMISSION),
        ("smtp", None | Some("opportunistic")) => (Tls::Opportunistic(params()?), PORT_SMTP),
        ("smtp", Some("required")) => (Tls::Required(params()?), PORT_SUBMISSION),
        ("smtp", Some("none")) => (Tls::None, PORT_SMTP),
        ("smtp", Some(other)) => {
            return Err(bad(format!("tls={other:?}: use required, opportunistic or none")));
        }
        ("smtps", None) => (Tls::Wrapper(params()?), PORT_SUBMISSIONS),
        ("smtps", Some(_)) => return Err(bad("smtps:// is always TLS: drop `tls=`".to_owned())),
        (scheme, _) => return Err(bad(format!("scheme {scheme:?}: use smtp:// or smtps://"))),
    };

    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(url.port().unwrap_or(default_port))
        .tls(tls)
        // Per network operation; `send` bounds the whole transaction too.
        .timeout(Some(settings.timeout));
    let hello = url.path().trim_matches('/');
    if !hello.is_empty() {
        builder = builder.hello_name(ClientId::Domain(hello.to_owned()));
    }
    if let Some(credentials) = login {
        builder = builder.credentials(credentials);
    }
    Ok(builder.build())
}

/// The login: settings first, then the URL's user info (percent-decoded).
fn credentials(
    settings: &EmailSettings,
    url: &Url,
    bad: &dyn Fn(String) -> ChannelError,
) -> Result<Option<Credentials>, ChannelError> {
    let decode = |part: &str| {
        percent_decode(part).ok_or_else(|| bad("the user info is not valid percent-encoded UTF-8".to_owned()))
    };
    let username = match &settings.username {
        Some(u) => Some(u.clone()),
        None if !url.username().is_empty() => Some(decode(url.username())?),
        None => None,
    };
    let password = match (&settings.password, url.password()) {
        (Some(p), _) => Some(p.expose().to_owned()),
        (None, Some(p)) => Some(decode(p)?),
        (None, None) => None,
    };
    match (username, password) {
        (Some(u), Some(p)) => Ok(Some(Credentials::new(u, p))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad("a user name but no password".to_owned())),
        (None, Some(_)) => Err(bad("a password but no user name".to_owned())),
    }
}

/// Decodes `%XX` escapes; `None` if the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The rendered e-mail `data` with the time of sending in its `Date` header
/// (RFC 5322 form); an e-mail rendered without the pending header (stored
/// by an earlier version) gets one in front.
fn dated(data: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let date = format!("Date: {}\r\n", now.to_rfc2822());
    match data.strip_prefix(DATE_PENDING) {
        Some(rest) => format!("{date}{rest}"),
        None if data.starts_with("Date:") => data.to_owned(),
        None => format!("{date}{data}"),
    }
}

/// The Message-ID of one send, and the one it replies to (its
/// conversation's opener) if it does not open the conversation itself.
/// Each is a hash of what names it and the two addresses: the same send
/// has the same id on every attempt, and each recipient's copy its own.
fn identity(thread: &Thread, content: &[u8; 32], to: &Mailbox, from: &Mailbox) -> (String, Option<String>) {
    let id = |parts: &[&[u8]]| {
        let mut hash = Sha256::new();
        for part in [
            b"bi-agent email v2".as_slice(),
            to.to_string().as_bytes(),
            from.to_string().as_bytes(),
        ]
        .iter()
        .chain(parts)
        {
            // Length-prefixed, so no two lists of parts hash alike.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        let digest: [u8; 32] = hash.finalize().into();
        format!("<{}@{}>", hex(&digest[..16]), from.email.domain())
    };
    if thread.conversation.is_empty() {
        // A message outside any conversation (e.g. a test message): its
        // content names it.
        return (id(&[b"content", content]), None);
    }
    let opener = id(&[b"opens", thread.conversation.as_bytes()]);
    if thread.opens {
        return (opener, None);
    }
    let send = &thread.send;
    let number = format!("{}.{}", send.episode, send.repeat);
    (
        id(&[b"send", send.action_id.as_bytes(), number.as_bytes()]),
        Some(opener),
    )
}

/// SHA-256 over what makes this e-mail this e-mail: the format version, the
/// message (action id included), the target and the sender.
fn content_digest(message: &Message, to: &Mailbox, from: &Mailbox) -> Result<[u8; 32], ChannelError> {
    // JSON of plain data: same value, same bytes (struct fields in
    // declaration order, no maps).
    let json = serde_json::to_vec(&("bi-agent email v1", message, to.to_string(), from.to_string()))
        .map_err(|e| ChannelError::Permanent(format!("email: cannot hash the message: {e}")))?;
    Ok(Sha256::digest(&json).into())
}

/// A multipart boundary that appears in neither part.
///
/// Derived from the digest, so it is fixed for the same message; content
/// would have to contain a hash of itself to collide, but the loop makes
/// sure rather than trusting that.
fn boundary(digest: &[u8; 32], plain: &str, html: &str) -> String {
    let mut candidate = format!("=_bi-agent_{}", hex(&digest[16..]));
    let mut salt = 0u32;
    while plain.contains(&candidate) || html.contains(&candidate) {
        salt += 1;
        let mut next = Sha256::new();
        next.update(digest);
        next.update(salt.to_be_bytes());
        let next: [u8; 32] = next.finalize().into();
        candidate = format!("=_bi-agent_{}", hex(&next[16..]));
    }
    candidate
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
