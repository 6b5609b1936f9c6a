//! The e-mail channel against a real SMTP receiver: what it renders is what
//! arrives, byte for byte, at the target alone.
//!
//! Rendering and the failures that need no server (a refused connection, a
//! server that never answers) run everywhere. The delivery tests are
//! `#[ignore]`d under a plain `cargo test`; `.ci/start-smtp.sh` starts the
//! receiver (`.ci/smtp_sink.py`, which files every message under
//! `$BI_AGENT_TEST_MAILDIR/new` and answers `reject-…` with 550 and `defer-…`
//! with 450), and `--include-ignored` runs them. Without the receiver's
//! variables they fail loudly, never pass.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bi_agent::config::{ActionKind, EmailSettings, SecretUrl, Severity};
use bi_agent::execution::channels::Channel;
use bi_agent::execution::channels::email::{CONTENT_TYPE, DATE_PENDING, EmailChannel};
use bi_agent::model::{ChannelError, Message, Rendered, SendRef, Table, Target, Thread};
use mail_parser::{MessageParser, MimeHeaders};

const NEEDS_SMTP: &str = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\"";
const SENDER: &str = "alerts@bi-agent.test";
const HOSTILE: &str = "<script>alert('x')</script>";

fn settings(url: &str) -> EmailSettings {
    EmailSettings {
        smtp_url: SecretUrl::new(url),
        from: format!("bi-agent <{SENDER}>"),
        username: None,
        password: None,
        timeout: Duration::from_secs(10),
        max_per_hour: None,
        quiet: Vec::new(),
        quiet_min_severity: bi_agent::config::Severity::Critical,
    }
}

fn channel(url: &str) -> EmailChannel {
    EmailChannel::new(&settings(url)).unwrap_or_else(|e| panic!("channel for {url} does not build: {e}"))
}

/// A message with everything a notification carries, including a non-ASCII
/// subject and a label value that is hostile HTML.
fn message(action_id: &str) -> Message {
    let mut m = Message::plain(
        action_id.to_owned(),
        ActionKind::Notify,
        Severity::High,
        "Umsatz in Köln −30 %".to_owned(),
        // The second line starts with a dot, which SMTP must stuff and unstuff.
        "Revenue in *Köln* fell 30 % against last week.\n.5 % of orders failed at checkout.".to_owned(),
    );
    m.evidence = vec![
        ("revenue".to_owned(), "8,120.50".to_owned()),
        ("change(revenue, \"7d\")".to_owned(), "-30.2 %".to_owned()),
        ("store".to_owned(), HOSTILE.to_owned()),
    ];
    m.tables = vec![Table {
        title: "Revenue by day".to_owned(),
        columns: vec!["day".to_owned(), "revenue".to_owned()],
        rows: vec![
            vec!["2026-05-01".to_owned(), "11,634.00".to_owned()],
            vec!["2026-05-08".to_owned(), "8,120.50".to_owned()],
        ],
    }];
    m.context = "rule revenue_drop · region=Köln · bi-agent test".to_owned();
    m
}

/// An address no other test (or earlier run) uses, so its file is ours.
fn unique_address(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}@example.test", std::process::id())
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: this test {NEEDS_SMTP}"))
}

