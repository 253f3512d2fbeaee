//! The OAuth authorization endpoint as a page: a member of an organisation,
//! signed in, sees which client asks, for what, on which door, sets a
//! spending cap for the token, and approves or denies; the answer goes back
//! to the client's redirect URI. Also the account page's list of connected
//! clients (what each token spent) and its revoke button.
//!
//! Every check is `Market`'s (`oauth_authorize_client`,
//! `oauth_authorize_check`, `oauth_consent`); an error about the client or
//! its redirect URI is shown here and never sent on (RFC 6749 §4.1.2.1),
//! any other goes back to the client.

use super::catalog::parse_units;
use super::view::{self, amount};
use super::{Seen, Web, failure, form_refused, html_page, member, sign_in_first};
use crate::market::{AuthorizeParams, AuthorizeRequest, Cap, GrantView, OauthError};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::sync::Arc;

fn scope_meaning(scope: &str) -> &'static str {
    match scope {
        "discover" => "read the catalog: list and discover capabilities, quotes",
        "invoke" => "call capabilities, paid from your balance within the cap below",
        _ => "",
    }
}

/// The authorization request's parameters, checked by the market: the
/// client and redirect URI first (shown here when wrong), then the rest
/// (sent back to the client when wrong).
async fn checked(
    web: &Web,
    params: &AuthorizeParams,
    base: &str,
) -> Result<Result<AuthorizeRequest, (OauthError, String)>, OauthError> {
    let (client, redirect_uri) = web.market.oauth_authorize_client(params).await?;
    let mut resources = crate::api::oauth::resources(base);
    // An agent's own endpoint, when the request names a listed one.
    if let Some(agent) = params.resource.as_deref().and_then(|r| {
        r.trim_end_matches('/')
            .strip_prefix(&format!("{base}/mcp/agents/"))
    }) && !agent.contains('/')
        && !web.market.registry_versions(agent).is_empty()
    {
        resources.push(format!("{base}/mcp/agents/{agent}"));
    }
    Ok(web
        .market
        .oauth_authorize_check(client, redirect_uri.clone(), params, &resources)
        .map_err(|e| (e, redirect_uri)))
}

/// Where the answer goes: the redirect URI with `pairs` added to its query
/// (and `iss`, RFC 9207), as a 303.
fn answer(redirect_uri: &str, pairs: &[(&str, &str)], base: &str) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        query.append_pair("iss", base);
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error_answer(
    error: &OauthError,
    redirect_uri: &str,
    state: Option<&str>,
    base: &str,
) -> Response {
    let mut pairs = vec![
        ("error", error.code),
        ("error_description", error.description.as_str()),
    ];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    answer(redirect_uri, &pairs, base)
}

/// Not sent on: the person reads what is wrong.
fn shown_error(viewer: &super::Viewer, error: OauthError) -> Response {
    let mut response = html_page(view::error_page(
        viewer,
        400,
        &format!("This sign-in link is not valid: {}", error.description),
        "Go back to the application that sent you here and connect again; if it keeps happening, tell its makers.",
    ));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

fn params_of(query: Option<&str>) -> AuthorizeParams {
    serde_urlencoded_params(query.unwrap_or(""))
}

fn serde_urlencoded_params(query: &str) -> AuthorizeParams {
    let mut params = AuthorizeParams::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "response_type" => params.response_type = value,
            "client_id" => params.client_id = value,
            "redirect_uri" => params.redirect_uri = Some(value),
            "scope" => params.scope = Some(value),
            "state" => params.state = Some(value),
            "code_challenge" => params.code_challenge = Some(value),
            "code_challenge_method" => params.code_challenge_method = Some(value),
            "resource" => params.resource = Some(value),
            _ => {}
        }
    }
    params
}

/// `GET /oauth/authorize`: the consent page (after sign-in).
pub async fn authorize(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let base = crate::api::oauth::base_url(&web.market, &headers);
    let params = params_of(query.as_deref());
    let request = match checked(&web, &params, &base).await {
        Err(error) => return shown_error(&viewer, error),
        Ok(Err((error, redirect_uri))) => {
            return error_answer(&error, &redirect_uri, params.state.as_deref(), &base);
        }
        Ok(Ok(request)) => request,
    };
    let Some(org) = member(&web, &viewer) else {
        let here = format!("/oauth/authorize?{}", query.unwrap_or_default());
        return sign_in_first(&here);
    };
    consent_page(&viewer, &org, &request, &params, None)
}

