//! GET /.well-known/jwks.json (RFC 7517 §5): the published public keys, rendered by the key ring whenever the key set changes, with a strong ETag. Uses: domain.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Ref, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::AppState;

/// RFC 7517 §5: the JWK Set, public keys only, as the key ring rendered it when the key set
/// last changed: the ETag is over these bytes, so they are served as they are.
pub struct Jwks(Bytes);

impl IntoResponse for Jwks {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

impl PartialSchema for Jwks {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("RFC 7517 §5: public keys only."))
            .property(
                "keys",
                ArrayBuilder::new().items(Ref::from_schema_name("Jwk")),
            )
            .required("keys")
            .into()
    }
}

impl ToSchema for Jwks {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Jwks")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Jwk".to_owned(), jwk()));
    }
}

/// A public JWK (RFC 7517 §4) with the parameters of its key type (RFC 7518 §6, RFC 8037),
/// as crypto writes it.
fn jwk() -> RefOr<Schema> {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let optional =
        || ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]));
    let mut jwk = ObjectBuilder::new()
        .description(Some(
            "A public JWK (RFC 7517 §4) with the parameters of its key type (RFC 7518 §6, RFC 8037).",
        ))
        .property("kid", text())
        .property("kty", text().description(Some("`EC`, `OKP` or `RSA`.")))
        .property("alg", text())
        .property("use", text());
    for name in ["kid", "kty", "alg", "use"] {
        jwk = jwk.required(name);
    }
    for name in ["crv", "x", "y", "n", "e"] {
        jwk = jwk.property(name, optional());
    }
    jwk.into()
}

#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "discovery", operation_id = "jwks",
    responses(
        (status = 200, description = "The next, active and retired-in-window public keys", body = Jwks,
            headers(("cache-control" = String, description = "public, max-age=TESSERA_JWKS_MAX_AGE"), ("etag" = String))),
        (status = 304, description = "The key set still has the ETag sent in If-None-Match", headers(("etag" = String))),
    )
)]
pub async fn get(State(app): State<AppState>, request: HeaderMap) -> Response {
    let snapshot = app.issuer.keys().snapshot();
    let etag = HeaderValue::from_str(&snapshot.etag).expect("the ETag is base64url in quotes");
    let headers = [
        (header::CACHE_CONTROL, app.jwks_cache_control.clone()),
        (header::ETAG, etag),
    ];
    if if_none_match(&request, &snapshot.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, Jwks(snapshot.jwks.clone())).into_response()
}

/// RFC 9110 §13.1.2: a list of entity tags or `*`; weak comparison is allowed for GET.
pub(crate) fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}
