//! The real `OpenAiClient` against an OpenAI-compatible server on 127.0.0.1
//! (wiremock): the request it sends, the response-format fallback and its
//! memory, the retry policy, and that the API key and the `OPENAI_*`
//! environment never leak in or out.

use std::sync::Once;
use std::time::Duration;

use bi_agent::config::LlmSettings;
use bi_agent::llm::{FinishReason, Llm, LlmError, LlmRequest, OpenAiClient, ResponseMode};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-5ecret-key-0123456789";
const ENDPOINT: &str = "/v1/chat/completions";

/// Junk `OPENAI_*` variables for the whole test process: the client must
/// not notice them. Every test calls this (through [`start`]) before
/// anything else, so no other thread reads the environment while it is set.
fn junk_openai_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `call_once` blocks every other test at this point until the
        // variables are set, and each test calls it before doing anything
        // that could read the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("OPENAI_API_KEY", "sk-junk-from-the-environment");
            std::env::set_var("OPENAI_BASE_URL", "http://127.0.0.1:9/v1");
            std::env::set_var("OPENAI_ORG_ID", "org-junk");
        }
    });
}

async fn start() -> MockServer {
    junk_openai_env();
    MockServer::start().await
}

fn settings(server: &MockServer, timeout: &str, attempts: u32, key: Option<&str>) -> LlmSettings {
    settings_for(&server.uri(), timeout, attempts, key)
}

fn settings_for(base: &str, timeout: &str, attempts: u32, key: Option<&str>) -> LlmSettings {
    let key = key.map(|k| format!("api_key = \"{k}\"")).unwrap_or_default();
    toml::from_str(&format!(
        r#"
        base_url = "{base}/v1/"
        model = "planner-1"
        {key}
        timeout = "{timeout}"
        retry_attempts = {attempts}
        max_tokens = 800
        temperature = 0.2
        "#
    ))
    .expect("test settings parse")
}

fn client(server: &MockServer) -> OpenAiClient {
    OpenAiClient::new(&settings(server, "2s", 3, Some(KEY))).expect("client builds")
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"proposals": {"type": "array", "items": {"type": "string"}}},
        "required": ["proposals"],
        "additionalProperties": false
    })
}

fn structured() -> LlmRequest {
    LlmRequest {
        system: "You advise on revenue alerts.".into(),
        user: "Revenue fell 12% day over day.".into(),
        schema: Some(("plan".into(), schema())),
        max_tokens: 300,
        temperature: 0.2,
    }
}

fn completion(content: &str, finish: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "planner-1-2026",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": finish
        }],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
    }))
}

fn mode_is(kind: &str) -> wiremock::matchers::BodyPartialJsonMatcher {
    body_partial_json(json!({"response_format": {"type": kind}}))
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .map(|r| r.body_json().expect("JSON request body"))
        .collect()
}

const ANSWER: &str = r#"{"proposals":["notify sales"]}"#;

#[tokio::test]
async fn structured_output_sends_schema_limits_model_and_key() {
    let server = start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(mode_is("json_schema"))
        .respond_with(completion(ANSWER, "stop"))
        .expect(1)
        .mount(&server)
        .await;

    let answer = client(&server).complete(&structured()).await.expect("answer");

    assert_eq!(answer.text, ANSWER);
    assert_eq!(answer.mode, ResponseMode::JsonSchema);
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!((answer.usage.prompt_tokens, answer.usage.completion_tokens), (42, 7));
    assert_eq!(answer.model, "planner-1-2026");
    assert_eq!(answer.attempts, 1);

    let body = &bodies(&server).await[0];
    assert_eq!(body["model"], "planner-1");
    assert_eq!(body["temperature"], json!(0.2));
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(body["max_completion_tokens"], 300);
    assert_eq!(body["response_format"]["json_schema"]["name"], "plan");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema());
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][0]["content"], "You advise on revenue alerts.");
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["messages"][1]["content"], "Revenue fell 12% day over day.");
}