fn consent_page(
    viewer: &super::Viewer,
    org: &crate::identity::Org,
    request: &AuthorizeRequest,
    params: &AuthorizeParams,
    problem: Option<&str>,
) -> Response {
    let client = &request.client;
    let name = client.client_name.as_deref().unwrap_or("An unnamed client");
    let target = url::Url::parse(&request.redirect_uri).ok();
    let goes_to = target
        .as_ref()
        .map(|u| match u.host_str() {
            Some(host) => format!("{}://{host}", u.scheme()),
            None => format!("{}:", u.scheme()),
        })
        // It goes into a header and a CSP source: nothing but what a scheme
        // and host are made of.
        .filter(|origin| {
            origin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-+:/[]".contains(&b))
        })
        .unwrap_or_default();
    let hidden = [
        ("response_type", Some(params.response_type.as_str())),
        ("client_id", Some(params.client_id.as_str())),
        ("redirect_uri", params.redirect_uri.as_deref()),
        ("scope", params.scope.as_deref()),
        ("state", params.state.as_deref()),
        ("code_challenge", params.code_challenge.as_deref()),
        (
            "code_challenge_method",
            params.code_challenge_method.as_deref(),
        ),
        ("resource", params.resource.as_deref()),
    ];
    let mut response = html_page(view::page(
        viewer,
        "Connect an application",
        None,
        html! {
            h1 { "Connect “" (name) "” to " (org.name) }
            p.muted { "The name is the application's own claim. Client " code { (client.client_id) } "; answers go to " code { (goes_to) } "." }
            @if let Some(problem) = problem {
                p.error role="alert" #consent-error { (problem) " Correct it and approve again." }
            }
            section aria-labelledby="asks" {
                h2 #asks { "It asks to" }
                ul { @for scope in &request.scopes {
                    li { strong { (scope) } ": " (scope_meaning(scope)) }
                } }
                p { "On " code { (request.resource) } ", acting as " (org.name) ". It never sees your API key." }
            }
            form.grid method="post" action="/oauth/authorize" hx-boost="false" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                @for (field, value) in hidden {
                    @if let Some(value) = value {
                        input type="hidden" name=(field) value=(value);
                    }
                }
                div { label for="per_call_max" { "Most this token may spend per call (units)" }
                    input #per_call_max name="per_call_max" inputmode="decimal"
                        aria-describedby=[problem.map(|_| "consent-error")]; }
                div { label for="daily_max" { "Most this token may spend per day (units)" }
                    input #daily_max name="daily_max" inputmode="decimal"; }
                p.muted { "Empty means no cap of its own: your organisation's budget still applies. Calls past a cap are refused and cost nothing." }
                div.actions {
                    button type="submit" name="decision" value="approve" { "Approve" }
                    " "
                    button.secondary type="submit" name="decision" value="deny" { "Deny" }
                }
            }
        },
    ));
    // The answer is a redirect to the client: the form may go there.
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self' {goes_to}; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

#[derive(serde::Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    per_call_max: String,
    #[serde(default)]
    daily_max: String,
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    resource: Option<String>,
}

fn cap_field(text: &str, what: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match parse_units(text) {
        Some(0) => Err(format!(
            "{what}: a cap of 0 would refuse every paid call; leave it empty instead."
        )),
        Some(micros) => Ok(Some(micros)),
        None => Err(format!(
            "{what}: “{text}” is not an amount (units, up to 6 decimals)."
        )),
    }
}