fn render(channel: &EmailChannel, message: &Message, address: &str) -> Rendered {
    channel
        .render(message, &Target::Email(address.to_owned()))
        .unwrap_or_else(|e| panic!("render failed: {e}"))
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

#[track_caller]
fn assert_transient(result: Result<impl std::fmt::Debug, ChannelError>, needle: &str) {
    match result {
        Err(ChannelError::Transient { message, .. }) => assert!(message.contains(needle), "{message}"),
        other => panic!("expected a transient error containing {needle:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_permanent(result: Result<impl std::fmt::Debug, ChannelError>, needle: &str) {
    match result {
        Err(ChannelError::Permanent(message)) => assert!(message.contains(needle), "{message}"),
        other => panic!("expected a permanent error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn render_is_deterministic() {
    let address = "ops@example.test";
    let a = render(&channel("smtp://127.0.0.1:1?tls=none"), &message("r/notify/-"), address);
    // A second channel (another process, a dry run then a live run) renders the same bytes.
    let b = render(&channel("smtp://127.0.0.1:2?tls=none"), &message("r/notify/-"), address);
    assert_eq!(a, b);
    assert_eq!(a.content_type, CONTENT_TYPE);
    assert_eq!(a.target, Target::Email(address.to_owned()));
    assert!(!a.truncated);
    assert!(a.body.is_ascii(), "every header and part is 7-bit encoded");
    assert!(!a.body.replace("\r\n", "").contains('\n'), "bare LF in {}", a.body);
    // The date is the send's: a render says where it will be.
    assert!(a.body.starts_with(DATE_PENDING), "{}", a.body);
    assert_eq!(a.body.matches("Date:").count(), 1, "{}", a.body);

    let id = |r: &Rendered| {
        let parsed = MessageParser::default().parse(r.body.as_bytes()).expect("parses");
        parsed.message_id().expect("has a Message-ID").to_owned()
    };
    assert!(id(&a).ends_with("@bi-agent.test"), "{}", id(&a));
    let other_target = render(
        &channel("smtp://127.0.0.1:1?tls=none"),
        &message("r/notify/-"),
        "cfo@example.test",
    );
    let other_action = render(
        &channel("smtp://127.0.0.1:1?tls=none"),
        &message("r/escalate/-"),
        address,
    );
    assert_ne!(id(&a), id(&other_target));
    assert_ne!(id(&a), id(&other_action));
}

#[test]
fn rendered_parts_carry_the_message() {
    let address = "ops@example.test";
    let rendered = render(&channel("smtp://127.0.0.1:1?tls=none"), &message("r/notify/-"), address);
    let parsed = MessageParser::default()
        .parse(rendered.body.as_bytes())
        .expect("parses");
    assert_parts(&parsed, address);
}

/// Every send has its own Message-ID, the same on every attempt; the
/// messages of one conversation reply to the one that opened it.
#[test]
fn sends_are_named_and_threaded_under_the_first() {
    let address = "ops@example.test";
    let channel = channel("smtp://127.0.0.1:1?tls=none");
    let conversation = "revenue_drop{region=Köln}#3".to_owned();
    let sent = |action: &str, repeat: u32, opens: bool| {
        let mut m = message(action);
        m.thread = Thread {
            conversation: conversation.clone(),
            send: SendRef {
                action_id: action.to_owned(),
                episode: 3,
                repeat,
            },
            opens,
            ..Thread::default()
        };
        let rendered = render(&channel, &m, address);
        let parsed = MessageParser::default()
            .parse(rendered.body.as_bytes())
            .expect("parses");
        let id = parsed.message_id().expect("Message-ID").to_owned();
        let replies_to = parsed.in_reply_to().as_text().map(str::to_owned);
        let references = parsed.references().as_text().map(str::to_owned);
        assert_eq!(replies_to, references);
        (id, replies_to)
    };
    let (first, none) = sent("revenue_drop/alert/region=Köln", 0, true);
    assert_eq!(none, None, "the first message opens the thread");
    let (again, _) = sent("revenue_drop/alert/region=Köln", 0, true);
    assert_eq!(first, again, "a retry keeps its id");
    // Repeats with the very same text, and the resolution: each its own id,
    // each under the first.
    let (repeat1, parent1) = sent("revenue_drop/alert/region=Köln", 1, false);
    let (repeat2, parent2) = sent("revenue_drop/alert/region=Köln", 2, false);
    let (resolved, parent3) = sent("revenue_drop/recovered/region=Köln", 0, false);
    let ids: std::collections::BTreeSet<_> = [&first, &repeat1, &repeat2, &resolved].into_iter().collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for parent in [parent1, parent2, parent3] {
        assert_eq!(parent.as_deref(), Some(first.as_str()));
    }
    // Another episode is another thread.
    let mut later = message("revenue_drop/alert/region=Köln");
    later.thread = Thread {
        conversation: "revenue_drop{region=Köln}#4".to_owned(),
        send: SendRef {
            action_id: "revenue_drop/alert/region=Köln".to_owned(),
            episode: 4,
            repeat: 0,
        },
        opens: true,
        ..Thread::default()
    };
    let later = render(&channel, &later, address);
    let later = MessageParser::default().parse(later.body.as_bytes()).expect("parses");
    assert_ne!(later.message_id(), Some(first.as_str()));
}

#[test]
fn oversized_text_is_cut_with_a_note() {
    let mut big = message("r/report/-");
    big.text = "ä".repeat(600_000); // 1.2 MB of two-byte characters
    let rendered = render(&channel("smtp://127.0.0.1:1?tls=none"), &big, "ops@example.test");
    assert!(rendered.truncated);
    let parsed = MessageParser::default()
        .parse(rendered.body.as_bytes())
        .expect("parses");
    let text = parsed.body_text(0).expect("text part");
    assert!(text.contains("[Truncated: this message exceeded"), "note missing");
    assert!(text.len() < 1_100_000, "text part is {} bytes", text.len());
}

#[test]
fn long_lines_stay_within_smtp_limits() {
    // RFC 5321 allows 998 characters per line; servers may refuse or cut longer ones.
    let mut long = message("r/report/-");
    long.subject = "revenue ".repeat(200);
    long.text = "x".repeat(5000);
    long.evidence.push(("label".to_owned(), "y".repeat(3000)));
    long.context = "z ".repeat(1000);
    let rendered = render(&channel("smtp://127.0.0.1:1?tls=none"), &long, "ops@example.test");
    let longest = rendered.body.split("\r\n").map(str::len).max().unwrap_or(0);
    assert!(longest <= 998, "a line of {longest} bytes");
    let parsed = MessageParser::default()
        .parse(rendered.body.as_bytes())
        .expect("parses");
    assert_eq!(parsed.subject(), Some(long.subject.trim_end()));
}

#[tokio::test]
async fn other_targets_are_refused() {
    let channel = channel("smtp://127.0.0.1:1?tls=none");
    assert_eq!(channel.key(), "email");
    for target in [Target::Slack("#ops".to_owned()), Target::Webhook("crm".to_owned())] {
        assert_permanent(channel.render(&message("r/notify/-"), &target), "not an e-mail target");
        let smuggled = Rendered {
            target,
            content_type: CONTENT_TYPE.to_owned(),
            body: "Subject: x\r\n\r\nx\r\n".to_owned(),
            truncated: false,
            idempotency_key: None,
        };
        assert_permanent(channel.send(&smuggled).await, "not an e-mail target");
    }
    assert_permanent(
        channel.render(&message("r/notify/-"), &Target::Email("not an address".to_owned())),
        "not an e-mail address",
    );
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let url = format!("smtp://127.0.0.1:{}?tls=none", closed_port());
    let channel = channel(&url);
    let rendered = render(&channel, &message("r/notify/-"), "ops@example.test");
    assert_transient(channel.send(&rendered).await, "127.0.0.1");
}

#[tokio::test]
async fn a_silent_server_is_an_unknown_outcome_not_a_retry() {
    // Accepts the connection but never greets: only the timeout ends the send.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    let held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        std::future::pending::<()>().await;
        drop(socket);
    });
    let mut s = settings(&format!("smtp://127.0.0.1:{port}?tls=none"));
    s.timeout = Duration::from_millis(300);
    let channel = EmailChannel::new(&s).expect("channel");
    let rendered = render(&channel, &message("r/notify/-"), "ops@example.test");
    let result = channel.send(&rendered).await;
    held.abort();
    // lettre's own per-operation timeout and ours are the same length; either
    // may fire first. Either way the conversation may have got as far as the
    // message, so the outcome is unknown: never sent again blindly.
    match result {
        Err(ChannelError::Unknown(message)) => {
            assert!(
                (message.contains("no answer within") || message.contains("timed out"))
                    && message.contains("may have been accepted"),
                "{message}"
            )
        }
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
}

/// What the receiver stored for `address`: the raw message and its envelope.
struct Delivered {
    raw: Vec<u8>,
    mail_from: String,
    rcpt_tos: Vec<String>,
}

/// Polls `maildir/new` until a message for `address` is there (at most 10 s).
async fn delivered_to(maildir: &Path, address: &str) -> Delivered {
    all_delivered_to(maildir, address, 1).await.remove(0)
}

/// Polls `maildir/new` until `count` messages for `address` are there (at
/// most 10 s), and returns them all.
async fn all_delivered_to(maildir: &Path, address: &str, count: usize) -> Vec<Delivered> {
    let new = maildir.join("new");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = deliveries(&new, address);
        if found.len() >= count {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} messages for {address} in {} within 10 s",
            found.len(),
            new.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message for `address` the receiver has filed in `dir` so far.
fn deliveries(dir: &Path, address: &str) -> Vec<Delivered> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let meta: serde_json::Value = serde_json::from_str(&text).expect("envelope file is JSON");
        let rcpt_tos: Vec<String> = meta["rcpt_tos"]
            .as_array()
            .expect("rcpt_tos")
            .iter()
            .map(|v| v.as_str().expect("address").to_owned())
            .collect();
        if !rcpt_tos.iter().any(|r| r == address) {
            continue;
        }
        // The sink renames the envelope into place before the message.
        let eml: PathBuf = path.with_extension("eml");
        let Ok(raw) = std::fs::read(&eml) else { continue };
        found.push(Delivered {
            raw,
            mail_from: meta["mail_from"].as_str().expect("mail_from").to_owned(),
            rcpt_tos,
        });
    }
    found
}

/// The headers and both parts of a rendered or delivered message.
#[track_caller]
fn assert_parts(parsed: &mail_parser::Message<'_>, address: &str) {
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some(SENDER));
    assert_eq!(from.name(), Some("bi-agent"));
    let to: Vec<_> = parsed.to().expect("To").iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, [address], "To names the target alone");
    assert!(parsed.cc().is_none() && parsed.bcc().is_none());
    assert_eq!(parsed.subject(), Some("Umsatz in Köln −30 %"));
    assert_eq!(
        parsed.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    let root = parsed.content_type().expect("Content-Type");
    assert_eq!((root.ctype(), root.subtype()), ("multipart", Some("alternative")));

    let kinds: Vec<String> = parsed
        .parts
        .iter()
        .filter_map(|p| p.content_type())
        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
        .collect();
    assert_eq!(kinds, ["multipart/alternative", "text/plain", "text/html"]);

    // Decoded parts keep the wire's CRLF line ends.
    let text = parsed.body_text(0).expect("text/plain part").replace("\r\n", "\n");
    for needle in [
        "Umsatz in Köln −30 %",
        "Revenue in Köln fell 30 % against last week.\n.5 % of orders failed at checkout.",
        "  revenue: 8,120.50",
        "  change(revenue, \"7d\"): -30.2 %",
        "  store: <script>alert('x')</script>",
        "day         revenue",
        "2026-05-08  8,120.50",
        "rule revenue_drop · region=Köln · bi-agent test",
    ] {
        assert!(text.contains(needle), "text part lacks {needle:?}:\n{text}");
    }

    let html = parsed.body_html(0).expect("text/html part").replace("\r\n", "\n");
    for needle in [
        "<h2>Umsatz in Köln −30 %</h2>",
        "Revenue in <strong>Köln</strong> fell 30 %",
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
        "change(revenue, &quot;7d&quot;)",
        ">2026-05-08</td>",
    ] {
        assert!(html.contains(needle), "HTML part lacks {needle:?}:\n{html}");
    }
    assert!(
        !html.contains("<script"),
        "hostile label reached the HTML unescaped:\n{html}"
    );
}

#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn delivers_what_it_renders() {
    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let maildir = PathBuf::from(required_env("BI_AGENT_TEST_MAILDIR"));
    let channel = channel(&url);
    let address = unique_address("ops");
    let rendered = render(&channel, &message("revenue_drop/alert/region=Köln"), &address);

    let receipt = channel
        .send(&rendered)
        .await
        .unwrap_or_else(|e| panic!("send failed: {e}"));
    let reference = receipt.reference.expect("the server's reply");
    assert!(
        reference.starts_with("250 ") && reference.contains("queued as"),
        "{reference}"
    );

    let delivered = delivered_to(&maildir, &address).await;
    assert_eq!(delivered.mail_from, SENDER);
    assert_eq!(
        delivered.rcpt_tos,
        [address.as_str()],
        "the envelope names the target alone"
    );
    // Dry-run parity: the receiver got exactly the rendered bytes but for
    // the time of sending in `Date` (SMTP's dot stuffing undone, nothing
    // else added: this receiver writes no Received header, though a real
    // relay would prepend such trace headers).
    let raw = String::from_utf8_lossy(&delivered.raw);
    let (date, rest) = raw.split_once("\r\n").expect("a first line");
    assert_eq!(
        rest,
        rendered.body.strip_prefix(DATE_PENDING).expect("pending date"),
        "delivered bytes differ from the rendered payload"
    );
    let sent = chrono::DateTime::parse_from_rfc2822(date.strip_prefix("Date: ").expect("Date first"))
        .unwrap_or_else(|e| panic!("{date:?} is not an RFC 5322 date: {e}"));
    let age = bi_agent::clock::now().signed_duration_since(sent);
    assert!(age.num_minutes().abs() < 60, "dated {sent}, {age} from now");
    let parsed = MessageParser::default()
        .parse(&delivered.raw)
        .expect("delivered message parses");
    assert_parts(&parsed, &address);
}

#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn rejected_recipient_is_permanent() {
    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let channel = channel(&url);
    let rendered = render(&channel, &message("r/notify/-"), &unique_address("reject"));
    assert_permanent(channel.send(&rendered).await, "550");
}

