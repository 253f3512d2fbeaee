//! Tokens: the authorization-code and refresh grants, revocation, a
//! request's token authenticated, and an organisation's grants.

use super::records::{
    ACCESS_TTL_MS, AccessRecord, ClientAuth, CodeRecord, Grant, GrantView, Oauth, OauthClient,
    OauthError, REFRESH_TTL_MS, RefreshRecord, TokenResponse, resource_key,
};
use crate::identity::oauth::{self, TokenAccess, new_secret, pkce_matches};
use crate::identity::{Org, hashes_equal, secret_hash};
use crate::market::{Error, Market, Result, now_ms};
use crate::store::Tree;
use std::sync::Arc;

/// How often expired codes and tokens are swept.
const SWEEP_EVERY_MS: u64 = 60_000;

impl Market {
    /// Checks a client's credentials at the token endpoint.
    fn oauth_client_authenticated(&self, auth: &ClientAuth) -> Oauth<OauthClient> {
        let unknown = || OauthError::new("invalid_client", "unknown client or wrong secret");
        let client_id = auth
            .client_id
            .as_deref()
            .ok_or_else(|| OauthError::new("invalid_client", "client_id is required"))?;
        if super::documents::is_document_id(client_id) {
            // A client known by its metadata document is public: PKCE and
            // the code's own client id are its proof.
            if auth.client_secret.is_some() {
                return Err(OauthError::new(
                    "invalid_client",
                    "a client known by its metadata document sends no secret",
                ));
            }
            return Ok(self.document_client_cached(client_id));
        }
        let client = self.oauth_client(client_id)?.ok_or_else(unknown)?;
        match (&client.secret_sha256, &auth.client_secret) {
            (None, None) => Ok(client),
            (Some(stored), Some(given)) if hashes_equal(stored, &secret_hash(given)) => Ok(client),
            (None, Some(_)) => Err(OauthError::new(
                "invalid_client",
                "this client was registered without a secret; send none",
            )),
            _ => Err(unknown()),
        }
    }

    /// The authorization-code grant: the code (single use, unexpired, for
    /// this client and redirect URI) and its PKCE verifier give a new
    /// grant's first tokens.
    pub async fn oauth_exchange_code(
        &self,
        auth: &ClientAuth,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: &str,
        resource: Option<&str>,
    ) -> Oauth<TokenResponse> {
        let client = self.oauth_client_authenticated(auth)?;
        let bad = |m: &str| OauthError::new("invalid_grant", m);
        // Taken, not read: a code is spent by its first presentation,
        // whatever follows.
        let record: CodeRecord = self
            .store
            .take(Tree::Oauth, &format!("code/{}", secret_hash(code)))?
            .ok_or_else(|| bad("the code is unknown, used or expired"))?;
        let now = now_ms();
        if record.expires_at_ms < now {
            return Err(bad("the code is unknown, used or expired"));
        }
        if record.client_id != client.client_id {
            return Err(bad("the code was issued to another client"));
        }
        if redirect_uri.is_some_and(|r| r != record.redirect_uri) {
            return Err(bad("redirect_uri differs from the authorization request's"));
        }
        if !pkce_matches(verifier, &record.code_challenge) {
            return Err(bad("code_verifier does not match the code_challenge"));
        }
        if let Some(asked) = resource
            && !asked.is_empty()
            && resource_key(asked) != resource_key(&record.resource)
        {
            return Err(OauthError::new(
                "invalid_target",
                "resource differs from the authorization request's",
            ));
        }
        let grant = Grant {
            grant_id: format!("gr_{}", uuid::Uuid::now_v7().simple()),
            org_id: record.org_id,
            client_id: client.client_id.clone(),
            client_name: client.client_name.clone(),
            scopes: record.scopes,
            resource: record.resource,
            cap: record.cap,
            created_at_ms: now,
            revoked_at_ms: None,
        };
        self.store
            .put(Tree::Oauth, &format!("grant/{}", grant.grant_id), &grant)?;
        self.store.put(
            Tree::Oauth,
            &format!("org/{}/{}", grant.org_id, grant.grant_id),
            &(),
        )?;
        let tokens = self.oauth_issue(&grant, now)?;
        self.store.sync().await.map_err(Error::from)?;
        Ok(tokens)
    }

