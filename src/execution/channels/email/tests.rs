//! Unit tests of the e-mail channel's settings, credentials and MIME helpers.
//! Tests only; they must never open a connection to an SMTP server, and
//! never leak the test password into an assertion message.

use super::*;
use crate::config::secret::{SecretText, SecretUrl};

fn settings(url: &str) -> EmailSettings {
    EmailSettings {
        smtp_url: SecretUrl::new(url),
        from: "bi-agent <alerts@example.com>".to_owned(),
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
        max_per_hour: None,
        quiet: Vec::new(),
        quiet_min_severity: crate::config::Severity::Critical,
    }
}

fn error(result: Result<EmailChannel, ChannelError>) -> String {
    match result {
        Err(ChannelError::Permanent(m)) => m,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[test]
fn urls_pick_tls_and_ports() {
    for url in [
        "smtp://mail.example.com",
        "smtp://mail.example.com:2525?tls=required",
        "smtp://mail.example.com?tls=opportunistic",
        "smtp://127.0.0.1:25?tls=none",
        "smtp://[::1]:25?tls=none",
        "smtps://mail.example.com",
        "smtp://mail.example.com/agent.example.com",
    ] {
        assert!(EmailChannel::new(&settings(url)).is_ok(), "{url}");
    }
    for (url, why) in [
        ("smtp://mail.example.com?tls=maybe", "tls=\"maybe\""),
        ("smtps://mail.example.com?tls=none", "always TLS"),
        ("http://mail.example.com", "scheme \"http\""),
        ("smtp://mail.example.com?token=hunter2", "unknown parameter \"token\""),
        ("smtp:nohost", "no host"),
    ] {
        let message = error(EmailChannel::new(&settings(url)));
        assert!(message.contains(why), "{url}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn credentials_need_both_halves_and_never_show() {
    let mut s = settings("smtp://bi:hunter2@mail.example.com");
    let channel = EmailChannel::new(&s).expect("user and password from the URL");
    assert!(!format!("{channel:?}").contains("hunter2"));

    s = settings("smtp://mail.example.com");
    s.username = Some("bi".to_owned());
    assert!(error(EmailChannel::new(&s)).contains("no password"));
    s.password = Some(SecretText::new("hunter2"));
    assert!(EmailChannel::new(&s).is_ok());

    s = settings("smtp://:hunter2@mail.example.com");
    let message = error(EmailChannel::new(&s));
    assert!(
        message.contains("no user name") && !message.contains("hunter2"),
        "{message}"
    );
}

#[test]
fn sender_must_be_an_address() {
    let mut s = settings("smtp://mail.example.com");
    s.from = "not an address".to_owned();
    assert!(error(EmailChannel::new(&s)).contains("`from`"));
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%40b%2Fc").as_deref(), Some("a@b/c"));
    assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
    assert_eq!(percent_decode("%zz").as_deref(), Some("%zz"));
    assert_eq!(percent_decode("%ff"), None);
}

#[test]
fn boundary_avoids_content() {
    let digest = [7u8; 32];
    let first = boundary(&digest, "", "");
    let second = boundary(&digest, &format!("x{first}x"), "");
    assert_ne!(first, second);
    assert_eq!(second, boundary(&digest, &format!("x{first}x"), ""));
}

#[test]
fn the_send_dates_the_message() {
    let now = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 12, 7, 12, 30, 0).unwrap();
    let date = "Date: Mon, 7 Dec 2026 12:30:00 +0000\r\n";
    let rendered = format!("{DATE_PENDING}From: a@b.test\r\n\r\nbody");
    assert_eq!(dated(&rendered, now), format!("{date}From: a@b.test\r\n\r\nbody"));
    // Stored by an earlier version, without any Date: one is put in front.
    assert_eq!(
        dated("From: a@b.test\r\n\r\nbody", now),
        format!("{date}From: a@b.test\r\n\r\nbody")
    );
    // Already dated: left alone.
    let old = "Date: Sun, 6 Dec 2026 08:00:00 +0000\r\nFrom: a@b.test\r\n";
    assert_eq!(dated(old, now), old);
}