#[tokio::test]
async fn json_schema_500_falls_back_to_json_object_and_is_remembered() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .and(mode_is("json_schema"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "response_format json_schema is not supported"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(ENDPOINT))
        .and(mode_is("json_object"))
        .respond_with(completion(ANSWER, "stop"))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);

    let first = client.complete(&structured()).await.expect("first answer");
    assert_eq!(
        (first.mode, first.attempts, first.text.as_str()),
        (ResponseMode::JsonObject, 2, ANSWER)
    );
    assert_eq!(client.structured_mode(), ResponseMode::JsonObject);

    let second = client.complete(&structured()).await.expect("second answer");
    assert_eq!((second.mode, second.attempts), (ResponseMode::JsonObject, 1));

    // Without json_schema the model only learns the schema from the prompt.
    let body = &bodies(&server).await[1];
    let system = body["messages"][0]["content"].as_str().expect("system text");
    assert!(
        system.contains("JSON schema") && system.contains("\"proposals\""),
        "{system}"
    );
}

#[tokio::test]
async fn json_schema_400_not_supported_falls_back() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .and(mode_is("json_schema"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "response_format not supported", "type": "invalid_request_error"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(ENDPOINT))
        .and(mode_is("json_object"))
        .respond_with(completion(ANSWER, "stop"))
        .expect(1)
        .mount(&server)
        .await;

    let answer = client(&server).complete(&structured()).await.expect("answer");
    assert_eq!(answer.mode, ResponseMode::JsonObject);
}

#[tokio::test]
async fn a_fallback_does_not_use_up_the_retry_budget() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .and(mode_is("json_schema"))
        .respond_with(ResponseTemplate::new(422).set_body_string("unknown field: response_format"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(ENDPOINT))
        .and(mode_is("json_object"))
        .respond_with(ResponseTemplate::new(503).set_body_string("warming up"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(ENDPOINT))
        .and(mode_is("json_object"))
        .respond_with(completion(ANSWER, "stop"))
        .expect(1)
        .mount(&server)
        .await;
    // Two attempts: the fallback plus one retry would exceed them if it counted.
    let client = OpenAiClient::new(&settings(&server, "2s", 2, Some(KEY))).expect("client");

    let answer = client.complete(&structured()).await.expect("answer");
    assert_eq!((answer.mode, answer.attempts), (ResponseMode::JsonObject, 3));
}

#[tokio::test]
async fn prose_with_embedded_json_falls_back_to_text_and_is_extracted() {
    let server = start().await;
    let prose = "Sure! Here you go: ```json\n{\"proposals\": [\"escalate {now}\"]}\n``` hope it helps";
    Mock::given(path(ENDPOINT))
        .respond_with(completion(prose, "stop"))
        .expect(4)
        .mount(&server)
        .await;
    let client = client(&server);

    let first = client.complete(&structured()).await.expect("first answer");
    assert_eq!(first.mode, ResponseMode::Text);
    assert_eq!(first.text, "{\"proposals\": [\"escalate {now}\"]}");
    assert_eq!(first.attempts, 3, "json_schema, json_object, then text");

    let second = client.complete(&structured()).await.expect("second answer");
    assert_eq!((second.mode, second.attempts), (ResponseMode::Text, 1));

    let sent = bodies(&server).await;
    let kinds: Vec<_> = sent.iter().map(|b| b["response_format"]["type"].clone()).collect();
    assert_eq!(
        kinds,
        [json!("json_schema"), json!("json_object"), Value::Null, Value::Null]
    );
}

#[tokio::test]
async fn a_request_without_schema_is_plain_text_and_comes_back_verbatim() {
    let server = start().await;
    let summary = "Revenue fell because {region} EU had an outage: {\"not\": \"extracted\"}";
    Mock::given(path(ENDPOINT))
        .respond_with(completion(summary, "stop"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let request = LlmRequest {
        schema: None,
        ..structured()
    };

    let answer = client.complete(&request).await.expect("answer");
    assert_eq!((answer.mode, answer.text.as_str()), (ResponseMode::Text, summary));
    assert!(bodies(&server).await[0].get("response_format").is_none());
    assert_eq!(
        client.structured_mode(),
        ResponseMode::JsonSchema,
        "free text teaches nothing"
    );
}

#[tokio::test]
async fn rate_limit_429_honours_retry_after() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(ENDPOINT))
        .respond_with(completion(ANSWER, "stop"))
        .expect(1)
        .mount(&server)
        .await;

    let answer = client(&server).complete(&structured()).await.expect("answer");
    assert_eq!(answer.attempts, 2);
    assert!(
        answer.latency >= Duration::from_millis(990),
        "waited {:?}",
        answer.latency
    );
}

#[tokio::test]
async fn server_error_500_is_retried() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(ENDPOINT))
        .respond_with(completion(ANSWER, "stop"))
        .expect(1)
        .mount(&server)
        .await;

    let answer = client(&server).complete(&structured()).await.expect("answer");
    assert_eq!((answer.attempts, answer.mode), (2, ResponseMode::JsonSchema));
}

