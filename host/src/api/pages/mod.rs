//! Pages for people, rendered on the server (maud), beside the JSON API:
//! the catalog and capability pages for anyone, a consumer's account and
//! transactions, the approvals queue, a provider's dashboard and the
//! operator's. They work without JavaScript; the vendored htmx makes links
//! and forms swap the page instead of reloading it.
//!
//! Every rule is `Market`'s: a page reads through the same operations as
//! `/v1` and a form calls the same ones. This module adds only what a
//! browser needs: sessions in an HttpOnly, SameSite=Strict cookie (Secure
//! over TLS), a CSRF token in every form that changes something, requests
//! from other sites refused, and a strict Content-Security-Policy with the
//! usual headers on every page.

mod account;
mod assets;
mod capability;
mod catalog;
mod consent;
mod operator;
mod provider;
pub mod sessions;
mod view;

use crate::doors::Problem;
use crate::identity::Org;
use crate::market::{Market, now_ms};
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use sessions::{COOKIE, SESSION_TTL_MS, Sessions, Who, same_secret};
use std::sync::Arc;
pub use view::Viewer;

/// What the pages' handlers share.
pub struct Web {
    market: Arc<Market>,
    sessions: Sessions,
    /// Cookies marked `Secure` (the host serves HTTPS).
    secure: bool,
}

/// The pages' routes, for the application's router.
pub fn routes<S>(market: Arc<Market>) -> Router<S> {
    let secure = market.config().tls_cert.is_some();
    let web = Arc::new(Web {
        market,
        sessions: Sessions::default(),
        secure,
    });
    Router::new()
        .route("/", get(catalog::catalog))
        .route("/capabilities/{id}", get(capability::capability))
        .route("/signin", get(sign_in_form).post(sign_in))
        .route("/signout", post(sign_out))
        .route("/account", get(account::dashboard))
        .route("/account/budget", post(account::budget))
        .route("/account/tokens/{grant_id}/revoke", post(consent::revoke))
        .route(
            "/oauth/authorize",
            get(consent::authorize).post(consent::decide),
        )
        .route("/transactions/{id}", get(account::transaction))
        .route("/transactions/{id}/dispute", post(account::dispute))
        .route("/approvals", get(account::approvals))
        .route("/approvals/{id}", post(account::decide))
        .route("/provider", get(provider::dashboard))
        .route("/provider/keys/{key_id}/revoke", post(provider::revoke_key))
        .route("/operator", get(operator::dashboard))
        .route("/operator/orgs/{id}/verify", post(operator::verify))
        .route("/operator/reattest", post(operator::reattest))
        .layer(axum::middleware::map_response(page_headers))
        .route("/assets/{name}", get(assets::asset))
        .with_state(web)
}

/// The headers every page carries: nothing runs but the host's own script,
/// nothing is styled but by its own stylesheet, no page is framed, sniffed,
/// or followed by a full referrer.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    // A page may name more places its form goes (the consent page: the
    // client's redirect URI); otherwise only this site.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session cookie's value, if the request carries one.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The viewer of a request: signed in or not, with their CSRF token.
pub struct Seen(pub Viewer);

impl FromRequestParts<Arc<Web>> for Seen {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        web: &Arc<Web>,
    ) -> Result<Self, Self::Rejection> {
        let found = session_token(&parts.headers).and_then(|t| web.sessions.find(t, now_ms()));
        Ok(Seen(match found {
            Some((who, csrf)) => Viewer {
                who: Some(who),
                csrf,
            },
            None => Viewer::visitor(),
        }))
    }
}

/// A page as a response.
fn html_page(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A market error as a page with the status `/v1` would answer.
fn failure(viewer: &Viewer, problem: Problem) -> Response {
    let status = super::status_of(problem.code());
    let body = problem.body();
    let what_to_do = match status.as_u16() {
        404 => "Check the address, or go back to the catalog.",
        401 | 403 => "Sign in with a key that may do this.",
        409 | 422 | 400 => "Correct the form and send it again.",
        429 | 503 | 504 => "Wait a moment and try again.",
        _ => "Try again; if it keeps happening, tell the marketplace's operator.",
    };
    let mut response = html_page(view::error_page(
        viewer,
        status.as_u16(),
        &body.error.message,
        what_to_do,
    ));
    *response.status_mut() = status;
    response
}

/// Not found, as a page (also what another organisation's record is).
fn not_found(viewer: &Viewer, what: &str) -> Response {
    failure(viewer, Problem::new("not_found", format!("no such {what}")))
}

/// Sends someone who is not signed in as the page needs to the sign-in
/// form, coming back here after.
fn sign_in_first(next: &str) -> Response {
    Redirect::to(&format!("/signin?next={}", encode(next))).into_response()
}

/// A form's checks before anything changes: sent from this site (the
/// browser's `Sec-Fetch-Site`, when it sends one) and carrying the
/// session's CSRF token.
fn form_refused(viewer: &Viewer, headers: &HeaderMap, csrf: &str) -> Option<Response> {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site != "same-origin" && site != "none");
    if cross_site {
        return Some(forbidden(viewer, "this form was sent from another site"));
    }
    if viewer.who.is_none() || viewer.csrf.is_empty() || !same_secret(&viewer.csrf, csrf) {
        return Some(forbidden(
            viewer,
            "this form's security token is missing or out of date",
        ));
    }
    None
}

