//! MCP authorization (OAuth 2.1) against a real host over real HTTP: the
//! stock MCP Python SDK's OAuth client completes the whole flow and is held
//! to the spending cap set at consent; a revoked token is refused at once;
//! tokens are bound to their resource; PKCE and single-use codes; scopes;
//! refresh tokens rotate and a reused one revokes its grant.

use mercato_tests::{Host, Org, clients};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use std::collections::HashMap;

async fn market(dir: &std::path::Path) -> (Host, Org) {
    let host = Host::start(dir).await;
    let provider = host.org("provider").await;
    for agent in ["unit-converter", "summarizer"] {
        host.publish(&provider, agent).await;
    }
    let consumer = host.org("consumer").await;
    (host, consumer)
}

/// A client that does not follow redirects (the test reads them).
fn web() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The hidden fields of the first form on a page, unescaped.
fn hidden_fields(page: &str) -> HashMap<String, String> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    page.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let value = rest.strip_prefix(" value=\"")?.split('"').next()?;
            Some((name.to_string(), unescape(value)))
        })
        .collect()
}

fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

const REDIRECT: &str = "http://127.0.0.1:47124/cb";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

async fn register(host: &Host, body: Value) -> (StatusCode, Value) {
    let response = web()
        .post(format!("{}/oauth/register", host.url))
        .json(&body)
        .send()
        .await
        .expect("register");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn public_client(host: &Host) -> String {
    let (status, body) = register(
        host,
        json!({"client_name": "Test client", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["client_id"].as_str().expect("client_id").to_string()
}

/// The authorization request's answer after the person (signed in with
/// `cookie`) approves with `caps`: the redirect's query.
async fn consent(
    host: &Host,
    cookie: &str,
    query: &[(&str, &str)],
    caps: (&str, &str),
) -> HashMap<String, String> {
    let url = reqwest::Url::parse_with_params(&format!("{}/oauth/authorize", host.url), query)
        .expect("url");
    let page = web()
        .get(url)
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("consent page");
    if page.status() == StatusCode::SEE_OTHER {
        // Refused before consent: the error goes back to the client.
        return redirect_query(&page);
    }
    assert_eq!(page.status(), StatusCode::OK);
    let mut fields = hidden_fields(&page.text().await.expect("page"));
    fields.insert("decision".into(), "approve".into());
    fields.insert("per_call_max".into(), caps.0.into());
    fields.insert("daily_max".into(), caps.1.into());
    let approved = web()
        .post(format!("{}/oauth/authorize", host.url))
        .header(COOKIE, cookie)
        .form(&fields)
        .send()
        .await
        .expect("approve");
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    redirect_query(&approved)
}

fn redirect_query(response: &reqwest::Response) -> HashMap<String, String> {
    let location = response.headers()[LOCATION].to_str().expect("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    reqwest::Url::parse(location)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn token(host: &Host, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = web()
        .post(format!("{}/oauth/token", host.url))
        .form(form)
        .send()
        .await
        .expect("token");
    let status = response.status();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (status, response.json().await.expect("json"))
}

/// A code for `client_id` with `scope` and `resource`, approved without caps.
async fn code_for(
    host: &Host,
    cookie: &str,
    client_id: &str,
    scope: &str,
    resource: &str,
) -> String {
    let challenge = s256(VERIFIER);
    let answer = consent(
        host,
        cookie,
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("state", "st"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", scope),
            ("resource", resource),
        ],
        ("", ""),
    )
    .await;
    assert_eq!(answer.get("state").map(String::as_str), Some("st"));
    answer
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {answer:?}"))
}

async fn exchange(host: &Host, client_id: &str, code: &str, verifier: &str) -> (StatusCode, Value) {
    token(
        host,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// A JSON-RPC request to a door with a bearer token (for `/mcp`, a
/// stateless 2026-07-28 request with the headers and `_meta` it wants).
async fn rpc(host: &Host, door: &str, bearer: &str, mut body: Value) -> reqwest::Response {
    let mut request = web()
        .post(format!("{}{door}", host.url))
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream");
    if door == "/mcp" {
        let method = body["method"].as_str().unwrap_or_default().to_string();
        request = request
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", &method);
        if let Some(name) = body["params"]["name"].as_str() {
            request = request.header("mcp-name", name);
        }
        body["params"]["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
    }
    request.json(&body).send().await.expect("rpc")
}

fn tools_list() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
}

#[tokio::test]
async fn the_python_sdk_connects_with_oauth_and_its_token_is_capped_and_revocable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let url = format!("{}/mcp", host.url);
    let python = clients::python();
    let script = clients::script("mcp_oauth_client.py");
    let before = host.balance(&consumer).await["available_micros"]
        .as_u64()
        .expect("available");
    // Caps: 0.009 a call, 0.012 a day (the summarizer costs 5,000 + fuel).
    let seen = clients::run(
        &python,
        &[
            script.to_str().expect("utf-8"),
            &url,
            &consumer.api_key,
            "0.009",
            "0.012",
        ],
    )
    .await;
    let person = &seen["person"];
    assert_eq!(person["sign_in_first"], "/signin", "{seen}");
    assert_eq!(person["consent_mentions_client"], true, "{seen}");
    assert_eq!(
        person["consent_scopes"],
        json!(["discover", "invoke"]),
        "{seen}"
    );
    assert!(
        person["consent_csp"]
            .as_str()
            .is_some_and(|c| c.contains("form-action 'self' http://127.0.0.1")),
        "{seen}"
    );
    assert_eq!(person["redirected_to"], "http://127.0.0.1:47123/callback");
    assert!(seen["tools"].as_u64().expect("tools") > 2, "{seen}");
    assert_eq!(seen["free"]["is_error"], false, "{seen}");
    // Asking to hold more than the per-call cap: refused, nothing charged.
    assert_eq!(seen["over_per_call"]["is_error"], true, "{seen}");
    assert_eq!(
        seen["over_per_call"]["error"]["error"]["code"], "token_cap_exceeded",
        "{seen}"
    );
    assert_eq!(seen["paid"]["is_error"], false, "{seen}");
    let charged = seen["paid"]["charged"].as_u64().expect("charged");
    assert!((5_000..=9_000).contains(&charged), "{seen}");
    // The next hold at the per-call cap would pass the daily cap.
    assert_eq!(
        seen["over_daily"]["error"]["error"]["code"], "token_cap_exceeded",
        "{seen}"
    );
    // Only the one paid call cost anything.
    let after = host.balance(&consumer).await["available_micros"]
        .as_u64()
        .expect("available");
    assert_eq!(before - after, charged);

    // The account page lists the connected client with what it spent.
    let cookie = host.session(&consumer.api_key).await;
    let page = web()
        .get(format!("{}/account", host.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("account")
        .text()
        .await
        .expect("page");
    assert!(page.contains("Mercato test agent"), "{page}");
    let spent = format!("{}.{:06}", charged / 1_000_000, charged % 1_000_000);
    assert!(
        page.contains(spent.trim_end_matches('0')),
        "{spent} in {page}"
    );
    // Revoke it there: the token is refused at once.
    let access = seen["access_token"].as_str().expect("access token");
    assert_eq!(
        rpc(&host, "/mcp", access, tools_list()).await.status(),
        StatusCode::OK
    );
    let action = page
        .split("action=\"/account/tokens/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a revoke form");
    let csrf = hidden_fields(&page)["csrf"].clone();
    let revoked = web()
        .post(format!("{}/account/tokens/{action}", host.url))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let refused = rpc(&host, "/mcp", access, tools_list()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("header");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    // Its refresh token died with it.
    let client_id = seen["client_id"].as_str().expect("client id");
    let refresh = seen["refresh_token"].as_str().expect("refresh token");
    // The SDK registered a confidential client (its default method).
    assert_eq!(seen["token_endpoint_auth_method"], "client_secret_basic");
    let secret = seen["client_secret"].as_str().expect("client secret");
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", refresh),
    ];
    let (status, body) = token(&host, &refresh_form).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no secret: {body}");
    assert_eq!(body["error"], "invalid_client");
    let mut with_secret = refresh_form.to_vec();
    with_secret.push(("client_secret", secret));
    let (status, body) = token(&host, &with_secret).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    host.stop().await;
}

#[tokio::test]
async fn discovery_codes_resources_scopes_and_refresh_follow_the_specifications() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let base = host.url.clone();

    // A 401 says where the door's metadata is.
    let refused = web()
        .post(format!("{base}/mcp"))
        .json(&tools_list())
        .send()
        .await
        .expect("mcp");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("header");
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let (_, prm) = host
        .get("/.well-known/oauth-protected-resource/mcp", None)
        .await;
    assert_eq!(prm["resource"], format!("{base}/mcp"));
    assert_eq!(prm["authorization_servers"], json!([base]));
    let (_, prm) = host
        .get("/.well-known/oauth-protected-resource/a2a", None)
        .await;
    assert_eq!(prm["resource"], format!("{base}/a2a"));
    let (_, server) = host
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(server["issuer"], base);
    assert_eq!(server["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(server["token_endpoint"], format!("{base}/oauth/token"));

    // Registration refuses what it must.
    for (bad, error) in [
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ] {
        let (status, body) = register(&host, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], error, "{bad}: {body}");
    }

    let client_id = public_client(&host).await;
    let cookie = host.session(&consumer.api_key).await;
    let mcp_resource = format!("{base}/mcp");

    // PKCE: a wrong verifier fails, and spends the code.
    let code = code_for(&host, &cookie, &client_id, "discover invoke", &mcp_resource).await;
    let wrong = "another-verifier-of-at-least-forty-three-characters-01234";
    let (status, body) = exchange(&host, &client_id, &code, wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = exchange(&host, &client_id, &code, VERIFIER).await;
    assert_eq!(body["error"], "invalid_grant", "a code is single-use");

    // A code used twice: the second time fails.
    let code = code_for(&host, &cookie, &client_id, "discover invoke", &mcp_resource).await;
    let (status, tokens) = exchange(&host, &client_id, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_u64().is_some_and(|s| s <= 3_600));
    let (status, body) = exchange(&host, &client_id, &code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(
        rpc(&host, "/mcp", access, tools_list()).await.status(),
        StatusCode::OK
    );
    // Bound to /mcp: refused at /a2a and on the REST API.
    let list_tasks = json!({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}});
    assert_eq!(
        rpc(&host, "/a2a", access, list_tasks.clone())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = host.get("/v1/accounts/me", Some(access)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A token minted for /a2a works there and not at /mcp.
    let a2a_resource = format!("{base}/a2a");
    let code = code_for(&host, &cookie, &client_id, "discover invoke", &a2a_resource).await;
    let (_, a2a_tokens) = exchange(&host, &client_id, &code, VERIFIER).await;
    let a2a_access = a2a_tokens["access_token"].as_str().expect("access");
    assert_eq!(
        rpc(&host, "/a2a", a2a_access, list_tasks).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        rpc(&host, "/mcp", a2a_access, tools_list()).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Another site's resource is refused, back at the client.
    let challenge = s256(VERIFIER);
    let answer = consent(
        &host,
        &cookie,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("state", "st"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", "https://other.example/mcp"),
        ],
        ("", ""),
    )
    .await;
    assert_eq!(answer["error"], "invalid_target", "{answer:?}");
    assert_eq!(answer["state"], "st");
    assert!(!answer.contains_key("code"));
    // A plain (non-S256) challenge is refused too.
    let answer = consent(
        &host,
        &cookie,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
        ("", ""),
    )
    .await;
    assert_eq!(answer["error"], "invalid_request", "{answer:?}");

    // A discover-only token lists tools but may not call one: 403 with
    // the scope it lacks.
    let code = code_for(&host, &cookie, &client_id, "discover", &mcp_resource).await;
    let (_, reader) = exchange(&host, &client_id, &code, VERIFIER).await;
    assert_eq!(reader["scope"], "discover");
    let reader = reader["access_token"].as_str().expect("access");
    assert_eq!(
        rpc(&host, "/mcp", reader, tools_list()).await.status(),
        StatusCode::OK
    );
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "unit-converter__convert", "arguments": {"value": 1, "from": "km", "to": "m"}}});
    let refused = rpc(&host, "/mcp", reader, call.clone()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("header");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(
        rpc(&host, "/mcp", access, call).await.status(),
        StatusCode::OK
    );

    // Refresh tokens rotate; the spent one presented again revokes the grant.
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let refreshed = |refresh: String| {
        let host = &host;
        let client_id = client_id.clone();
        async move {
            token(
                host,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client_id),
                    ("refresh_token", &refresh),
                ],
            )
            .await
        }
    };
    let (status, second) = refreshed(refresh.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refresh_token"], tokens["refresh_token"]);
    let second_access = second["access_token"].as_str().expect("access");
    assert_eq!(
        rpc(&host, "/mcp", second_access, tools_list())
            .await
            .status(),
        StatusCode::OK
    );
    let (_, reused) = refreshed(refresh.to_string()).await;
    assert_eq!(reused["error"], "invalid_grant", "{reused}");
    for revoked in [access, second_access] {
        assert_eq!(
            rpc(&host, "/mcp", revoked, tools_list()).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let (_, after) = refreshed(second["refresh_token"].as_str().expect("refresh").into()).await;
    assert_eq!(after["error"], "invalid_grant", "{after}");

    // Revocation (RFC 7009) of an access token; unknown tokens are fine.
    for token_value in [a2a_access, "mat_unknown"] {
        let response = web()
            .post(format!("{base}/oauth/revoke"))
            .form(&[("client_id", client_id.as_str()), ("token", token_value)])
            .send()
            .await
            .expect("revoke");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let list_tasks = json!({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}});
    assert_eq!(
        rpc(&host, "/a2a", a2a_access, list_tasks).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // API keys keep working unchanged.
    assert_eq!(
        rpc(&host, "/mcp", &consumer.api_key, tools_list())
            .await
            .status(),
        StatusCode::OK
    );
    host.stop().await;
}

/// Serves the documents `make(base)` returns (path → JSON) on a loopback
/// port; returns its base URL.
async fn document_server(make: impl FnOnce(&str) -> Vec<(&'static str, Value)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut router = axum::Router::new();
    for (path, document) in make(&base) {
        router = router.route(
            path,
            axum::routing::get(move || async move { axum::Json(document) }),
        );
    }
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn a_client_known_by_its_metadata_document_needs_no_registration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = mercato_tests::test_config(dir.path());
    // Loopback documents over plain http, for this test only.
    config.client_metadata_allowed_hosts = vec!["127.0.0.1".into()];
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "unit-converter").await;
    let consumer = host.org("consumer").await;
    let (_, server) = host
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(server["client_id_metadata_document_supported"], true);

    // A document naming its own URL; one naming another; one that is not
    // client metadata.
    let docs = document_server(|base| {
        vec![
            (
                "/client.json",
                json!({"client_id": format!("{base}/client.json"), "client_name": "Documented agent",
                       "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
            ),
            (
                "/liar.json",
                json!({"client_id": "https://elsewhere.example/c.json", "redirect_uris": [REDIRECT]}),
            ),
            ("/junk.json", json!(["not", "metadata"])),
        ]
    })
    .await;
    let client_id = format!("{docs}/client.json");
    let cookie = host.session(&consumer.api_key).await;
    let resource = format!("{}/mcp", host.url);
    let code = code_for(&host, &cookie, &client_id, "discover invoke", &resource).await;
    let (status, tokens) = exchange(&host, &client_id, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(
        rpc(&host, "/mcp", access, tools_list()).await.status(),
        StatusCode::OK
    );
    // Listed on the account page under the document's name.
    let page = web()
        .get(format!("{}/account", host.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("account")
        .text()
        .await
        .expect("page");
    assert!(page.contains("Documented agent"), "{page}");

    // Bad documents, and private addresses not allowed, are shown to the
    // person (400), never redirected.
    let challenge = s256(VERIFIER);
    for bad in [
        format!("{docs}/liar.json"),
        format!("{docs}/junk.json"),
        format!("{docs}/missing.json"),
        "https://127.0.0.2/client.json".to_string(),
        "http://public.example/client.json".to_string(),
    ] {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/oauth/authorize", host.url),
            &[
                ("response_type", "code"),
                ("client_id", bad.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .expect("url");
        let response = web()
            .get(url)
            .header(COOKIE, &cookie)
            .send()
            .await
            .expect("authorize");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(!response.headers().contains_key(LOCATION), "{bad}");
    }
    // A document client sends no secret.
    let (status, body) = token(
        &host,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("client_secret", "made-up"),
            ("code", "mac_x"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    host.stop().await;
}
