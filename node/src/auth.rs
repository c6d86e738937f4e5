//! Who is calling: an API token, sent as `Authorization: Bearer TOKEN`, as a bare
//! `Authorization: TOKEN` (cargo's habit), or as the password of HTTP Basic auth (git's;
//! the user name is ignored).

use axum::http::HeaderMap;
use base64::Engine;

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{Scope, TokenRecord};

/// The token in the request's headers, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    if let Some(basic) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_, password) = decoded.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_owned());
    }
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// The caller's token record, or 401 when no valid token was sent.
pub fn require_user(state: &AppState, headers: &HeaderMap) -> Result<TokenRecord, ApiError> {
    let Some(token) = presented_token(headers) else {
        return Err(ApiError::unauthorized(
            "this needs an API token: run `mission login`, or send `Authorization: Bearer TOKEN`",
        ));
    };
    match state.store.authenticate(&token) {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(ApiError::unauthorized(
            "the API token is not valid (unknown or revoked)",
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// What every read (index files, details, downloads, search) checks: nothing on a public
/// node; a valid token on a private one (`auth_required`), as cargo expects of an
/// `auth-required` registry.
pub fn require_reader(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config.auth_required {
        require_user(state, headers)?;
    }
    Ok(())
}

/// Like [`require_user`], and the token must hold `scope`.
pub fn require_scope(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<TokenRecord, ApiError> {
    let record = require_user(state, headers)?;
    if !record.scopes.contains(&scope) {
        return Err(ApiError::forbidden(format!(
            "this token lacks the `{}` scope",
            scope.as_str()
        )));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_read_from_bearer_bare_and_basic_auth() {
        assert_eq!(
            presented_token(&headers("Bearer mrt_x")).as_deref(),
            Some("mrt_x")
        );
        assert_eq!(presented_token(&headers("mrt_y")).as_deref(), Some("mrt_y"));
        let basic = base64::engine::general_purpose::STANDARD.encode("git:mrt_z");
        assert_eq!(
            presented_token(&headers(&format!("Basic {basic}"))).as_deref(),
            Some("mrt_z")
        );
        let empty = base64::engine::general_purpose::STANDARD.encode("git:");
        assert_eq!(presented_token(&headers(&format!("Basic {empty}"))), None);
        assert_eq!(presented_token(&HeaderMap::new()), None);
    }
}
