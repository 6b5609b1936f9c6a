//! HTTP sources against real HTTP servers on 127.0.0.1 (wiremock), configured
//! exactly as a user would: TOML text → `Settings` → `build_source` → `observe`.

use std::sync::Arc;
use std::time::Duration;

use bi_agent::config::Settings;
use bi_agent::model::{Observation, ObservationStatus};
use bi_agent::perception::{Source, build_source, build_sources, gather, observe};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BASE: &str = r#"
[agent]
name = "http-test"
[memory]
path = "/tmp/bi-agent-http-test-unused.db"
"#;

const TOKEN: &str = "s3cr3t-token-4711";

/// Loads a config whose `[sources.web]` table holds `body` (plus `kind = "http"`),
/// with `${TOKEN}` available, and builds that source.
fn web_source(body: &str) -> Arc<dyn Source> {
    let settings = load(&format!("[sources.web]\nkind = \"http\"\n{body}"));
    build_source("web", &settings.sources["web"]).expect("the source builds")
}

fn load(sources: &str) -> Settings {
    let text = format!("{BASE}\n{sources}");
    Settings::from_toml_str(&text, Vec::new(), &|name| (name == "TOKEN").then(|| TOKEN.to_owned()))
        .unwrap_or_else(|e| panic!("config loads: {e}"))
}

async fn observe_web(body: &str) -> Observation {
    observe(web_source(body).as_ref(), Default::default()).await
}

async fn serve(route: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn error_text(observation: &Observation) -> &str {
    observation.error.as_deref().unwrap_or("")
}

#[tokio::test]
async fn nested_rows_read_through_rows_and_fields_pointers() {
    let server = serve(
        "/engagement",
        ResponseTemplate::new(200).set_body_json(json!({
            "meta": {"generated": "today"},
            "data": [
                {"region": "Northeast", "bounce_rate": 0.41, "funnel": {"overall_rate": 0.031, "steps": [1, 2]}},
                {"region": "West", "bounce_rate": 0.38, "funnel": {"overall_rate": 0.044}},
                {"region": "South", "funnel": {}}
            ]
        })),
    )
    .await;
    let obs = observe_web(&format!(
        r#"url = "{}/engagement"
rows = "/data"
fields = {{ region = "/region", bounce_rate = "/bounce_rate", conversion = "/funnel/overall_rate" }}
"#,
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    assert_eq!(obs.rows.len(), 3);
    assert!(obs.history.is_empty());
    assert!((obs.confidence - 0.85).abs() < 1e-9, "default HTTP confidence");
    let northeast = &obs.rows[0];
    assert_eq!(northeast.labels["region"], "Northeast");
    assert_eq!(northeast.values["bounce_rate"], 0.41);
    assert_eq!(northeast.values["conversion"], 0.031);
    assert!(northeast.at.is_none());
    assert_eq!(obs.rows[1].values["conversion"], 0.044);
    // Fields missing from a row are simply absent from it.
    let south = &obs.rows[2];
    assert_eq!(south.labels["region"], "South");
    assert!(south.values.is_empty(), "{south:?}");
}

#[tokio::test]
async fn whole_body_is_one_row_of_its_top_level_scalars() {
    let server = serve(
        "/kpis",
        ResponseTemplate::new(200).set_body_json(json!({
            "visitors": 1200,
            "bounce_rate": 0.41,
            "site": "shop",
            "healthy": true,
            "ratio_text": "0.42",
            "unknown": null,
            "breakdown": {"mobile": 700},
            "series": [1, 2, 3]
        })),
    )
    .await;
    let obs = observe_web(&format!("url = \"{}/kpis\"\n", server.uri())).await;

    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    assert_eq!(obs.rows.len(), 1);
    let row = &obs.rows[0];
    assert_eq!(row.values["visitors"], 1200.0);
    assert_eq!(row.values["bounce_rate"], 0.41);
    assert_eq!(row.values["healthy"], 1.0);
    assert_eq!(row.labels["site"], "shop");
    // A number sent as a string stays a label: no guessing.
    assert_eq!(row.labels["ratio_text"], "0.42");
    assert_eq!(row.values.len(), 3, "{row:?}");
    assert_eq!(row.labels.len(), 2, "{row:?}");
}

#[tokio::test]
async fn configured_headers_and_user_agent_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/secure"))
        .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("X-Team", "revenue"))
        .and(header("User-Agent", concat!("bi-agent/", env!("CARGO_PKG_VERSION"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"orders": 12})))
        .expect(1)
        .mount(&server)
        .await;

    let obs = observe_web(&format!(
        "url = \"{}/secure\"\nheaders = {{ Authorization = \"Bearer ${{TOKEN}}\", X-Team = \"revenue\" }}\n",
        server.uri()
    ))
    .await;

    // Without the headers wiremock answers 404, which would be an error.
    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    assert_eq!(obs.rows[0].values["orders"], 12.0);
}

#[tokio::test]
async fn secrets_never_reach_error_text_or_debug_output() {
    // A badly behaved server that echoes the credentials in its error page.
    let server = serve(
        "/secure",
        ResponseTemplate::new(500).set_body_string(format!(
            "auth backend failed for 'Bearer {TOKEN}' (key {TOKEN}) on /secure?api_key={TOKEN}"
        )),
    )
    .await;
    let source = web_source(&format!(
        "url = \"{}/secure?api_key=${{TOKEN}}\"\nheaders = {{ Authorization = \"Bearer ${{TOKEN}}\" }}\n",
        server.uri()
    ));
    let obs = observe(source.as_ref(), Default::default()).await;

    assert_eq!(obs.status, ObservationStatus::Error);
    let error = error_text(&obs);
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(error.contains("auth backend failed"), "{error}");
    assert!(error.contains("[redacted]"), "{error}");
    let printed = format!("{obs:?} {error}");
    assert!(!printed.contains(TOKEN), "{printed}");

    // Nor in a transport error, whose text reqwest would give the full URL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let obs = observe_web(&format!(
        "url = \"http://user:{TOKEN}@127.0.0.1:{port}/x?api_key=${{TOKEN}}\"\nheaders = {{ X-Api-Key = \"${{TOKEN}}\" }}\n"
    ))
    .await;
    assert_eq!(obs.status, ObservationStatus::Error);
    let printed = format!("{obs:?}");
    assert!(!printed.contains(TOKEN), "{printed}");
}