#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn deferred_recipient_is_transient() {
    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let channel = channel(&url);
    let rendered = render(&channel, &message("r/notify/-"), &unique_address("defer"));
    assert_transient(channel.send(&rendered).await, "450");
}

#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn required_tls_without_starttls_is_permanent() {
    // The test receiver offers no STARTTLS: insisting on it must fail for
    // good rather than fall back to plain text.
    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let url = format!("{url}?tls=required");
    let channel = channel(&url);
    let rendered = render(&channel, &message("r/notify/-"), &unique_address("ops"));
    assert_permanent(channel.send(&rendered).await, "STARTTLS");
}

#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn credentials_never_go_out_without_tls() {
    // No `tls=` in the URL, but a password to send: the receiver offers no
    // STARTTLS, so the send must fail rather than log in in clear text.
    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let mut with_login = settings(&url);
    with_login.username = Some("bi-agent".into());
    with_login.password = Some(bi_agent::config::SecretText::new("hunter2-secret"));
    let channel = EmailChannel::new(&with_login).expect("channel");
    let rendered = render(&channel, &message("r/notify/-"), &unique_address("ops"));
    let result = channel.send(&rendered).await;
    assert!(!format!("{result:?}").contains("hunter2-secret"));
    assert_permanent(result, "STARTTLS");
}

