//! A group message's full list as a CSV file in its Slack thread (bot token
//! only): the message is posted first, then the file goes up with Slack's
//! external upload (`files.getUploadURLExternal`, the bytes to the upload
//! URL Slack gives, `files.completeUploadExternal` into the message's
//! thread). The message says where the list is.
//!
//! The CSV travels inside the rendered payload (under [`LIST_FIELD`], taken
//! out before posting), so a retry from the effect log still has it. The
//! message's delivery never depends on the upload: a failed upload is
//! logged, and the list stays available through `bi-agent actions ID --list`.
//! The token goes only to the configured API; the upload URL gets the CSV
//! and nothing else, and only if Slack's answer names an `https` URL (or
//! one on the configured API's own origin, as a test server's is).

use std::borrow::Cow;

use reqwest::header::CONTENT_TYPE;
use serde_json::{Map, Value, json};

use super::{BLOCKS_MAX, SlackChannel, escape, http};
use crate::config::SecretText;
use crate::execution::list_csv;
use crate::model::{ChannelError, Message, Receipt};

/// Where the list rides in a rendered Web API payload.
const LIST_FIELD: &str = "bi_agent_list";

/// The list to upload.
struct List {
    filename: String,
    csv: String,
    count: u64,
}

/// Adds the full list to a Web API payload, and a line saying where it is.
pub(super) fn attach(map: &mut Map<String, Value>, message: &Message) -> Result<(), ChannelError> {
    let csv = list_csv::csv(&message.list).map_err(|e| ChannelError::Permanent(format!("slack: {e}")))?;
    let filename = list_csv::file_name(message);
    let count = message.list.len();
    note(
        map,
        &format!("Full list of {count} instances: {filename}, in this message's thread"),
    );
    map.insert(
        LIST_FIELD.to_owned(),
        json!({"filename": filename, "csv": csv, "count": count}),
    );
    Ok(())
}

/// Without a bot token no file can go up: the message says where the list is.
pub(super) fn point_to_cli(map: &mut Map<String, Value>, message: &Message) {
    let id = message.action_id.as_str();
    note(
        map,
        &format!(
            "Full list of {} instances: bi-agent actions {id} --list",
            message.list.len()
        ),
    );
}

/// A context line at the end of the blocks (if Slack's block limit allows).
fn note(map: &mut Map<String, Value>, text: &str) {
    if let Some(Value::Array(blocks)) = map.get_mut("blocks")
        && blocks.len() < BLOCKS_MAX
    {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(text)}]}));
    }
}

/// The payload to post (without the list) and the list, if it carries one.
fn take_list(body: &str) -> Result<(Cow<'_, str>, Option<List>), ChannelError> {
    if !body.contains(LIST_FIELD) {
        return Ok((Cow::Borrowed(body), None));
    }
    let mut payload: Value = serde_json::from_str(body)
        .map_err(|e| ChannelError::Permanent(format!("slack: the recorded payload is not JSON: {e}")))?;
    let Some(list) = payload.as_object_mut().and_then(|m| m.remove(LIST_FIELD)) else {
        return Ok((Cow::Borrowed(body), None));
    };
    let list = List {
        filename: list["filename"].as_str().unwrap_or("instances.csv").to_owned(),
        csv: list["csv"].as_str().unwrap_or_default().to_owned(),
        count: list["count"].as_u64().unwrap_or(0),
    };
    Ok((Cow::Owned(payload.to_string()), Some(list)))
}

impl SlackChannel {
    /// Posts a Web API payload; if it carries a list, uploads it into the
    /// posted message's thread afterwards.
    pub(super) async fn post_with_list(
        &self,
        token: &SecretText,
        post_message: &str,
        api: &str,
        body: &str,
    ) -> Result<Receipt, ChannelError> {
        let (body, list) = take_list(body)?;
        let (receipt, answer) = self.send_web_api(token, post_message, &body).await?;
        if let Some(list) = list
            && let Err(e) = self.upload(token, api, &answer, list).await
        {
            // The message is delivered: the upload is told, never retried with it.
            let e = self.scrubber.scrub(e);
            tracing::warn!(error = %e, "Slack: the full list could not be uploaded; the message went out without it");
        }
        Ok(receipt)
    }

    async fn upload(&self, token: &SecretText, api: &str, posted: &Value, list: List) -> Result<(), ChannelError> {
        let missing = |what: &str| ChannelError::Permanent(format!("slack: the answer has no {what}"));
        let channel_id = posted["channel"].as_str().ok_or_else(|| missing("channel id"))?;
        let ts = posted["ts"].as_str().ok_or_else(|| missing("ts"))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filename", &list.filename)
            .append_pair("length", &list.csv.len().to_string())
            .finish();
        let got = self
            .call(
                token,
                &format!("{api}/files.getUploadURLExternal"),
                "application/x-www-form-urlencoded",
                form.into_bytes(),
            )
            .await?;
        let upload_url = got["upload_url"].as_str().ok_or_else(|| missing("upload_url"))?;
        let file_id = got["file_id"].as_str().ok_or_else(|| missing("file_id"))?;
        if !allowed(upload_url, api) {
            return Err(ChannelError::Permanent(
                "slack: the upload URL is neither https nor on the API's origin; not sent".to_owned(),
            ));
        }
        let response = self
            .client()
            .post(upload_url)
            .header(CONTENT_TYPE, "text/csv; charset=utf-8")
            .body(list.csv)
            .send()
            .await
            .map_err(|e| http::request_error("slack upload", e, self.timeout, http::Resend::Unsafe))?;
        if !response.status().is_success() {
            return Err(ChannelError::Permanent(format!(
                "slack: the upload URL answered HTTP {}",
                response.status()
            )));
        }
        let complete = json!({
            "files": [{"id": file_id, "title": list.filename}],
            "channel_id": channel_id,
            "thread_ts": ts,
            "initial_comment": format!("Full list: {} instances (CSV).", list.count),
        });
        self.call(
            token,
            &format!("{api}/files.completeUploadExternal"),
            "application/json; charset=utf-8",
            complete.to_string().into_bytes(),
        )
        .await?;
        Ok(())
    }
}

/// Whether the CSV may go to `upload_url`: https, or the API's own origin.
fn allowed(upload_url: &str, api: &str) -> bool {
    let (Ok(upload), Ok(api)) = (url::Url::parse(upload_url), url::Url::parse(api)) else {
        return false;
    };
    upload.scheme() == "https" || upload.origin() == api.origin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_rides_in_the_payload_and_is_taken_out_before_posting() {
        let body = json!({"channel": "#ops", "text": "x", LIST_FIELD: {"filename": "f.csv", "csv": "a\n", "count": 1}})
            .to_string();
        let (posted, list) = take_list(&body).unwrap();
        let list = list.unwrap();
        assert_eq!(
            (list.filename.as_str(), list.csv.as_str(), list.count),
            ("f.csv", "a\n", 1)
        );
        assert!(!posted.contains(LIST_FIELD), "{posted}");
        let (same, none) = take_list("{\"text\":\"y\"}").unwrap();
        assert!(none.is_none() && same == "{\"text\":\"y\"}");
    }

    #[test]
    fn the_csv_goes_only_to_https_or_the_api_origin() {
        let api = "http://127.0.0.1:9/api";
        assert!(allowed(
            "https://files.slack.com/upload/v1/abc",
            "https://slack.com/api"
        ));
        assert!(allowed("http://127.0.0.1:9/upload/abc", api));
        assert!(!allowed("http://evil.example/upload", api));
        assert!(!allowed("not a url", api));
    }
}