#[tokio::test]
async fn server_error_names_status_and_quotes_the_body() {
    let server = serve(
        "/kpis",
        ResponseTemplate::new(500).set_body_string(format!("database is down\n{}", "stack frame ".repeat(200))),
    )
    .await;
    let obs = observe_web(&format!("url = \"{}/kpis\"\n", server.uri())).await;

    assert_eq!(obs.status, ObservationStatus::Error);
    assert_eq!(obs.confidence, 0.0);
    let error = error_text(&obs);
    assert!(
        error.starts_with(&format!("HTTP 500 from {}/…: database is down", server.uri())),
        "{error}"
    );
    assert!(error.len() < 400, "the body is quoted, not copied: {error}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_error() {
    let server = serve(
        "/kpis",
        ResponseTemplate::new(200).set_body_raw("<html><body>Login</body></html>", "text/html"),
    )
    .await;
    let obs = observe_web(&format!("url = \"{}/kpis\"\n", server.uri())).await;

    assert_eq!(obs.status, ObservationStatus::Error);
    let error = error_text(&obs);
    assert!(error.contains("not JSON"), "{error}");
    assert!(error.contains("text/html"), "{error}");
    assert!(error.contains("<html>"), "{error}");
}

#[tokio::test]
async fn a_slow_server_is_a_timeout() {
    let server = serve(
        "/slow",
        ResponseTemplate::new(200)
            .set_body_json(json!({"n": 1}))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let obs = observe_web(&format!("url = \"{}/slow\"\ntimeout = \"200ms\"\n", server.uri())).await;

    assert_eq!(obs.status, ObservationStatus::Timeout, "{obs:?}");
    assert!(obs.latency < Duration::from_secs(2), "{:?}", obs.latency);
    assert!(error_text(&obs).contains("timed out"), "{obs:?}");
}

#[tokio::test]
async fn a_closed_port_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let obs = observe_web(&format!("url = \"http://127.0.0.1:{port}/kpis\"\n")).await;

    assert_eq!(obs.status, ObservationStatus::Error, "{obs:?}");
    let error = error_text(&obs);
    assert!(
        error.starts_with(&format!("cannot connect to http://127.0.0.1:{port}/…")),
        "{error}"
    );
}

#[tokio::test]
async fn a_redirect_to_another_server_is_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"n": 1})))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = serve(
        "/kpis",
        ResponseTemplate::new(302).insert_header("Location", format!("{}/kpis", elsewhere.uri())),
    )
    .await;
    let obs = observe_web(&format!(
        "url = \"{}/kpis\"\nheaders = {{ X-Api-Key = \"${{TOKEN}}\" }}\n",
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Error, "{obs:?}");
    let error = error_text(&obs);
    assert!(
        error.contains("HTTP 302") && error.contains("redirect not followed"),
        "{error}"
    );
}

