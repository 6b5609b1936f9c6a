//! Slack: renders a [`Message`] as a Block Kit payload and posts it, through
//! an incoming webhook or the Web API (`chat.postMessage` with a bot token).
//!
//! Rendering is pure: the JSON text in [`Rendered::body`] is byte for byte what
//! [`SlackChannel::send`] posts, so a dry run records exactly what a live run
//! would send. Everything that comes from data (subject, text, labels, values,
//! table cells, context) is escaped for Slack's mrkdwn, so a label such as
//! `<!channel>` is shown, never executed as a mention.
//!
//! This module must never put the webhook URL or the token into a payload,
//! an error or `Debug` output, and never posts anywhere but the configured
//! webhook or API URL.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

mod upload;

use super::Channel;
use super::http::{self, Scrubber};
use crate::config::{ExposeSecret, SecretText, SecretUrl, Severity, SlackSettings};
use crate::model::{ChannelError, Message, Receipt, Rendered, Table, Target};

/// Slack's limit on a section's text.
const SECTION_MAX: usize = 3000;
/// Slack's limit on one field of a section.
const FIELD_MAX: usize = 2000;
/// Slack's limit on the fields of one section.
const FIELDS_MAX: usize = 10;
/// Slack's limit on the blocks of one message.
const BLOCKS_MAX: usize = 50;
/// The subject is one line; longer subjects stop being headlines.
const SUBJECT_MAX: usize = 250;
/// The plain `text` fallback (notifications, screen readers): Slack advises
/// staying under 4,000 characters.
const FALLBACK_MAX: usize = 4000;
/// All table text together: past this, a chat message is no longer read;
/// the rest of the tables is left out (and said so).
const TABLES_TOTAL_MAX: usize = 20_000;
/// Slack's limit on the elements of an actions block.
const ACTIONS_MAX: usize = 25;
/// Slack's limit on a button's text.
const BUTTON_TEXT_MAX: usize = 75;
/// Appended where text was cut.
const TRUNCATED: &str = "… (truncated)";

/// The Slack channel (`kind = "slack"`).
pub struct SlackChannel {
    client: reqwest::Client,
    mode: Mode,
    timeout: Duration,
    scrubber: Scrubber,
}

/// How messages reach Slack.
enum Mode {
    /// An incoming webhook: posts to the webhook's own channel.
    Webhook(SecretUrl),
    /// The Web API: `chat.postMessage` to the target's channel.
    WebApi {
        /// The bot token.
        token: SecretText,
        /// `{api_url}/chat.postMessage` (not a secret).
        post_message: String,
        /// `{api_url}` (not a secret), for the file upload methods.
        api: String,
    },
}