/// A SQLite warehouse at `path` made by `sql`, and a connection to it.
async fn warehouse_with(path: &Path, sql: &'static str) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions as _;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .expect("warehouse");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect("data");
    conn
}

/// The whole path through the agent: a rule fires on a warehouse row whose
/// label carries a card number and a phone number; the e-mail that reaches
/// the SMTP receiver has both parts, the right headers, and neither number.
#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn the_agent_emails_a_firing_alert_redacted() {
    use sqlx::Connection as _;

    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let maildir = PathBuf::from(required_env("BI_AGENT_TEST_MAILDIR"));
    let address = unique_address("agent");
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = dir.path().join("w.db");
    let conn = warehouse_with(
        &warehouse,
        "CREATE TABLE m (account TEXT, value REAL);
         INSERT INTO m VALUES ('card 4111 1111 1111 1111, tel +1 555 123 4567', 20);",
    )
    .await;
    conn.close().await.expect("close");
    let text = format!(
        "[agent]\nname = \"mailer\"\n[memory]\npath = \"{}\"\n\
         [channels.email]\nkind = \"email\"\nsmtp_url = \"{url}\"\nfrom = \"bi-agent@example.test\"\n\
         [roles]\nops = [\"email:{address}\"]\n\
         [sources.m]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT account, value FROM m\"\n\
         [[rules]]\nname = \"big\"\nsource = \"m\"\nwhen = \"value > 10.0\"\nseverity = \"high\"\n\
         [[rules.actions]]\nid = \"mail\"\nkind = \"notify\"\nto = [\"ops\"]\n\
         subject = \"Account {{{{ account }}}} is big\"\nmessage = \"*{{{{ account }}}}* reached {{{{ value | number }}}}.\"\n",
        dir.path().join("memory.db").display(),
        warehouse.display()
    );
    let settings = bi_agent::config::Settings::from_toml_str(&text, Vec::new(), &|_| None).expect("config");
    let agent = bi_agent::agent::Agent::build(settings, false).await.expect("agent");
    let report = agent.cycle().await.expect("cycle");
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let delivered = delivered_to(&maildir, &address).await;
    assert_eq!(delivered.rcpt_tos, vec![address.clone()]);
    let raw = String::from_utf8_lossy(&delivered.raw).into_owned();
    for secret in ["4111 1111 1111 1111", "4111", "555 123 4567"] {
        assert!(!raw.contains(secret), "{secret} reached the mail: {raw}");
    }
    let parsed = mail_parser::MessageParser::default()
        .parse(&delivered.raw)
        .expect("parse");
    let subject = parsed.subject().expect("subject");
    assert!(
        subject.contains("[card redacted]") && subject.contains("[phone redacted]"),
        "{subject}"
    );
    assert_eq!(
        parsed.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some(address.as_str())
    );
    let text_body = parsed.body_text(0).expect("text part");
    let html_body = parsed.body_html(0).expect("html part");
    assert!(text_body.contains("reached 20"), "{text_body}");
    assert!(
        html_body.contains("<strong>") && html_body.contains("[card redacted]"),
        "{html_body}"
    );
    // The next cycle sends nothing more: the instance is still firing and its
    // one effect is recorded as sent.
    let again = agent.cycle().await.expect("cycle");
    assert!(again.outcomes.is_empty(), "{:?}", again.outcomes);
    let effects = agent
        .memory()
        .effects_of(&report.outcomes[0].0.id, false)
        .await
        .expect("effects");
    assert_eq!(effects.len(), 1);
    assert_eq!(effects[0].1, "sent");
}