#[tokio::test]
async fn prometheus_vector_rows_carry_series_labels() {
    let promql = r#"sum by (region) (rate(orders_total{status="paid"}[5m]))"#;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", promql))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"__name__": "orders", "region": "West"}, "value": [1_763_600_000.123, "12.5"]},
                {"metric": {"region": "East"}, "value": [1_763_600_000.123, "7"]},
                {"metric": {"region": "North"}, "value": [1_763_600_000.123, "NaN"]}
            ]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let obs = observe_web(&format!(
        "url = \"{}/api/v1/query\"\nformat = \"prometheus\"\nquery = '{promql}'\n",
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    assert_eq!(obs.rows.len(), 2, "the NaN sample is skipped: {obs:?}");
    let west = obs
        .rows
        .iter()
        .find(|r| r.labels.get("region").map(String::as_str) == Some("West"))
        .expect("a West row");
    assert_eq!(west.values["value"], 12.5);
    assert_eq!(
        west.labels["__name__"], "orders",
        "the metric name is a label: {west:?}"
    );
    assert!(west.at.is_none(), "no `time`: a current value");
}

#[tokio::test]
async fn series_differing_only_by_metric_name_stay_apart_and_true_duplicates_are_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", r#"{__name__=~"shop_.*"}"#))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"__name__": "shop_orders", "region": "West"}, "value": [1_763_600_000, "12"]},
                {"metric": {"__name__": "shop_visits", "region": "West"}, "value": [1_763_600_000, "900"]}
            ]}
        })))
        .mount(&server)
        .await;
    let obs = observe_web(&format!(
        "url = \"{}/api/v1/query\"\nformat = \"prometheus\"\nquery = '{{__name__=~\"shop_.*\"}}'\n",
        server.uri()
    ))
    .await;
    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    assert_eq!(obs.rows.len(), 2, "two series, two rows: {obs:?}");

    // A JSON source whose rows share a label set: an error naming it, not a guess.
    let rows = json!({"data": [{"region": "West", "n": 1}, {"region": "West", "n": 2}]});
    let server = serve("/kpis", ResponseTemplate::new(200).set_body_json(rows)).await;
    let obs = observe_web(&format!("url = \"{}/kpis\"\nrows = \"/data\"\n", server.uri())).await;
    assert_eq!(obs.status, ObservationStatus::Error, "{obs:?}");
    let error = obs.error.unwrap();
    assert!(error.contains("two rows with the same labels {region=West}"), "{error}");
}