#[tokio::test]
async fn timeouts_are_retried_then_unavailable() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .respond_with(completion(ANSWER, "stop").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let client = OpenAiClient::new(&settings(&server, "300ms", 2, Some(KEY))).expect("client");

    let err = client.complete(&structured()).await.expect_err("times out");
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
    assert_eq!(server.received_requests().await.expect("recording").len(), 2);
}

#[tokio::test]
async fn insufficient_quota_is_not_retried() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
            "message": "You exceeded your current quota.",
            "type": "insufficient_quota",
            "code": "insufficient_quota"
        }})))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server).complete(&structured()).await.expect_err("no quota");
    assert!(matches!(err, LlmError::Quota(_)), "{err:?}");
}

#[tokio::test]
async fn unauthorized_is_refused_at_once_and_never_shows_the_key() {
    let server = start().await;
    // Some proxies echo the key they rejected.
    Mock::given(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Incorrect API key provided: {KEY}"),
            "type": "invalid_request_error",
            "code": "invalid_api_key"
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    let err = client.complete(&structured()).await.expect_err("refused");
    assert!(matches!(err, LlmError::Refused(_)), "{err:?}");
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("Incorrect API key provided"), "{shown}");
}

#[tokio::test]
async fn connection_refused_is_unavailable_without_the_key() {
    junk_openai_env();
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let settings = settings_for(&format!("http://127.0.0.1:{port}"), "1s", 2, Some(KEY));
    let client = OpenAiClient::new(&settings).expect("client");

    let err = client.complete(&structured()).await.expect_err("nobody listens");
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn finish_reason_length_is_reported_without_fallback() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .respond_with(completion(r#"{"proposals":["notify sa"#, "length"))
        .expect(1)
        .mount(&server)
        .await;

    let answer = client(&server).complete(&structured()).await.expect("answer");
    assert_eq!(answer.finish_reason, FinishReason::Length);
    assert_eq!(
        answer.mode,
        ResponseMode::JsonSchema,
        "a cut answer is not an unsupported mode"
    );
}

#[tokio::test]
async fn openai_environment_variables_are_ignored() {
    let server = start().await;
    Mock::given(path(ENDPOINT))
        .respond_with(completion(ANSWER, "stop"))
        .expect(1)
        .mount(&server)
        .await;
    // No key configured: none is sent, least of all the one in OPENAI_API_KEY.
    let client = OpenAiClient::new(&settings(&server, "2s", 1, None)).expect("client");

    client
        .complete(&structured())
        .await
        .expect("answer from the configured server");
    let requests = server.received_requests().await.expect("recording");
    assert!(requests[0].headers.get("authorization").is_none());
    assert!(requests[0].headers.get("openai-organization").is_none());
}

#[test]
fn an_invalid_base_url_is_refused() {
    junk_openai_env();
    let mut settings: LlmSettings =
        toml::from_str("base_url = \"ftp://user:pw@example.com/v1\"\nmodel = \"m\"").expect("settings");
    let err = OpenAiClient::new(&settings).expect_err("not http");
    assert!(matches!(err, LlmError::Refused(_)));
    assert!(!err.to_string().contains("pw"), "{err}");
    settings.base_url = "not a url".into();
    assert!(OpenAiClient::new(&settings).is_err());
}