impl SlackChannel {
    /// Builds the channel from its settings: exactly one of `webhook_url`
    /// and `token` (as config validation requires), one HTTP client with the
    /// configured time limit.
    pub fn new(settings: &SlackSettings) -> Result<Self, ChannelError> {
        let mut scrubber = Scrubber::default();
        let mode = match (&settings.webhook_url, &settings.token) {
            (Some(url), None) => {
                scrubber.add_url(url.expose());
                Mode::Webhook(url.clone())
            }
            (None, Some(token)) => {
                scrubber.add(token.expose());
                let api = settings.api_url.trim_end_matches('/').to_owned();
                Mode::WebApi {
                    token: token.clone(),
                    post_message: format!("{api}/chat.postMessage"),
                    api,
                }
            }
            (None, None) => {
                return Err(ChannelError::Permanent(
                    "slack: needs `webhook_url` (incoming webhook) or `token` (bot token)".to_owned(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ChannelError::Permanent(
                    "slack: give either `webhook_url` or `token`, not both".to_owned(),
                ));
            }
        };
        Ok(Self {
            client: http::client("slack", settings.timeout, http::Resend::Unsafe)?,
            mode,
            timeout: settings.timeout,
            scrubber,
        })
    }

    /// Posts through the incoming webhook: any 2xx means delivered.
    async fn send_webhook(&self, url: &SecretUrl, body: &str) -> Result<Receipt, ChannelError> {
        let response = self
            .client
            .post(url.expose())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| http::request_error("slack", e, self.timeout, http::Resend::Unsafe))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Receipt::default());
        }
        let headers = response.headers().clone();
        // The body only refines the error message; failing to read it must
        // not turn a clear status into a vaguer error.
        let body = http::read_capped(response, 1024).await.unwrap_or_default();
        Err(http::status_error("slack", status, &headers, &body))
    }

    /// Posts through `chat.postMessage`: the HTTP status and then the JSON
    /// answer's `ok` decide; the message `ts` becomes the receipt, and the
    /// answer (with the channel's id) is returned for what follows.
    async fn send_web_api(
        &self,
        token: &SecretText,
        post_message: &str,
        body: &str,
    ) -> Result<(Receipt, Value), ChannelError> {
        let answer = self
            .call(
                token,
                post_message,
                "application/json; charset=utf-8",
                body.to_owned().into_bytes(),
            )
            .await?;
        let receipt = Receipt {
            reference: answer.get("ts").and_then(Value::as_str).map(str::to_owned),
        };
        Ok((receipt, answer))
    }

    /// One Web API call with the bot token: the HTTP status, then the JSON
    /// answer's `ok`, decide; the answer is returned when it is `ok`.
    pub(super) async fn call(
        &self,
        token: &SecretText,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, ChannelError> {
        let mut authorization = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| ChannelError::Permanent("slack: the token is not a valid header value".to_owned()))?;
        authorization.set_sensitive(true);
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, content_type)
            .header(AUTHORIZATION, authorization)
            .body(body)
            .send()
            .await
            .map_err(|e| http::request_error("slack", e, self.timeout, http::Resend::Unsafe))?;
        let status = response.status();
        let headers = response.headers().clone();
        // The request was answered: a body cut short now says nothing about
        // whether Slack posted it.
        let answer = http::read_capped(response, http::MAX_RESPONSE_BYTES)
            .await
            .map_err(|_| {
                ChannelError::Unknown(format!(
                    "slack: HTTP {status}, but the answer was cut short; it may have been posted"
                ))
            })?;
        if !status.is_success() {
            return Err(http::status_error("slack", status, &headers, &answer));
        }
        let answer: Value = serde_json::from_slice(&answer).map_err(|_| {
            // Slack answered 2xx, so the message may well have been posted:
            // not retrying keeps "at most once".
            ChannelError::Permanent(format!("slack: HTTP {status} with an answer that is not JSON"))
        })?;
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer);
        }
        let code = answer.get("error").and_then(Value::as_str).unwrap_or("unknown_error");
        let code = http::error_code(code.as_bytes()).unwrap_or("unknown_error");
        match code {
            // Slack's own "try again later" answers; everything else (bad
            // channel, bad token, bad blocks) will not change by retrying.
            "ratelimited" | "service_unavailable" => Err(ChannelError::Transient {
                message: format!("slack: {code}"),
                retry_after: http::retry_after(&headers),
            }),
            _ => Err(ChannelError::Permanent(format!("slack: {code}"))),
        }
    }

    /// The client, for the file upload's own request to Slack's upload URL.
    pub(super) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl fmt::Debug for SlackChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the host: a webhook URL's path is its secret.
        let (mode, host) = match &self.mode {
            Mode::Webhook(url) => ("webhook", http::host_of(url.expose())),
            Mode::WebApi { post_message, .. } => ("web_api", http::host_of(post_message)),
        };
        f.debug_struct("SlackChannel")
            .field("mode", &mode)
            .field("host", &host)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Channel for SlackChannel {
    fn key(&self) -> String {
        "slack".to_owned()
    }

    fn render(&self, message: &Message, target: &Target) -> Result<Rendered, ChannelError> {
        let Target::Slack(channel) = target else {
            return Err(ChannelError::Permanent(format!("slack: cannot deliver to {target}")));
        };
        let (mut payload, truncated) = payload(message);
        if matches!(self.mode, Mode::WebApi { .. })
            && let Value::Object(map) = &mut payload
        {
            map.insert("channel".to_owned(), Value::String(channel.clone()));
            // A repeat or resolution goes in the first message's thread; a
            // resolution is shown in the channel too. Only a `ts` as Slack
            // gives it (digits and a dot) is used.
            let thread = &message.thread;
            if let Some(ts) = (thread.reply_to.as_ref()).filter(|t| t.chars().all(|c| c.is_ascii_digit() || c == '.')) {
                map.insert("thread_ts".to_owned(), Value::String(ts.clone()));
                if thread.resolves {
                    map.insert("reply_broadcast".to_owned(), Value::Bool(true));
                }
            }
            // The full list goes up as a CSV file in the message's thread.
            if message.cut() {
                upload::attach(map, message)?;
            }
        } else if message.cut()
            && let Value::Object(map) = &mut payload
        {
            upload::point_to_cli(map, message);
        }
        let body = serde_json::to_string(&payload)
            .map_err(|e| ChannelError::Permanent(format!("slack: cannot encode the payload: {e}")))?;
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
            let result = match &self.mode {
                Mode::Webhook(url) => self.send_webhook(url, &rendered.body).await,
                Mode::WebApi {
                    token,
                    post_message,
                    api,
                } => self.post_with_list(token, post_message, api, &rendered.body).await,
            };
            result.map_err(|e| self.scrubber.scrub(e))
        })
    }
}