/// Through the agent: an alert's first e-mail, its repeat and its
/// resolution arrive as three messages with their own ids, dated, the two
/// later ones threaded under the first.
#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn the_agent_threads_an_episode_under_its_first_email() {
    use sqlx::Connection as _;

    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let maildir = PathBuf::from(required_env("BI_AGENT_TEST_MAILDIR"));
    let address = unique_address("thread");
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = dir.path().join("w.db");
    let mut conn = warehouse_with(
        &warehouse,
        "CREATE TABLE m (account TEXT, value REAL); INSERT INTO m VALUES ('acme', 20);",
    )
    .await;
    let text = format!(
        "[agent]\nname = \"mailer\"\n[memory]\npath = \"{}\"\n\
         [guardrails]\nrepeat_interval = \"1m\"\n\
         [channels.email]\nkind = \"email\"\nsmtp_url = \"{url}\"\nfrom = \"bi-agent@example.test\"\n\
         [roles]\nops = [\"email:{address}\"]\n\
         [sources.m]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT account, value FROM m\"\n\
         [[rules]]\nname = \"big\"\nsource = \"m\"\nwhen = \"value > 10.0\"\ngroup = false\n\
         [[rules.actions]]\nid = \"mail\"\nkind = \"notify\"\nto = [\"ops\"]\n\
         message = \"*{{{{ account }}}}* reached {{{{ value | number }}}}.\"\n\
         [[rules.actions]]\nid = \"recovered\"\nkind = \"notify\"\non = \"resolved\"\nto = [\"ops\"]\n\
         message = \"{{{{ account }}}} is back.\"\n",
        dir.path().join("memory.db").display(),
        warehouse.display()
    );
    let settings = bi_agent::config::Settings::from_toml_str(&text, Vec::new(), &|_| None).expect("config");
    // The agent's clock moves by hand: past the repeat interval below.
    let now = std::sync::Arc::new(std::sync::Mutex::new(bi_agent::clock::now()));
    let clock = std::sync::Arc::clone(&now);
    let agent = bi_agent::agent::Agent::build(settings, false)
        .await
        .expect("agent")
        .with_clock(std::sync::Arc::new(move || *clock.lock().expect("clock")));
    let first = agent.cycle().await.expect("cycle");
    assert_eq!(first.outcomes.len(), 1, "{:?}", first.outcomes);
    // Past the repeat interval: the same text again, as a repeat.
    *now.lock().expect("clock") += chrono::Duration::minutes(2);
    let repeat = agent.cycle().await.expect("cycle");
    assert_eq!(repeat.outcomes.len(), 1, "{:?}", repeat.outcomes);
    sqlx::raw_sql("UPDATE m SET value = 5")
        .execute(&mut conn)
        .await
        .expect("update");
    conn.close().await.expect("close");
    let resolved = agent.cycle().await.expect("cycle");
    assert_eq!(resolved.outcomes.len(), 1, "{:?}", resolved.outcomes);

    let delivered = all_delivered_to(&maildir, &address, 3).await;
    let parsed: Vec<_> = (delivered.iter())
        .map(|d| MessageParser::default().parse(&d.raw).expect("parses"))
        .collect();
    let text = |m: &mail_parser::Message<'_>| m.body_text(0).expect("text part").into_owned();
    let opener = (parsed.iter())
        .find(|m| m.in_reply_to().as_text().is_none())
        .expect("one message opens the thread");
    assert!(
        text(opener).contains("acme reached 20"),
        "no markup in plain text: {}",
        text(opener)
    );
    let first_id = opener.message_id().expect("Message-ID");
    assert_eq!(parsed.len(), 3, "three sends, each delivered once");
    let ids: std::collections::BTreeSet<_> = parsed.iter().filter_map(|m| m.message_id()).collect();
    assert_eq!(ids.len(), 3, "each send its own id: {ids:?}");
    for m in &parsed {
        assert!(m.date().is_some(), "dated: {:?}", m.headers());
        if m.message_id() != Some(first_id) {
            assert_eq!(m.in_reply_to().as_text(), Some(first_id));
            assert_eq!(m.references().as_text(), Some(first_id));
        }
    }
    assert!(parsed.iter().any(|m| text(m).contains("acme is back")));
    assert_eq!(parsed.iter().filter(|m| text(m).contains("acme reached 20")).count(), 2);
}