/// `POST /oauth/authorize`: the person's decision.
pub async fn decide(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    form: Result<axum::Form<ConsentForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return super::forbidden(&viewer, "this form could not be read");
    };
    if let Some(refused) = form_refused(&viewer, &headers, &form.csrf) {
        return refused;
    }
    let base = crate::api::oauth::base_url(&web.market, &headers);
    let params = AuthorizeParams {
        response_type: form.response_type.clone(),
        client_id: form.client_id.clone(),
        redirect_uri: form.redirect_uri.clone(),
        scope: form.scope.clone(),
        state: form.state.clone(),
        code_challenge: form.code_challenge.clone(),
        code_challenge_method: form.code_challenge_method.clone(),
        resource: form.resource.clone(),
    };
    let request = match checked(&web, &params, &base).await {
        Err(error) => return shown_error(&viewer, error),
        Ok(Err((error, redirect_uri))) => {
            return error_answer(&error, &redirect_uri, params.state.as_deref(), &base);
        }
        Ok(Ok(request)) => request,
    };
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first("/account");
    };
    let state = request.state.as_deref();
    if form.decision != "approve" {
        let denied = OauthError {
            code: "access_denied",
            description: "the person denied the request".into(),
        };
        return error_answer(&denied, &request.redirect_uri, state, &base);
    }
    let cap = match (
        cap_field(&form.per_call_max, "Most per call"),
        cap_field(&form.daily_max, "Most per day"),
    ) {
        (Ok(per_call), Ok(daily)) => Cap {
            per_call_max_micros: per_call,
            daily_max_micros: daily,
        },
        (Err(problem), _) | (_, Err(problem)) => {
            let mut response = consent_page(&viewer, &org, &request, &params, Some(&problem));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    match web.market.oauth_consent(&org, &request, cap).await {
        Ok(code) => {
            let mut pairs = vec![("code", code.as_str())];
            if let Some(state) = state {
                pairs.push(("state", state));
            }
            answer(&request.redirect_uri, &pairs, &base)
        }
        Err(e) => failure(&viewer, e.into()),
    }
}

/// The account page's section: the clients connected with a token, what
/// each may do and has spent, and a revoke button each.
pub fn connected(viewer: &super::Viewer, grants: &[GrantView]) -> Markup {
    html! {
        section aria-labelledby="connected" {
            h2 #connected { "Connected applications" }
            @if grants.is_empty() {
                p.empty { "None. An MCP client that connects with OAuth asks you here first; what you approve, with its spending cap, appears in this list." }
            } @else {
                table.results {
                    caption.sr { "Applications holding a token, newest first" }
                    thead { tr {
                        th scope="col" { "Application" } th scope="col" { "May" }
                        th scope="col" { "Cap per call" } th scope="col" { "Cap per day" }
                        th scope="col" { "Spent today" } th scope="col" { "Spent in all" }
                        th scope="col" { span.sr { "Revoke" } }
                    } }
                    tbody { @for g in grants {
                        tr {
                            td { (g.grant.client_name.as_deref().unwrap_or("unnamed")) br; small.muted { "since " (view::when(g.grant.created_at_ms)) } }
                            td { (g.grant.scopes.join(", ")) }
                            td.num { (cap_cell(g.grant.cap.per_call_max_micros)) }
                            td.num { (cap_cell(g.grant.cap.daily_max_micros)) }
                            td.num { (amount(g.spend.today_micros)) }
                            td.num { (amount(g.spend.total_micros)) }
                            td {
                                form method="post" action={ "/account/tokens/" (g.grant.grant_id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button.secondary type="submit" aria-label={ "Revoke " (g.grant.client_name.as_deref().unwrap_or("unnamed")) } { "Revoke" }
                                }
                            }
                        }
                    } }
                }
            }
        }
    }
}

fn cap_cell(micros: Option<u64>) -> Markup {
    match micros {
        Some(m) => amount(m),
        None => html! { span.muted { "budget only" } },
    }
}

#[derive(serde::Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /account/tokens/{grant_id}/revoke`.
pub async fn revoke(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    Path(grant_id): Path<String>,
    form: Result<axum::Form<RevokeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Some(refused) = form_refused(&viewer, &headers, &csrf) {
        return refused;
    }
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first("/account");
    };
    match web.market.revoke_grant(&org.org_id, &grant_id).await {
        Ok(()) => Redirect::to("/account?notice=Token+revoked.#connected").into_response(),
        Err(e) => failure(&viewer, e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_the_redirect_uris_own_query() {
        let response = answer(
            "http://127.0.0.1:9/cb?x=1",
            &[("code", "a b"), ("state", "s&t")],
            "http://h",
        );
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(
            location,
            "http://127.0.0.1:9/cb?x=1&code=a+b&state=s%26t&iss=http%3A%2F%2Fh"
        );
    }

    #[test]
    fn caps_are_units_and_never_zero() {
        assert_eq!(cap_field("", "x"), Ok(None));
        assert_eq!(cap_field("0.25", "x"), Ok(Some(250_000)));
        assert!(cap_field("0", "x").is_err());
        assert!(cap_field("-1", "x").is_err());
    }
}
