//! The pages in a real browser: Debian's Chromium driven through
//! chromedriver (WebDriver) against a real host with the sample agents
//! published. Each page is also saved as a screenshot at 375 and 1440 px
//! (`target/screenshots/`, not compared by pixels).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them).

use fantoccini::Locator;
use mercato_tests::browser::Browser;
use mercato_tests::{ADMIN_TOKEN, Host, Org, component, manifest, public_key, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn host(dir: &std::path::Path) -> Host {
    let mut config = test_config(dir);
    config.dispute_window_ms = 3_600_000;
    config.settlement_tick_ms = 3_600_000;
    Host::start_with(config).await
}

async fn redact(host: &Host, org: &Org, extra: Value) -> (StatusCode, Value) {
    let mut body =
        json!({ "input": { "text": "Mail jo@example.com today." }, "max_price_micros": 50_000 });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    host.post(
        "/v1/capabilities/pii-redactor.redact/invoke",
        Some(&org.api_key),
        body,
    )
    .await
}

#[tokio::test]
async fn a_visitor_finds_a_capability_and_its_signed_report_and_markup_stays_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host(dir.path()).await;
    let provider = host.org("provider").await;
    for agent in ["pii-redactor", "unit-converter", "summarizer"] {
        host.publish(&provider, agent).await;
    }
    let (status, body) = host
        .upload(
            &provider,
            component("marked-up"),
            manifest("hostile/marked-up"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let browser = Browser::open().await;

    // A new visitor searches in plain words and opens the redactor.
    browser.goto(&host.url).await;
    browser.screenshots("catalog").await;
    browser
        .fill("#q", "hide e-mail addresses in a ticket")
        .await;
    browser.click("form.search button[type=submit]").await;
    browser
        .text_where("#results p.muted", |t| t.starts_with("Ranked by how well"))
        .await;
    let first = browser
        .find("#results tbody tr a[href^='/capabilities/']")
        .await;
    let href = first.attr("href").await.expect("attr").expect("href");
    assert!(
        href.starts_with("/capabilities/pii-redactor."),
        "first result: {href}"
    );
    browser.screenshots("search").await;
    first.click().await.expect("opens");
    assert_eq!(browser.text("[data-verdict]").await, "passed");
    let signature = browser.text("[data-signature]").await;
    assert!(signature.starts_with("✓ Signature valid"), "{signature}");
    assert!(browser.text("table.fields").await.contains("text"));
    browser.screenshots("capability").await;

    // Provider-written markup shows as text and runs nowhere: not in the
    // catalog, not on its page (description, tags, schema fields, examples).
    for path in ["/?q=echo", "/capabilities/marked-up.echo"] {
        browser.goto(&format!("{}{path}", host.url)).await;
        browser.find("main").await;
        let ran: Value = browser
            .client
            .execute(
                "return window.__mercatoPwned === undefined ? null : window.__mercatoPwned;",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(ran, Value::Null, "provider markup ran on {path}");
        let injected: Value = browser
            .client
            .execute(
                "return document.querySelectorAll('main script, main img').length;",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(injected, json!(0), "markup became elements on {path}");
    }
    let lead = browser.text("p.lead").await;
    assert!(
        lead.contains("<script>") && lead.contains("onerror="),
        "{lead}"
    );

    // Every page carries the policy that would stop what escaping missed.
    let page = host
        .http
        .get(format!("{}/", host.url))
        .send()
        .await
        .expect("page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    browser.close().await;
    host.stop().await;
}

#[tokio::test]
async fn a_consumer_disputes_a_call_and_an_approver_decides_on_the_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host(dir.path()).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    let stranger = host.org("stranger").await;
    host.publish(&provider, "pii-redactor").await;
    let (status, call) = redact(&host, &consumer, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let tx = call["transaction_id"].as_str().expect("tx").to_string();
    let (status, negotiated) = host
        .post(
            "/v1/negotiations",
            Some(&consumer.api_key),
            json!({ "capability_id": "pii-redactor.redact", "terms": {
                "max_price_micros": 5_000, "latency_ms_max": 200, "retention": "none",
                "encryption": true, "jurisdiction": "EU", "rate_limit_per_minute": 2,
                "validity_ms": 3_600_000 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{negotiated}");
    let contract_id = negotiated["contract"]["contract_id"]
        .as_str()
        .expect("contract");
    let browser = Browser::open().await;

    // The consumer signs in: balance, contracts, the transaction, its
    // receipt, a dispute.
    browser.sign_in(&host, &consumer.api_key).await;
    let balance = host.balance(&consumer).await;
    let available = balance["available_micros"].as_u64().expect("available");
    let shown = browser.text("#available").await;
    assert_eq!(shown, format_units(available));
    assert!(
        browser
            .text("section[aria-labelledby=contracts]")
            .await
            .contains(contract_id)
    );
    browser.screenshots("account").await;
    browser
        .click(&format!("a[href='/transactions/{tx}']"))
        .await;
    assert_eq!(browser.text("#transaction-id").await, tx);
    assert!(
        browser
            .text("[data-signature]")
            .await
            .starts_with("✓ Signature valid")
    );
    browser.screenshots("transaction").await;
    browser
        .fill("#input", r#"{"text": "Mail jo@example.com today."}"#)
        .await;
    browser
        .fill("#reason", "the placeholder hides too much")
        .await;
    browser.click("form[action$='/dispute'] button").await;
    browser.find("#dispute-status").await;
    let (_, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&consumer.api_key))
        .await;
    assert!(record["dispute"].is_object(), "{record}");
    assert_eq!(
        record["dispute"]["reason"],
        "the placeholder hides too much"
    );

    // A wrong amount is named on the page (swapped in like any answer) and
    // changes nothing.
    browser.goto(&format!("{}/account", host.url)).await;
    browser.fill("#daily_max", "lots").await;
    browser.click("form[action='/account/budget'] button").await;
    let error = browser.text("p.error[role=alert]").await;
    assert!(
        error.contains("Most per day") && error.contains("lots"),
        "{error}"
    );
    let (_, balance) = host.get("/v1/accounts/me", Some(&consumer.api_key)).await;
    assert!(balance["budget"]["daily_max_micros"].is_null(), "{balance}");

    // The budget form sets the approval threshold (0.003 units).
    browser.goto(&format!("{}/account", host.url)).await;
    browser.fill("#approval_above", "0.003").await;
    browser.click("form[action='/account/budget'] button").await;
    browser
        .text_where("p.notice", |t| t == "Budget saved.")
        .await;
    let (_, balance) = host.get("/v1/accounts/me", Some(&consumer.api_key)).await;
    assert_eq!(balance["budget"]["approval_above_micros"], 3_000);

    // Pausing on the page stops the agent's calls; unpausing lets them run.
    browser.click("#paused").await;
    browser.click("form[action='/account/budget'] button").await;
    browser.find("#paused-state").await;
    let (status, paused) = redact(&host, &consumer, json!({ "max_price_micros": 2_500 })).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{paused}");
    assert_eq!(paused["error"]["code"], "budget_paused");
    browser.click("#paused").await;
    browser.click("form[action='/account/budget'] button").await;
    browser.gone("#paused-state").await;
    let (status, resumed) = redact(&host, &consumer, json!({ "max_price_micros": 2_500 })).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    let (_, balance) = host.get("/v1/accounts/me", Some(&consumer.api_key)).await;
    assert_eq!(
        balance["budget"]["approval_above_micros"], 3_000,
        "the rest of the budget kept"
    );

    // A form without its token changes nothing; a page of another
    // organisation's transaction does not exist for this one.
    let cookie = format!("mercato_session={}", browser.session_cookie().await);
    let forged = host
        .http
        .post(format!("{}/account/budget", host.url))
        .header("cookie", &cookie)
        .form(&[("approval_above", "1000")])
        .send()
        .await
        .expect("posts");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let (_, balance) = host.get("/v1/accounts/me", Some(&consumer.api_key)).await;
    assert_eq!(balance["budget"]["approval_above_micros"], 3_000);
    let (status, theirs) = redact(&host, &stranger, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    let other = host
        .http
        .get(format!(
            "{}/transactions/{}",
            host.url,
            theirs["transaction_id"].as_str().expect("tx")
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("gets");
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    browser.sign_out().await;

    // Above the threshold a call waits; the approver approves one on the
    // page (it then runs and is charged) and rejects another (it fails,
    // nothing charged).
    let waiting = |body: &Value| {
        body["error"]["details"]["approval_id"]
            .as_str()
            .expect("approval")
            .to_string()
    };
    let (status, first) = redact(&host, &consumer, json!({})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{first}");
    let first = waiting(&first);
    let (status, approver) = host
        .post(
            &format!("/v1/orgs/{}/approvers", consumer.org_id),
            Some(&consumer.api_key),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{approver}");
    browser
        .sign_in(&host, approver["approver_token"].as_str().expect("token"))
        .await;
    browser.find(&format!("#approval-{first}")).await;
    browser.screenshots("approvals").await;
    browser
        .click(&format!("#approval-{first} button[value=approve]"))
        .await;
    browser
        .text_where("p.notice", |t| t.ends_with("approved."))
        .await;
    let before = host.balance(&consumer).await["available_micros"]
        .as_u64()
        .expect("balance");
    let (status, done) = redact(&host, &consumer, json!({ "approval_id": first })).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done["charged_micros"].as_u64().expect("charged") > 0);
    let after = host.balance(&consumer).await["available_micros"]
        .as_u64()
        .expect("balance");
    assert_eq!(
        before - after,
        done["charged_micros"].as_u64().expect("charged")
    );

    let (status, second) = redact(&host, &consumer, json!({})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{second}");
    let second = waiting(&second);
    browser.goto(&format!("{}/approvals", host.url)).await;
    browser
        .click(&format!("#approval-{second} button[value=reject]"))
        .await;
    browser
        .text_where("p.notice", |t| t.ends_with("rejected."))
        .await;
    let (status, refused) = redact(&host, &consumer, json!({ "approval_id": second })).await;
    assert!(status.is_client_error(), "{status} {refused}");
    let unchanged = host.balance(&consumer).await["available_micros"]
        .as_u64()
        .expect("balance");
    assert_eq!(unchanged, after, "a rejected call is not charged");
    browser.close().await;
    host.stop().await;
}

#[tokio::test]
async fn a_provider_sees_its_refusals_and_earnings_and_the_operator_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host(dir.path()).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let (status, call) = redact(&host, &consumer, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let (status, refused) = host
        .upload(
            &provider,
            component("pretender"),
            manifest("hostile/pretender"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let browser = Browser::open().await;

    // The provider: the refused upload with its failing cases, earnings.
    browser.sign_in(&host, &provider.api_key).await;
    browser.goto(&format!("{}/provider", host.url)).await;
    let upload = browser.find("details.upload[data-passed=false]").await;
    assert!(upload.text().await.expect("text").contains("pretender"));
    let failing = browser
        .client
        .find_all(Locator::Css(
            "details.upload[data-passed=false] tr[data-passed=false]",
        ))
        .await
        .expect("cases");
    assert!(
        !failing.is_empty(),
        "the refused upload's failing cases are listed"
    );
    let escrowed = browser.text("#escrowed").await;
    assert_eq!(
        escrowed,
        format_units(call["cost_micros"].as_u64().expect("cost"))
    );
    browser.screenshots("provider").await;
    browser.sign_out().await;

    // The operator verifies a new organisation on the page; it can publish.
    let newcomer = host.org_unverified("newcomer").await;
    browser.sign_in(&host, ADMIN_TOKEN).await;
    assert!(
        browser
            .text("#ledger-state")
            .await
            .starts_with("✓ Balanced")
    );
    browser.screenshots("operator").await;
    browser
        .click(&format!(
            "form[action='/operator/orgs/{}/verify'] button",
            newcomer.org_id
        ))
        .await;
    browser
        .text_where("p.notice", |t| t.contains("is verified"))
        .await;
    let key = mercato_tests::new_signing_key();
    host.add_key(&newcomer, &public_key(&key)).await;
    let newcomer = Org {
        signing_key: Some(key),
        ..newcomer
    };
    let (status, body) = host
        .upload(
            &newcomer,
            component("unit-converter"),
            manifest("unit-converter"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    browser.close().await;
    host.stop().await;
}

#[tokio::test]
async fn pages_work_without_javascript_and_refuse_forged_forms() {
    // The same host through a plain HTTP client: no script runs, every
    // page is whole, and a form posted without its token changes nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host(dir.path()).await;
    let unverified = host.org_unverified("waiting").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // The catalog pages through every listing, ten at a time, by its links.
    let provider = host.org("provider").await;
    host.publish(&provider, "hostile/misbehaver").await;
    host.publish(&provider, "unit-converter").await;
    let (_, all) = host.get("/v1/capabilities", None).await;
    let total = all.as_array().expect("a list").len();
    assert!(total > 10, "more than one page: {total}");
    let (mut seen, mut next, mut pages) = (0, Some("/".to_string()), 0);
    while let Some(path) = next.take() {
        pages += 1;
        assert!(pages <= total, "the pages end");
        let html = client
            .get(format!("{}{}", host.url, path.replace("&amp;", "&")))
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        let rows = html.matches("<a href=\"/capabilities/").count();
        assert!((1..=10).contains(&rows), "{rows} rows on {path}");
        seen += rows;
        next = html
            .split("<a rel=\"next\" href=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_string);
    }
    assert_eq!(seen, total, "every listing once, over {pages} pages");
    let signed_in = client
        .post(format!("{}/signin", host.url))
        .form(&[("key", ADMIN_TOKEN)])
        .send()
        .await
        .expect("signs in");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_string();
    let page = client
        .get(format!("{}/operator", host.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains(&unverified.org_id));
    assert!(
        !html.contains(ADMIN_TOKEN),
        "the token is never put in a page"
    );

    let verify = format!("{}/operator/orgs/{}/verify", host.url, unverified.org_id);
    for (form, from) in [
        (vec![], "same-origin"),
        (vec![("csrf", "guess")], "same-origin"),
    ] {
        let forged = client
            .post(&verify)
            .header("cookie", &session)
            .header("sec-fetch-site", from)
            .form(&form)
            .send()
            .await
            .expect("posts");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    }
    // Even with the right token, a form sent from another site is refused.
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_string();
    let cross = client
        .post(&verify)
        .header("cookie", &session)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("posts");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let (_, orgs) = host.get("/v1/orgs", Some(ADMIN_TOKEN)).await;
    let still = orgs
        .as_array()
        .expect("orgs")
        .iter()
        .find(|o| o["org_id"] == unverified.org_id.as_str())
        .expect("listed");
    assert!(still["verified_at_ms"].is_null(), "{still}");
    let done = client
        .post(&verify)
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("posts");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);

    // Signed out, the session is gone; an unknown key is told what to do.
    let out = client
        .post(format!("{}/signout", host.url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("signs out");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = client
        .get(format!("{}/operator", host.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "sent to sign in again"
    );
    let wrong = client
        .post(format!("{}/signin", host.url))
        .form(&[("key", "mk_not-a-key")])
        .send()
        .await
        .expect("posts");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("html").contains("not known here"));
    host.stop().await;
}

/// Micros as the pages show them.
fn format_units(micros: u64) -> String {
    let (whole, fraction) = (micros / 1_000_000, micros % 1_000_000);
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{fraction:06}").trim_end_matches('0'))
    }
}