fn forbidden(viewer: &Viewer, message: &str) -> Response {
    let mut response = html_page(view::error_page(
        viewer,
        403,
        message,
        "Reload the page and send the form again.",
    ));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// Percent-encodes a value for a query string or path segment.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A local path to come back to, never another site.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/",
    }
}

/// The organisation a member's session names (it may have gone since).
fn member(web: &Web, viewer: &Viewer) -> Option<Org> {
    match &viewer.who {
        Some(Who::Member { org_id }) => web.market.org(org_id).ok().flatten(),
        _ => None,
    }
}

#[derive(serde::Deserialize)]
struct SignInQuery {
    next: Option<String>,
}

async fn sign_in_form(
    Seen(viewer): Seen,
    axum::extract::Query(query): axum::extract::Query<SignInQuery>,
) -> Response {
    html_page(sign_in_page(&viewer, query.next.as_deref(), None))
}

fn sign_in_page(viewer: &Viewer, next: Option<&str>, error: Option<&str>) -> Markup {
    view::page(
        viewer,
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Sign in with your organisation's API key, an approver token (for the approvals queue) or the operator's admin token. It is checked once; the page then keeps a session, never the key." }
            @if let Some(error) = error {
                p.error role="alert" #signin-error { (error) }
            }
            form.stack method="post" action="/signin" hx-boost="false" {
                input type="hidden" name="next" value=(local_path(next));
                label for="key" { "Key or token" }
                input #key type="password" name="key" required autocomplete="current-password"
                    aria-describedby=[error.map(|_| "signin-error")];
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(serde::Deserialize)]
struct SignInForm {
    key: String,
    next: Option<String>,
}

async fn sign_in(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    form: Result<axum::Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site != "same-origin" && site != "none");
    if cross_site {
        return forbidden(&viewer, "sign-in must come from this site's own form");
    }
    let Ok(axum::Form(form)) = form else {
        return bad_sign_in(&viewer, None, "Enter a key or token.");
    };
    let key = form.key.trim();
    let who = match web.market.authenticate(key) {
        Ok(Some(org)) => Some(Who::Member { org_id: org.org_id }),
        Ok(None) => match web.market.approver(key) {
            Ok(Some(org_id)) => Some(Who::Approver { org_id }),
            Ok(None) if !key.is_empty() && web.market.is_admin(key) => Some(Who::Operator),
            Ok(None) => None,
            Err(e) => return failure(&viewer, e.into()),
        },
        Err(e) => return failure(&viewer, e.into()),
    };
    let Some(who) = who else {
        return bad_sign_in(
            &viewer,
            form.next.as_deref(),
            "That key or token is not known here. Check it and try again.",
        );
    };
    let next = match (&who, local_path(form.next.as_deref())) {
        (Who::Approver { .. }, "/") => "/approvals",
        (Who::Operator, "/") => "/operator",
        (Who::Member { .. }, "/") => "/account",
        (_, next) => next,
    }
    .to_string();
    let token = web.sessions.open(who, now_ms());
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        if web.secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn bad_sign_in(viewer: &Viewer, next: Option<&str>, message: &str) -> Response {
    let mut response = html_page(sign_in_page(viewer, next, Some(message)));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Some(refused) = form_refused(&viewer, &headers, &csrf) {
        return refused;
    }
    if let Some(token) = session_token(&headers) {
        web.sessions.close(token);
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("mercato_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/account")), "/account");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mercato_session=abc; b=2"),
        );
        assert_eq!(session_token(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("mercato_sessionx=abc"),
        );
        assert_eq!(session_token(&headers), None);
    }
}
