//! Webhooks: POST a [`Message`] as JSON to a named endpoint from `[endpoints]`
//! (a CRM task, an incident tool, a chat bridge).
//!
//! The body has a fixed shape, so receivers can rely on it:
//!
//! ```json
//! { "action_id": "…", "kind": "webhook", "severity": "high", "subject": "…",
//!   "text": "…", "evidence": { "name": "value" },
//!   "tables": [{ "title": "…", "columns": […], "rows": [[…]] }],
//!   "context": "…", "params": { …the action's free-form params… },
//!   "links": [{ "label": "Runbook", "url": "…" }] }
//! ```
//!
//! `params` is the place for anything endpoint-specific. A group message
//! adds `instances`, its full list. Rendering is pure and the rendered body
//! is exactly what is posted (except a PagerDuty routing key, put in by the
//! send so that no recorded payload holds it).
//!
//! With `format = "alertmanager" | "pagerduty" | "teams"` the body is that
//! receiver's own schema instead (see [`formats`]).
//!
//! This module must never post anywhere but the configured URL, and never put
//! the URL (its path or query may hold a token) or a header value into an
//! error or `Debug` output.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

mod formats;

use super::Channel;
use super::http::{self, Scrubber};
use crate::config::{EndpointSettings, ExposeSecret, SecretText, SecretUrl, WebhookFormat};
use crate::model::{ChannelError, Message, Receipt, Rendered, Target};

/// The largest body posted: big enough for any report, small enough for
/// every receiver we know of (many reject bodies over a few hundred KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Appended where text was cut.
const TRUNCATED: &str = "… (truncated)";

/// A webhook endpoint (`webhook:NAME` targets).
pub struct WebhookChannel {
    name: String,
    label: String,
    url: SecretUrl,
    headers: HeaderMap,
    client: reqwest::Client,
    timeout: Duration,
    scrubber: Scrubber,
    format: WebhookFormat,
    routing_key: Option<SecretText>,
    /// How long an Alertmanager alert stays firing without news.
    hold: Duration,
    /// The endpoint's body template, compiled (key: see `body_template_key`).
    template: Option<(crate::template::Templates, String)>,
}

impl WebhookChannel {
    /// Builds the channel for endpoint `name`: the configured headers are
    /// checked here (names and values), marked sensitive, and sent with
    /// every request; `Content-Type: application/json` always, as the body
    /// is JSON. `repeat_interval` is how often a firing alert is told again:
    /// an Alertmanager alert stays firing for two of them.
    pub fn new(name: &str, settings: &EndpointSettings, repeat_interval: Duration) -> Result<Self, ChannelError> {
        let label = format!("webhook {name}");
        let mut scrubber = Scrubber::default();
        scrubber.add_url(settings.url.expose());
        let mut headers = HeaderMap::new();
        for (key, value) in &settings.headers {
            scrubber.add(value.expose());
            let header = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| ChannelError::Permanent(format!("{label}: `{key}` is not a valid header name")))?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                ChannelError::Permanent(format!(
                    "{label}: the value of header `{key}` is not a valid header value"
                ))
            })?;
            // Keeps it out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &settings.routing_key {
            scrubber.add(key.expose());
        }
        let template = match &settings.body {
            Some(source) => {
                let key = crate::config::body_template_key(name);
                let mut templates = crate::template::Templates::new();
                templates
                    .add(&key, source)
                    .map_err(|e| ChannelError::Permanent(format!("{label}: body template: {e}")))?;
                Some((templates, key))
            }
            None => None,
        };
        Ok(Self {
            template,
            format: settings.format,
            routing_key: settings.routing_key.clone(),
            hold: repeat_interval.saturating_mul(2),
            name: name.to_owned(),
            client: http::client(&label, settings.timeout, http::Resend::Safe)?,
            label,
            url: settings.url.clone(),
            headers,
            timeout: settings.timeout,
            scrubber,
        })
    }

    /// Posts the body; any 2xx means delivered. The effect key goes along as
    /// `Idempotency-Key`, so a receiver sees a retry as the same request
    /// (which makes a retry after an unanswered request safe).
    async fn post(&self, body: &str, idempotency_key: Option<&str>) -> Result<Receipt, ChannelError> {
        let mut request = self.client.post(self.url.expose()).headers(self.headers.clone());
        if let Some(key) = idempotency_key.and_then(|k| HeaderValue::from_str(k).ok()) {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| http::request_error(&self.label, e, self.timeout, http::Resend::Safe))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Receipt::default());
        }
        let headers = response.headers().clone();
        // Only a short error code from the body is ever quoted (see
        // `http::error_code`); failing to read it changes nothing.
        let body = http::read_capped(response, 1024).await.unwrap_or_default();
        Err(http::status_error(&self.label, status, &headers, &body))
    }
}