#[tokio::test]
async fn prometheus_scalar_is_one_row() {
    let server = serve(
        "/api/v1/query",
        ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "scalar", "result": [1_763_600_000, "0.973"]}
        })),
    )
    .await;
    let obs = observe_web(&format!(
        "url = \"{}/api/v1/query\"\nformat = \"prometheus\"\nquery = \"scalar(up)\"\n",
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    assert_eq!(obs.rows.len(), 1);
    assert!(obs.rows[0].labels.is_empty());
    assert_eq!(obs.rows[0].values["value"], 0.973);
}

#[tokio::test]
async fn prometheus_matrix_splits_into_current_and_history() {
    let server = serve(
        "/api/v1/query_range",
        ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "matrix", "result": [
                {"metric": {"region": "West"}, "values": [
                    [1_763_600_000, "10"], [1_763_603_600, "11"], [1_763_607_200, "12"]]},
                {"metric": {"region": "East"}, "values": [
                    [1_763_600_000, "20"], [1_763_603_600, "21"], [1_763_607_200, "+Inf"]]}
            ]}
        })),
    )
    .await;
    let obs = observe_web(&format!(
        "url = \"{}/api/v1/query_range?start=1763600000&end=1763607200&step=3600\"\nformat = \"prometheus\"\nquery = \"sum by (region) (orders)\"\n",
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    let current: Vec<(&str, f64, i64)> = obs
        .rows
        .iter()
        .map(|r| {
            (
                r.labels["region"].as_str(),
                r.values["value"],
                r.at.map(|t| t.timestamp()).unwrap_or_default(),
            )
        })
        .collect();
    // Newest finite sample per label set is current; the +Inf sample is skipped.
    assert_eq!(
        current,
        vec![("East", 21.0, 1_763_603_600), ("West", 12.0, 1_763_607_200)]
    );
    assert_eq!(obs.history.len(), 3);
    assert_eq!(obs.value_count(), 5);
}

#[tokio::test]
async fn prometheus_error_status_carries_its_message() {
    let server = serve(
        "/api/v1/query",
        ResponseTemplate::new(200).set_body_json(json!({
            "status": "error",
            "errorType": "bad_data",
            "error": "invalid parameter \"query\": 1:5: parse error: unexpected end of input"
        })),
    )
    .await;
    let obs = observe_web(&format!(
        "url = \"{}/api/v1/query\"\nformat = \"prometheus\"\nquery = \"sum(\"\n",
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Error);
    let error = error_text(&obs);
    assert!(error.contains("Prometheus error (bad_data)"), "{error}");
    assert!(error.contains("parse error: unexpected end of input"), "{error}");
}

#[tokio::test]
async fn a_time_field_turns_rows_into_a_series() {
    let server = serve(
        "/daily",
        ResponseTemplate::new(200).set_body_json(json!({"days": [
            {"day": "2026-11-18", "region": "West", "revenue": 100.0},
            {"day": "2026-11-20", "region": "West", "revenue": 120.0},
            {"day": "2026-11-19", "region": "West", "revenue": 110.0},
            {"day": "2026-11-19T00:00:00Z", "region": "East", "revenue": 50.0},
            {"day": 1_795_132_800, "region": "East", "revenue": 55.0}
        ]})),
    )
    .await;
    let obs = observe_web(&format!(
        "url = \"{}/daily\"\nrows = \"/days\"\ntime = \"day\"\n",
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Ok, "{obs:?}");
    let current: Vec<(&str, f64, String)> = obs
        .rows
        .iter()
        .map(|r| {
            (
                r.labels["region"].as_str(),
                r.values["revenue"],
                r.at.map(|t| t.date_naive().to_string()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        current,
        vec![
            ("East", 55.0, "2026-11-20".to_owned()),
            ("West", 120.0, "2026-11-20".to_owned())
        ]
    );
    assert_eq!(obs.history.len(), 3);
    assert!(
        obs.rows.iter().all(|r| !r.labels.contains_key("day")),
        "the time field is not a label"
    );
}

#[tokio::test]
async fn an_unparsable_time_is_a_decode_error() {
    let server = serve(
        "/daily",
        ResponseTemplate::new(200).set_body_json(json!([{"day": "last tuesday", "revenue": 1.0}])),
    )
    .await;
    let obs = observe_web(&format!(
        "url = \"{}/daily\"\nrows = \"\"\ntime = \"day\"\n",
        server.uri()
    ))
    .await;

    assert_eq!(obs.status, ObservationStatus::Error);
    let error = error_text(&obs);
    assert!(error.starts_with("column `day`: row 0:"), "{error}");
    assert!(error.contains("last tuesday"), "{error}");
}

#[tokio::test]
async fn an_empty_array_is_no_data() {
    let server = serve("/kpis", ResponseTemplate::new(200).set_body_json(json!({"data": []}))).await;
    let obs = observe_web(&format!("url = \"{}/kpis\"\nrows = \"/data\"\n", server.uri())).await;

    assert_eq!(obs.status, ObservationStatus::NoData, "{obs:?}");
    assert!(obs.error.is_none());
    assert!(obs.rows.is_empty());
}

#[tokio::test]
async fn a_missing_rows_pointer_is_named() {
    let server = serve("/kpis", ResponseTemplate::new(200).set_body_json(json!({"items": []}))).await;
    let obs = observe_web(&format!("url = \"{}/kpis\"\nrows = \"/data\"\n", server.uri())).await;

    assert_eq!(obs.status, ObservationStatus::Error);
    assert!(
        error_text(&obs).contains("`rows` pointer \"/data\" not found"),
        "{obs:?}"
    );
}

#[tokio::test]
async fn max_rows_caps_and_marks_truncated() {
    let rows: Vec<_> = (0..5).map(|i| json!({"id": format!("r{i}"), "n": i})).collect();
    let server = serve(
        "/kpis",
        ResponseTemplate::new(200).set_body_json(json!({ "data": rows })),
    )
    .await;
    let obs = observe_web(&format!(
        "url = \"{}/kpis\"\nrows = \"/data\"\nmax_rows = 2\n",
        server.uri()
    ))
    .await;

    assert_eq!(
        obs.status,
        ObservationStatus::Truncated,
        "a cut answer says so in its status"
    );
    assert_eq!(obs.rows.len(), 2);
    assert!(obs.truncated);
}

#[tokio::test]
async fn a_failing_source_does_not_affect_the_others() {
    let server = MockServer::start().await;
    Mock::given(path("/good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"n": 1})))
        .mount(&server)
        .await;
    Mock::given(path("/bad"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .mount(&server)
        .await;
    let uri = server.uri();
    let settings = load(&format!(
        "[sources.a_good]\nkind = \"http\"\nurl = \"{uri}/good\"\n\
         [sources.b_bad]\nkind = \"http\"\nurl = \"{uri}/bad\"\n"
    ));
    let sources = build_sources(&settings).expect("sources build");
    let observations = gather(&sources, settings.agent.max_concurrent_sources, &Default::default()).await;

    let statuses: Vec<(&str, ObservationStatus)> = observations.iter().map(|o| (o.source.as_str(), o.status)).collect();
    assert_eq!(
        statuses,
        vec![("a_good", ObservationStatus::Ok), ("b_bad", ObservationStatus::Error)]
    );
    assert!(error_text(&observations[1]).contains("HTTP 503"));
}

#[test]
fn a_time_field_outside_fields_is_refused_at_build() {
    let settings = load(
        "[sources.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\nfields = { n = \"/n\" }\ntime = \"day\"\n",
    );
    let error = build_source("web", &settings.sources["web"]).err().expect("refused");
    assert!(error.to_string().contains("`time` = \"day\""), "{error}");
}

#[test]
fn a_bad_header_value_is_refused_at_build_without_quoting_it() {
    let settings = load(
        "[sources.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\nheaders = { Authorization = \"Bearer ${TOKEN}\\nX-Evil: 1\" }\n",
    );
    let error = build_source("web", &settings.sources["web"])
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("header `Authorization`"), "{error}");
    assert!(!error.contains(TOKEN), "{error}");
}
