//! Failures that need no database server: bad URLs and unreachable servers.
//! Their texts name the target by its redacted URL and never show a secret.

use bi_agent::config::Settings;
use bi_agent::model::ObservationStatus;
use bi_agent::perception::{SourceError, build_source};

use super::{assert_failed, observe_sql};

#[tokio::test]
async fn refused_connections_are_connect_errors_not_timeouts() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    for url in [
        "postgres://bi:s3cret-pw@127.0.0.1:1/shop",
        "mysql://bi:s3cret-pw@127.0.0.1:1/shop",
    ] {
        let obs = observe_sql(url, "SELECT 1 AS one", "timeout = \"1s\"").await;
        assert_failed(&obs, ObservationStatus::Error, "cannot connect to ");
        assert_failed(&obs, ObservationStatus::Error, "127.0.0.1:1/shop");
        assert_failed(&obs, ObservationStatus::Error, "refused");
        assert!(!obs.error.unwrap_or_default().contains("s3cret"), "{url}");
    }
}

#[test]
fn a_url_the_driver_cannot_read_is_a_settings_error_without_the_secret() {
    let text = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n\
                [sources.s]\nkind = \"sql\"\nurl = 'postgres://bi:s3cret-pw@db:99999/shop'\nsql = 'SELECT 1'\n";
    let settings = Settings::from_toml_str(text, Vec::new(), &|_| None).expect("config loads");
    match build_source("s", &settings.sources["s"]) {
        Err(error @ SourceError::Settings(_)) => {
            let text = error.to_string();
            assert!(text.contains("cannot read database URL"), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        Err(other) => panic!("expected a settings error, got {other}"),
        Ok(_) => panic!("expected a settings error"),
    }
}