impl WebhookChannel {
    /// The body from the endpoint's template: the message's fields, every
    /// inserted value JSON-escaped; what it renders must be JSON.
    fn templated(&self, message: &Message) -> Result<String, ChannelError> {
        let Some((templates, key)) = &self.template else {
            return Err(ChannelError::Permanent(format!("{}: no body template", self.label)));
        };
        let evidence: Map<String, Value> = (message.evidence.iter())
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let context = json!({
            "action_id": message.action_id,
            "kind": message.kind,
            "severity": message.severity,
            "subject": message.subject,
            "text": message.text,
            "evidence": evidence,
            "context": message.context,
            "params": message.params,
            "links": message.links,
            "instances": message.list,
            "alert": message.alert,
            "at": message.at,
        });
        let body = templates
            .render(key, &context)
            .map_err(|e| ChannelError::Permanent(format!("{}: body template: {e}", self.label)))?;
        if let Err(e) = serde_json::from_str::<Value>(&body) {
            return Err(ChannelError::Permanent(format!(
                "{}: the body template did not render JSON ({e})",
                self.label
            )));
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(ChannelError::Permanent(format!(
                "{}: the templated body is {} bytes (limit {MAX_BODY_BYTES})",
                self.label,
                body.len()
            )));
        }
        Ok(body)
    }

    /// A PagerDuty body with the routing key put in where the render left
    /// its place; any other body as it is.
    fn with_routing_key<'b>(&self, body: &'b str) -> Result<std::borrow::Cow<'b, str>, ChannelError> {
        let (WebhookFormat::Pagerduty, Some(key)) = (self.format, &self.routing_key) else {
            return Ok(std::borrow::Cow::Borrowed(body));
        };
        let mut event: Value = serde_json::from_str(body)
            .map_err(|e| ChannelError::Permanent(format!("{}: the recorded body is not JSON: {e}", self.label)))?;
        // A body recorded under another format (an array) is not an event.
        let fields = event.as_object_mut().ok_or_else(|| {
            ChannelError::Permanent(format!(
                "{}: the recorded body is not a PagerDuty event (was the endpoint's format changed?)",
                self.label
            ))
        })?;
        fields.insert("routing_key".to_owned(), Value::String(key.expose().to_owned()));
        Ok(std::borrow::Cow::Owned(event.to_string()))
    }
}

impl fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Host and header names only: paths, queries and header values may be secrets.
        let header_names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("WebhookChannel")
            .field("name", &self.name)
            .field("host", &http::host_of(self.url.expose()))
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Channel for WebhookChannel {
    fn key(&self) -> String {
        format!("webhook:{}", self.name)
    }

    fn render(&self, message: &Message, target: &Target) -> Result<Rendered, ChannelError> {
        if *target != Target::Webhook(self.name.clone()) {
            return Err(ChannelError::Permanent(format!(
                "{}: cannot deliver to {target}",
                self.label
            )));
        }
        let standard = |value: Value| (value.to_string(), false);
        let (body, truncated) = match self.format {
            WebhookFormat::Json if self.template.is_some() => (self.templated(message)?, false),
            WebhookFormat::Json => {
                body(message, MAX_BODY_BYTES).map_err(|e| ChannelError::Permanent(format!("{}: {e}", self.label)))?
            }
            WebhookFormat::Alertmanager => standard(formats::alertmanager(message, self.hold)),
            WebhookFormat::Pagerduty => standard(formats::pagerduty(message)),
            WebhookFormat::Teams => standard(formats::teams(message)),
        };
        Ok(Rendered {
            target: target.clone(),
            content_type: "application/json".to_owned(),
            body,
            truncated,
            idempotency_key: None,
        })
    }

    fn send<'a>(&'a self, rendered: &'a Rendered) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(async move {
            let key = rendered.idempotency_key.as_deref().map(idempotency_key);
            let body = self.with_routing_key(&rendered.body)?;
            self.post(&body, key.as_deref())
                .await
                .map_err(|e| self.scrubber.scrub(e))
        })
    }
}