/// The Block Kit payload (without `channel`) and whether anything was cut.
fn payload(message: &Message) -> (Value, bool) {
    let mut truncated = false;
    let mut blocks = Vec::new();

    // Headline: severity marker and the subject in bold. `*` inside would end
    // the bold early, and a headline is one line.
    let subject = one_line(&message.subject).replace('*', "");
    let (subject, cut) = truncate(&escape(subject.trim()), SUBJECT_MAX);
    truncated |= cut;
    // A resolution is marked as one, not with the severity of what fired.
    let marker = if message.thread.resolves {
        RESOLVED
    } else {
        marker(message.severity)
    };
    let headline = if subject.is_empty() {
        marker.to_owned()
    } else {
        format!("{marker} *{subject}*")
    };
    blocks.push(section(headline));

    // Without a subject of its own the headline is the text's first line:
    // it is not shown twice.
    let body = without_headline(&message.text, &message.subject);
    if !body.trim().is_empty() {
        let (text, cut) = truncate(&escape(body), SECTION_MAX);
        truncated |= cut;
        blocks.push(section(text));
    }

    if !message.evidence.is_empty() {
        let (fields, cut) = fields(&message.evidence);
        truncated |= cut;
        blocks.push(json!({ "type": "section", "fields": fields }));
    }

    // Configured links as buttons (a button's URL is opened, not shown as
    // text, and Slack allows 3,000 characters in it).
    let buttons = (!message.links.is_empty()).then(|| {
        let elements: Vec<Value> = (message.links.iter().take(ACTIONS_MAX))
            .filter(|l| l.url.chars().count() <= 3000)
            .map(|l| {
                let (label, _) = truncate(&one_line(&l.label), BUTTON_TEXT_MAX);
                json!({ "type": "button", "text": { "type": "plain_text", "text": label }, "url": l.url })
            })
            .collect();
        json!({ "type": "actions", "elements": elements })
    });
    let context = (!message.context.trim().is_empty()).then(|| {
        let (text, cut) = truncate(&escape(&message.context), SECTION_MAX);
        truncated |= cut;
        json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": text }] })
    });

    // Tables fill what is left of the block budget, keeping one block for
    // the context and one for a "left out" notice.
    let room = BLOCKS_MAX - blocks.len() - usize::from(context.is_some()) - usize::from(buttons.is_some()) - 1;
    let mut table_chars = 0;
    let mut shown = 0;
    for table in &message.tables {
        if shown == room || table_chars >= TABLES_TOTAL_MAX {
            break;
        }
        let (text, cut) = table_block(table);
        truncated |= cut;
        table_chars += text.chars().count();
        blocks.push(section(text));
        shown += 1;
    }
    if shown < message.tables.len() {
        truncated = true;
        let left_out = message.tables.len() - shown;
        blocks.push(section(format!("{TRUNCATED}: {left_out} more table(s) not shown")));
    }
    blocks.extend(buttons);
    blocks.extend(context);

    let fallback = if body.trim().is_empty() {
        message.subject.clone()
    } else {
        format!("{}\n{}", message.subject, body.trim_start())
    };
    let (fallback, cut) = truncate(&escape(&fallback), FALLBACK_MAX);
    truncated |= cut;

    let payload = json!({
        "text": fallback,
        "blocks": blocks,
        // Links in data-derived text must not make Slack fetch them.
        "unfurl_links": false,
        "unfurl_media": false,
    });
    (payload, truncated)
}

/// The marker of a message reporting a resolution.
const RESOLVED: &str = "✅";

/// `text` without its first non-empty line when that line is the subject
/// (the subject was taken from it), `*bold*` markers aside.
fn without_headline<'a>(text: &'a str, subject: &str) -> &'a str {
    let start = text.len() - text.trim_start().len();
    let rest = &text[start..];
    let (first, after) = rest.split_once('\n').unwrap_or((rest, ""));
    let plain = |s: &str| s.replace('*', "").trim().to_owned();
    if !subject.trim().is_empty() && plain(first) == plain(subject) {
        after
    } else {
        text
    }
}

