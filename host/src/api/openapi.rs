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
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(super::ErrorBody, super::ErrorDetail)),
    modifiers(&BearerAuth)
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