/// A fake SMTP server that takes the whole message, then closes the
/// connection instead of answering `250` to the final dot.
async fn takes_message_then_hangs_up() -> (u16, tokio::task::JoinHandle<usize>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    let task = tokio::spawn(async move {
        let mut taken = 0;
        // One connection per attempt; the agent must not come back.
        while let Ok(Ok((socket, _))) = tokio::time::timeout(Duration::from_secs(3), listener.accept()).await {
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 fake ESMTP\r\n").await.ok();
            let mut in_data = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if in_data {
                    if line == "." {
                        taken += 1;
                        break; // hang up without the final reply
                    }
                    continue;
                }
                let reply: &[u8] = match line.to_ascii_uppercase().split(' ').next().unwrap_or("") {
                    "EHLO" | "HELO" => b"250 fake\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go ahead\r\n"
                    }
                    _ => b"250 ok\r\n",
                };
                write.write_all(reply).await.ok();
            }
        }
        taken
    });
    (port, task)
}

#[tokio::test]
async fn a_message_taken_without_the_final_reply_is_unknown_not_sent_again() {
    let (port, server) = takes_message_then_hangs_up().await;
    let mut s = settings(&format!("smtp://127.0.0.1:{port}?tls=none"));
    s.timeout = Duration::from_secs(2);
    let channel = EmailChannel::new(&s).expect("channel");
    let rendered = render(&channel, &message("r/notify/-"), "ops@example.test");
    let delivery = bi_agent::execution::delivery::Delivery::new(&bi_agent::config::GuardrailSettings {
        retry_attempts: 3,
        retry_max_delay: Duration::from_millis(10),
        ..Default::default()
    });
    let (result, attempts) = delivery.send(&channel, &rendered).await;
    match result {
        Err(ChannelError::Unknown(message)) => assert!(message.contains("may have been accepted"), "{message}"),
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    assert_eq!(attempts, 1);
    assert_eq!(server.await.expect("server"), 1, "the message went out once");
}

/// Through the agent: a group of 40 names 25 in its text, and its e-mail
/// carries all 40 as a CSV attachment (with the labels redacted like the text).
#[tokio::test]
#[ignore = "needs an SMTP receiver: run .ci/run or eval \"$(.ci/start-smtp.sh)\""]
async fn a_group_emails_its_full_list_as_a_csv_attachment() {
    use sqlx::Connection as _;

    let url = required_env("BI_AGENT_TEST_SMTP_URL");
    let maildir = PathBuf::from(required_env("BI_AGENT_TEST_MAILDIR"));
    let address = unique_address("list");
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = dir.path().join("w.db");
    let mut conn = warehouse_with(&warehouse, "CREATE TABLE m (account TEXT, value REAL);").await;
    for n in 0..40 {
        sqlx::query("INSERT INTO m VALUES (?, ?)")
            .bind(format!("a{n:02} tel +1 555 123 45{n:02}"))
            .bind(20.0 + f64::from(n))
            .execute(&mut conn)
            .await
            .expect("row");
    }
    conn.close().await.expect("close");
    let text = format!(
        "[agent]\nname = \"mailer\"\n[memory]\npath = \"{}\"\n\
         [channels.email]\nkind = \"email\"\nsmtp_url = \"{url}\"\nfrom = \"bi-agent@example.test\"\n\
         [roles]\nops = [\"email:{address}\"]\n\
         [sources.m]\nkind = \"sql\"\nurl = \"sqlite://{}?mode=ro\"\nsql = \"SELECT account, value FROM m\"\n\
         [[rules]]\nname = \"big\"\nsource = \"m\"\nwhen = \"value > 10.0\"\n\
         [[rules.actions]]\nid = \"mail\"\nkind = \"notify\"\nto = [\"ops\"]\nmessage = \"{{{{ account }}}} is big\"\n",
        dir.path().join("memory.db").display(),
        warehouse.display()
    );
    let settings = bi_agent::config::Settings::from_toml_str(&text, Vec::new(), &|_| None).expect("config");
    let agent = bi_agent::agent::Agent::build(settings, false).await.expect("agent");
    let report = agent.cycle().await.expect("cycle");
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let delivered = delivered_to(&maildir, &address).await;
    let parsed = MessageParser::default().parse(&delivered.raw).expect("parse");
    let body = parsed.body_text(0).expect("text part");
    assert!(body.contains("… and 15 more"), "{body}");
    assert_eq!(parsed.attachment_count(), 1);
    let attachment = parsed.attachment(0).expect("attachment");
    assert_eq!(attachment.attachment_name(), Some("instances-big-mail-group.csv"));
    assert!(attachment.is_content_type("text", "csv"));
    let csv = String::from_utf8(attachment.contents().to_vec()).expect("utf-8");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 41, "{csv}");
    assert_eq!(lines[0], "state,severity,since,rule,account,value");
    assert!(lines[1..].iter().all(|l| l.starts_with("new,medium,")), "{csv}");
    assert!(csv.contains("[phone redacted]") && !csv.contains("555 123"), "{csv}");
    // Both parts of the text are still there, beside the attachment.
    assert!(parsed.body_html(0).is_some());
    // A second e-mail to the same group (nothing new) is not sent.
    let again = agent.cycle().await.expect("cycle");
    assert!(again.outcomes.is_empty(), "{:?}", again.outcomes);
}