    fn oauth_issue(&self, grant: &Grant, now: u64) -> Oauth<TokenResponse> {
        let access_token = new_secret("mat_");
        let refresh_token = new_secret("mrt_");
        self.store.put(
            Tree::Oauth,
            &format!("access/{}", secret_hash(&access_token)),
            &AccessRecord {
                grant_id: grant.grant_id.clone(),
                expires_at_ms: now + ACCESS_TTL_MS,
            },
        )?;
        self.store.put(
            Tree::Oauth,
            &format!("refresh/{}", secret_hash(&refresh_token)),
            &RefreshRecord {
                grant_id: grant.grant_id.clone(),
                expires_at_ms: now + REFRESH_TTL_MS,
                replaced: false,
            },
        )?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ACCESS_TTL_MS / 1000,
            refresh_token,
            scope: grant.scopes.join(" "),
        })
    }

    fn grant(&self, grant_id: &str) -> crate::store::Result<Option<Grant>> {
        self.store.get(Tree::Oauth, &format!("grant/{grant_id}"))
    }

    /// The refresh-token grant: a live refresh token of this client gives
    /// a new pair and is spent. One presented again revokes its grant.
    pub async fn oauth_refresh(
        &self,
        auth: &ClientAuth,
        refresh_token: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Oauth<TokenResponse> {
        let client = self.oauth_client_authenticated(auth)?;
        let bad = |m: &str| OauthError::new("invalid_grant", m);
        let key = format!("refresh/{}", secret_hash(refresh_token));
        let record: RefreshRecord = self
            .store
            .get(Tree::Oauth, &key)?
            .ok_or_else(|| bad("the refresh token is unknown or expired"))?;
        let now = now_ms();
        let grant = self
            .grant(&record.grant_id)?
            .ok_or_else(|| bad("the refresh token is unknown or expired"))?;
        if grant.client_id != client.client_id {
            return Err(bad("the refresh token was issued to another client"));
        }
        if record.replaced {
            // Reuse: someone else holds a copy. Nothing of this grant is
            // trusted any more.
            self.revoke_grant_record(grant, now).await?;
            return Err(bad(
                "this refresh token was already used; the grant is revoked, authorize again",
            ));
        }
        if grant.revoked_at_ms.is_some() || record.expires_at_ms < now {
            return Err(bad("the grant is revoked or the refresh token expired"));
        }
        if let Some(scope) = scope {
            let asked = oauth::requested_scopes(Some(scope))
                .map_err(|m| OauthError::new("invalid_scope", m))?;
            if asked.iter().any(|s| !grant.scopes.contains(s)) {
                return Err(OauthError::new(
                    "invalid_scope",
                    "a refresh cannot widen the scopes granted",
                ));
            }
        }
        if let Some(asked) = resource
            && !asked.is_empty()
            && resource_key(asked) != resource_key(&grant.resource)
        {
            return Err(OauthError::new(
                "invalid_target",
                "resource differs from the grant's",
            ));
        }
        let spent = RefreshRecord {
            replaced: true,
            ..record.clone()
        };
        // Of two concurrent refreshes with one token, one wins.
        if !self
            .store
            .compare_and_swap(Tree::Oauth, &key, &record, &spent)?
        {
            return Err(bad("this refresh token was just used"));
        }
        let tokens = self.oauth_issue(&grant, now)?;
        self.store.sync().await.map_err(Error::from)?;
        Ok(tokens)
    }

    /// Token revocation (RFC 7009): an access token stops working; a
    /// refresh token takes its whole grant with it. Unknown tokens are not
    /// an error.
    pub async fn oauth_revoke(&self, auth: &ClientAuth, token: &str) -> Oauth<()> {
        let client = self.oauth_client_authenticated(auth)?;
        let hash = secret_hash(token);
        if let Some(access) = self
            .store
            .get::<AccessRecord>(Tree::Oauth, &format!("access/{hash}"))?
            && self
                .grant(&access.grant_id)?
                .is_some_and(|g| g.client_id == client.client_id)
        {
            self.store.remove(Tree::Oauth, &format!("access/{hash}"))?;
        }
        if let Some(refresh) = self
            .store
            .get::<RefreshRecord>(Tree::Oauth, &format!("refresh/{hash}"))?
            && let Some(grant) = self.grant(&refresh.grant_id)?
            && grant.client_id == client.client_id
        {
            self.revoke_grant_record(grant, now_ms()).await?;
        }
        self.store.sync().await.map_err(Error::from)?;
        Ok(())
    }

    async fn revoke_grant_record(&self, mut grant: Grant, now: u64) -> Result<()> {
        if grant.revoked_at_ms.is_none() {
            grant.revoked_at_ms = Some(now);
            self.store
                .put(Tree::Oauth, &format!("grant/{}", grant.grant_id), &grant)?;
            self.store.sync().await?;
        }
        Ok(())
    }

    /// The organisation an access token acts for, with what the token may
    /// do, if the token is live, its grant unrevoked, and its resource one
    /// of `accepted` (the door's own and the whole marketplace's).
    pub fn authenticate_token(&self, token: &str, accepted: &[String]) -> Result<Option<Org>> {
        if !token.starts_with("mat_") {
            return Ok(None);
        }
        let Some(access) = self
            .store
            .get::<AccessRecord>(Tree::Oauth, &format!("access/{}", secret_hash(token)))?
        else {
            return Ok(None);
        };
        if access.expires_at_ms < now_ms() {
            return Ok(None);
        }
        let Some(grant) = self
            .store
            .get::<Grant>(Tree::Oauth, &format!("grant/{}", access.grant_id))?
        else {
            return Ok(None);
        };
        if grant.revoked_at_ms.is_some()
            || !accepted
                .iter()
                .any(|r| resource_key(r) == resource_key(&grant.resource))
        {
            return Ok(None);
        }
        let Some(mut org) = self.org(&grant.org_id)? else {
            return Ok(None);
        };
        org.token = Some(Arc::new(TokenAccess {
            grant_id: grant.grant_id,
            scopes: grant.scopes,
            per_call_max_micros: grant.cap.per_call_max_micros,
            daily_max_micros: grant.cap.daily_max_micros,
        }));
        Ok(Some(org))
    }

    /// An organisation's live grants, newest first, with what each spent.
    pub fn grants_of(&self, org_id: &str) -> Result<Vec<GrantView>> {
        let now = now_ms();
        let keys = self
            .store
            .scan_prefix::<()>(Tree::Oauth, &format!("org/{org_id}/"))?;
        let mut grants = Vec::new();
        for (key, ()) in keys.iter().rev() {
            let grant_id = key.rsplit('/').next().unwrap_or_default();
            if let Some(grant) = self.grant(grant_id)?
                && grant.revoked_at_ms.is_none()
            {
                let spend = self.settlement.allowance_spend(&grant.grant_id, now);
                grants.push(GrantView { grant, spend });
            }
        }
        Ok(grants)
    }

    /// A member revokes one of its organisation's grants: its tokens are
    /// refused from the next request on.
    pub async fn revoke_grant(&self, org_id: &str, grant_id: &str) -> Result<()> {
        let grant = self
            .grant(grant_id)?
            .filter(|g| g.org_id == org_id)
            .ok_or_else(|| {
                Error::NotFound(format!("grant `{}`", crate::market::echoed(grant_id)))
            })?;
        self.revoke_grant_record(grant, now_ms()).await
    }

    /// Drops expired codes and access tokens, and refresh tokens past
    /// their life (the sweeper calls it).
    pub fn oauth_sweep(&self, now: u64) -> Result<usize> {
        // A scan of every code and token: once a minute is enough.
        let last = self
            .oauth_swept_at_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if now < last.saturating_add(SWEEP_EVERY_MS) {
            return Ok(0);
        }
        self.oauth_swept_at_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let mut dropped = 0;
        for (key, record) in self.store.scan_prefix::<CodeRecord>(Tree::Oauth, "code/")? {
            if record.expires_at_ms < now {
                self.store.remove(Tree::Oauth, &key)?;
                dropped += 1;
            }
        }
        for (key, record) in self
            .store
            .scan_prefix::<AccessRecord>(Tree::Oauth, "access/")?
        {
            if record.expires_at_ms < now {
                self.store.remove(Tree::Oauth, &key)?;
                dropped += 1;
            }
        }
        for (key, record) in self
            .store
            .scan_prefix::<RefreshRecord>(Tree::Oauth, "refresh/")?
        {
            if record.expires_at_ms < now {
                self.store.remove(Tree::Oauth, &key)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}