/// The severity marker shown before the subject.
fn marker(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "🔴",
        Severity::High => "🟠",
        Severity::Medium => "🟡",
        Severity::Low => "🔵",
        Severity::Info => "⚪",
    }
}

/// A mrkdwn section.
fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

/// The evidence as section fields: `*name*` over the value, at most Slack's
/// ten; when there are more, the tenth says how many were left out.
fn fields(evidence: &[(String, String)]) -> (Vec<Value>, bool) {
    let field = |name: &str, value: &str| {
        let name = escape(&one_line(name).replace('*', ""));
        let (text, cut) = truncate(&format!("*{}*\n{}", name.trim(), escape(value)), FIELD_MAX);
        (json!({ "type": "mrkdwn", "text": text }), cut)
    };
    let too_many = evidence.len() > FIELDS_MAX;
    let shown = if too_many { FIELDS_MAX - 1 } else { evidence.len() };
    let mut truncated = too_many;
    let mut out = Vec::with_capacity(FIELDS_MAX);
    for (name, value) in &evidence[..shown] {
        let (f, cut) = field(name, value);
        truncated |= cut;
        out.push(f);
    }
    if too_many {
        let left_out = evidence.len() - shown;
        out.push(json!({ "type": "mrkdwn", "text": format!("{TRUNCATED}\n{left_out} more") }));
    }
    (out, truncated)
}

/// A table as its bold title over a monospace code block, columns padded to
/// line up; rows that do not fit in one section are left out (and said so).
fn table_block(table: &Table) -> (String, bool) {
    // Backticks in data would close the code block early.
    let clean = |s: &str| one_line(s).replace('`', "'");
    let columns: Vec<String> = table.columns.iter().map(|c| clean(c)).collect();
    let rows: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let count = columns.len().max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0; count];
    for row in std::iter::once(&columns).chain(&rows) {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    // Alignment is computed on the text as shown; escaping comes after, as
    // Slack displays `&lt;` as one character.
    let line = |row: &[String]| {
        let padded: Vec<String> = (0..count)
            .map(|i| {
                let cell = row.get(i).map_or("", String::as_str);
                format!("{cell:<width$}", width = widths[i])
            })
            .collect();
        escape(padded.join("  ").trim_end())
    };

    let title = escape(&one_line(&table.title).replace('*', ""));
    let head = if title.trim().is_empty() {
        "```\n".to_owned()
    } else {
        format!("*{}*\n```\n", title.trim())
    };
    let tail = "\n```";
    // Room for the "rows left out" line, so it always fits.
    let budget = SECTION_MAX - head.chars().count() - tail.len() - 64;

    let mut lines = Vec::new();
    let mut used = 0;
    if !columns.is_empty() {
        let header = line(&columns);
        let rule = "-".repeat(header.chars().count().min(budget / 2));
        used += header.chars().count() + rule.chars().count() + 2;
        lines.push(header);
        lines.push(rule);
    }
    let mut shown = 0;
    for row in &rows {
        let text = line(row);
        let (text, _) = truncate(&text, budget / 2);
        let len = text.chars().count() + 1;
        if used + len > budget {
            break;
        }
        used += len;
        lines.push(text);
        shown += 1;
    }
    if rows.is_empty() {
        lines.push("(no rows)".to_owned());
    }
    let truncated = shown < rows.len();
    if truncated {
        lines.push(format!("{TRUNCATED}: {} more row(s)", rows.len() - shown));
    }
    (format!("{head}{}{tail}", lines.join("\n")), truncated)
}

/// Escapes the three characters Slack's mrkdwn treats as control characters,
/// so data cannot form links or mentions (`<!channel>`, `<@U123>`).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Line breaks and tabs as spaces, for one-line places (headline, field names, cells).
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Cuts escaped text to `max` characters (Slack counts characters), ending
/// with the truncation marker and never in the middle of an `&…;` entity.
fn truncate(text: &str, max: usize) -> (String, bool) {
    if text.chars().count() <= max {
        return (text.to_owned(), false);
    }
    let keep = max.saturating_sub(TRUNCATED.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut.truncate(amp);
    }
    cut.push_str(TRUNCATED);
    (cut, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_an_entity() {
        // Keeping 32 characters would end in `&l`: the partial entity goes.
        let text = format!("{}&lt;{}", "a".repeat(30), "b".repeat(30));
        let (cut, truncated) = truncate(&text, 32 + TRUNCATED.chars().count());
        assert!(truncated);
        assert_eq!(cut, format!("{}{TRUNCATED}", "a".repeat(30)));
    }

    #[test]
    fn escape_defuses_mentions() {
        assert_eq!(escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }
}