/// The JSON body, cut to `max` bytes: first the text is shortened, then tables
/// are left out; evidence and params are never cut (a receiver acts on them),
/// so a message too big without text and tables is an error. The full list
/// of instances (a group message's) is never cut either, and does not count
/// against `max`: a receiver gets every instance, however many.
fn body(message: &Message, max: usize) -> Result<(String, bool), String> {
    let list = match message.list.as_slice() {
        [] => 0,
        list => serde_json::to_string(list)
            .map_err(|e| format!("cannot encode the list: {e}"))?
            .len(),
    };
    let max = max.saturating_add(list);
    let mut text = message.text.clone();
    let mut tables = message.tables.len();
    let mut truncated = false;
    loop {
        let body = encode(message, &text, tables)?;
        if body.len() <= max {
            return Ok((body, truncated));
        }
        truncated = true;
        let excess = body.len() - max;
        if !text.is_empty() && text != TRUNCATED {
            // Each byte cut from the text shrinks the JSON by at least one
            // byte (escaping only ever grows it), so one cut usually suffices.
            let mut keep = message
                .text
                .len()
                .min(text.len())
                .saturating_sub(excess + TRUNCATED.len());
            while !message.text.is_char_boundary(keep) {
                keep -= 1;
            }
            text = format!("{}{TRUNCATED}", &message.text[..keep]);
        } else if tables > 0 {
            tables -= 1;
        } else {
            return Err(format!(
                "the message is {} bytes even without text and tables (limit {max})",
                body.len()
            ));
        }
    }
}

/// The `Idempotency-Key` for an effect key: its SHA-256, hex (effect keys
/// hold labels, which need not be valid header text).
fn idempotency_key(effect_key: &str) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(effect_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Encodes the body with the given text and the first `tables` tables.
fn encode(message: &Message, text: &str, tables: usize) -> Result<String, String> {
    let evidence: Map<String, Value> = message
        .evidence
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    let mut payload = json!({
        "action_id": message.action_id,
        "kind": message.kind,
        "severity": message.severity,
        "subject": message.subject,
        "text": text,
        "evidence": evidence,
        "tables": message.tables[..tables],
        "context": message.context,
        "params": message.params,
        "links": message.links,
    });
    if !message.list.is_empty() {
        payload["instances"] = json!(message.list);
    }
    serde_json::to_string(&payload).map_err(|e| format!("cannot encode the payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActionKind, Severity};
    use crate::model::Table;

    fn message(text: String) -> Message {
        let mut m = Message::plain(
            "r/a/x".to_owned(),
            ActionKind::Webhook,
            Severity::High,
            "s".to_owned(),
            text,
        );
        m.evidence = vec![("k".to_owned(), "v".to_owned())];
        m.tables = vec![Table::default(); 3];
        m
    }

    #[test]
    fn long_text_is_cut_to_the_limit() {
        let m = message("é\"".repeat(2000));
        let (body, truncated) = body(&m, 1000).unwrap();
        assert!(truncated);
        assert!(body.len() <= 1000, "{}", body.len());
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["text"].as_str().unwrap().ends_with(TRUNCATED));
    }

    /// A body recorded under another format (an Alertmanager array) is
    /// refused with a reason when the endpoint became PagerDuty, not a panic.
    #[test]
    fn a_routing_key_goes_only_into_an_event() {
        let settings = EndpointSettings {
            url: SecretUrl::new("https://events.example.com/v2/enqueue".to_owned()),
            headers: Default::default(),
            timeout: Duration::from_secs(5),
            format: WebhookFormat::Pagerduty,
            body: None,
            routing_key: Some(SecretText::new("KEY")),
        };
        let hook = WebhookChannel::new("pd", &settings, Duration::from_secs(60)).unwrap();
        let sent = hook.with_routing_key("{\"event_action\":\"trigger\"}").unwrap();
        assert_eq!(serde_json::from_str::<Value>(&sent).unwrap()["routing_key"], "KEY");
        let refused = hook.with_routing_key("[{\"labels\":{}}]");
        assert!(
            matches!(&refused, Err(ChannelError::Permanent(m)) if m.contains("not a PagerDuty event")),
            "{refused:?}"
        );
    }

    #[test]
    fn small_message_is_untouched() {
        let m = message("hello".to_owned());
        let (body, truncated) = body(&m, MAX_BODY_BYTES).unwrap();
        assert!(!truncated);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["text"], "hello");
    }
}
