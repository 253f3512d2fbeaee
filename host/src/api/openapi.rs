//! The OpenAPI document, generated from the handlers' annotations.

use super::{accounts, capabilities, discover, negotiations, ops, orgs, trust};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Mercato's REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Mercato", description = "A marketplace host for agent capabilities shipped as WebAssembly components. Money is integer micros (1 unit = 1,000,000 micros)."),
    paths(
        orgs::orgs_create,
        orgs::orgs_list,
        orgs::orgs_verify,
        orgs::keys_create,
        orgs::keys_list,
        orgs::keys_revoke,
        trust::well_known_keys,
        trust::admin_reattest,
        capabilities::components_create,
        capabilities::capabilities_list,
        discover::discover,
        capabilities::capabilities_get,
        capabilities::capabilities_attestation,
        capabilities::capabilities_quote,
        capabilities::capabilities_invoke,
        capabilities::transactions_get,
        accounts::disputes_create,
        accounts::disputes_decide,
        accounts::deposits_create,
        accounts::accounts_me,
        accounts::webhook_secret_get,
        accounts::budget_put,
        accounts::ledger_audit,
        accounts::ratings_create,
        accounts::approvers_create,
        accounts::approvals_list,
        accounts::approvals_decide,
        accounts::events_list,
        accounts::orgs_reputation,
        negotiations::negotiations_create,
        negotiations::negotiations_get,
        negotiations::negotiations_respond,
        negotiations::contracts_get,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        serve,
    ),
    components(schemas(super::ErrorBody, super::ErrorDetail)),
    modifiers(&BearerAuth, &EveryAnswer, &Links)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "approver",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("approver token")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("admin token")
                    .build(),
            ),
        );
    }
}

/// The statuses every route can answer besides its own, from the layers in
/// front of all handlers, written into each operation so that the document
/// lists every status a client can meet:
/// - every route: 503 `overloaded` (too many requests in flight) and 504
///   `request_timeout`;
/// - a route with a bearer, approver or admin token: 401;
/// - a route with a JSON body: 400 (not a JSON object, or not the schema),
///   413 (over the size limit), 415 (not `application/json`), and, with a
///   token, 429 (an organisation neither verified nor funded that created
///   too much this minute);
/// - a route that takes an `Idempotency-Key`: 409 (the same key in
///   progress) and 422 (the same key with another body).
struct EveryAnswer;

impl Modify for EveryAnswer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let json_body = operation.request_body.as_ref().is_some_and(|body| {
                    body.content.keys().any(|media| media == "application/json")
                });
                let keyed = operation.parameters.iter().flatten().any(|p| {
                    p.parameter_in == ParameterIn::Header
                        && p.name.eq_ignore_ascii_case("idempotency-key")
                });
                let mut answers: Vec<(&str, &str)> = vec![
                    (
                        "503",
                        "overloaded: too many requests in flight; retry after `Retry-After`",
                    ),
                    (
                        "504",
                        "the request took longer than the host's request timeout",
                    ),
                ];
                if secured {
                    answers.push(("401", "no valid token for this route"));
                }
                if json_body {
                    answers.push((
                        "400",
                        "the body is not a JSON object, or does not fit the schema",
                    ));
                    answers.push(("413", "the body is over the size limit"));
                    answers.push(("415", "the body is not sent as `application/json`"));
                    if secured {
                        answers.push((
                            "429",
                            "an organisation neither verified nor funded created too much this minute; retry after `Retry-After`",
                        ));
                    }
                }
                if keyed {
                    answers.push((
                        "409",
                        "a request with this idempotency key is being handled",
                    ));
                    answers.push(("422", "this idempotency key was used with another body"));
                }
                for (status, description) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

/// A response whose body is the error shape.
fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// OpenAPI links: where an id one operation answers goes next, so that a
/// client (or a stateful test generator) can follow a call from its answer
/// to its record, a negotiation to its state and answer, a contract to its
/// text.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        // (path, method, status, link name, target operation, its `id` from the answer)
        let links: &[(&str, &str, &str, &str, &str, &str)] = &[
            (
                "/v1/capabilities/{id}/invoke",
                "post",
                "200",
                "GetTransaction",
                "transactions_get",
                "$response.body#/transaction_id",
            ),
            (
                "/v1/capabilities/{id}/invoke",
                "post",
                "200",
                "RateTransaction",
                "ratings_create",
                "$response.body#/transaction_id",
            ),
            (
                "/v1/capabilities/{id}/invoke",
                "post",
                "200",
                "DisputeTransaction",
                "disputes_create",
                "$response.body#/transaction_id",
            ),
            (
                "/v1/negotiations",
                "post",
                "201",
                "GetNegotiation",
                "negotiations_get",
                "$response.body#/negotiation/negotiation_id",
            ),
            (
                "/v1/negotiations",
                "post",
                "201",
                "RespondToNegotiation",
                "negotiations_respond",
                "$response.body#/negotiation/negotiation_id",
            ),
            (
                "/v1/negotiations/{id}/respond",
                "post",
                "200",
                "GetContract",
                "contracts_get",
                "$response.body#/contract/contract_id",
            ),
        ];
        for (path, method, status, name, operation_id, id) in links {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let operation = match *method {
                "get" => item.get.as_mut(),
                _ => item.post.as_mut(),
            };
            let Some(operation) = operation else { continue };
            if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) {
                let link = LinkBuilder::new()
                    .operation_id(*operation_id)
                    .parameter("id", *id)
                    .build();
                response.links.insert((*name).to_string(), RefOr::T(link));
            }
        }
    }
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, content_type = "application/json")))]
pub async fn serve() -> axum::Json<serde_json::Value> {
    axum::Json(document().clone())
}

/// The document as served: generated once, with each link's target written
/// `operationId` as OpenAPI spells it (utoipa 5 writes `operation_id`).
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let paths = document.get_mut("paths").and_then(|p| p.as_object_mut());
        for item in paths.into_iter().flat_map(|p| p.values_mut()) {
            let operations = item
                .as_object_mut()
                .into_iter()
                .flat_map(|i| i.values_mut());
            for operation in operations {
                let responses = operation
                    .get_mut("responses")
                    .and_then(|r| r.as_object_mut());
                for response in responses.into_iter().flat_map(|r| r.values_mut()) {
                    let links = response.get_mut("links").and_then(|l| l.as_object_mut());
                    for link in links.into_iter().flat_map(|l| l.values_mut()) {
                        if let Some(link) = link.as_object_mut()
                            && let Some(target) = link.remove("operation_id")
                        {
                            link.insert("operationId".into(), target);
                        }
                    }
                }
            }
        }
        document
    });
    &DOCUMENT
}
