//! Mercato as its own OAuth 2.1 authorization server, for agents that
//! connect the standard MCP way instead of with a pasted API key.
//!
//! A client registers (RFC 7591) or is known; a person of an organisation
//! signs in on the pages and consents to a client, its scopes and a
//! **spending cap for this token**; the client trades the single-use code
//! (PKCE S256 only) for a short-lived access token bound to one resource
//! (RFC 8707) and a rotating refresh token. A request made with the access
//! token acts as the organisation with [`TokenAccess`] set on it: every
//! door's call holds money through the token's cap (a settlement
//! allowance), exactly like a budget.
//!
//! Only hashes of codes and tokens are stored. A refresh token used twice
//! (a stolen copy racing its owner) revokes the whole grant (RFC 9700
//! §4.14.2). Revoking a grant refuses its tokens at once: every request
//! reads the grant.

mod clients;
mod documents;
mod records;
mod tokens;

pub use records::{
    ACCESS_TTL_MS, AuthorizeParams, AuthorizeRequest, Cap, ClientAuth, ClientMetadata, Grant,
    GrantView, OauthClient, OauthError, Registered, TokenResponse,
};
