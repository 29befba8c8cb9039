//! Request bodies: OAuth forms (RFC 6749 §3.2: form-encoded, each parameter at most once, empty means absent) and admin JSON, with errors that name the parameter but never echo a value. Uses: domain.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::domain::Error;

/// The parameters of a form-encoded body. `Debug` shows names only: values include passwords,
/// secrets and tokens.
#[derive(Default)]
pub struct Params(HashMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Params {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            // RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
            if value.is_empty() {
                continue;
            }
            // No identifier, secret or token of ours holds a NUL; the database could not store it.
            if name.contains('\0') || value.contains('\0') {
                return Err(Error::invalid_request(format!(
                    "parameter {} contains a NUL character",
                    printable(&name)
                )));
            }
            if params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(Error::invalid_request(format!(
                    "parameter {} is repeated",
                    printable(&name)
                )));
            }
        }
        Ok(Self(params))
    }

    /// Takes one parameter out, to move it into a typed form.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }
}

/// A parameter the request needs, checked where its endpoint checks it (after the client is
/// authenticated, except `grant_type`).
pub fn require<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, Error> {
    value
        .as_deref()
        .ok_or_else(|| Error::invalid_request(format!("parameter {name} is missing")))
}

/// JSON can carry a NUL only as the escape `\u0000`; no value of ours holds one, and
/// PostgreSQL could not store it.
fn reject_json_nul(body: &[u8]) -> Result<(), Error> {
    if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(Error::invalid_request("the body contains a NUL character"));
    }
    Ok(())
}

/// A parameter name is caller text: keep it short and plain before it reaches an error body.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

fn content_type_is(request: &Request, expected: &str) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// A form-encoded body (`application/x-www-form-urlencoded`), and nothing else.
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(&request, "application/x-www-form-urlencoded") {
            return Err(Error::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )
            .into());
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    "invalid_request",
                    "the body could not be read",
                )
            })?;
        Ok(Self(Params::parse(&body)?))
    }
}

/// The body of POST /refresh: the same parameters as a form, or as a JSON object of strings.
pub struct FormOrJson(pub Params);

impl<S: Send + Sync> FromRequest<S> for FormOrJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(&request, "application/json") {
            return OAuthForm::from_request(request, state)
                .await
                .map(|OAuthForm(p)| Self(p));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    "invalid_request",
                    "the body could not be read",
                )
            })?;
        reject_json_nul(&body)?;
        let Members(members) = serde_json::from_slice(&body)
            .map_err(|_| Error::invalid_request("the body must be a JSON object"))?;
        let mut params = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in members {
            // RFC 8259 §4: with a name repeated, readers disagree on which value counts; as in
            // a form (RFC 6749 §3.2), a repeated parameter is refused, never one of them picked.
            if !seen.insert(name.clone()) {
                return Err(Error::invalid_request(format!(
                    "parameter {} is repeated",
                    printable(&name)
                ))
                .into());
            }
            match value {
                serde_json::Value::String(text) if text.is_empty() => {}
                serde_json::Value::String(text) => {
                    params.insert(name, text);
                }
                serde_json::Value::Null => {}
                _ => {
                    return Err(Error::invalid_request(format!(
                        "{} must be a string",
                        printable(&name)
                    ))
                    .into());
                }
            }
        }
        Ok(Self(Params(params)))
    }
}

/// The members of a JSON object in the order sent, repeated names included (a map would keep
/// only the last value of a repeated name, silently).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

/// A JSON body for the admin API. Errors name a missing or unknown field, never a value.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(&request, "application/json") {
            return Err(not_json());
        }
        let body = read_body(request, state).await?;
        parse_json(&body).map(Self)
    }
}

/// A JSON body the admin API may also be sent without: an empty body is `T::default()`
/// (POST /admin/keys/rotate without `{"force": true}`, as before the body existed).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = content_type_is(&request, "application/json");
        let body = read_body(request, state).await?;
        if body.is_empty() {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(not_json());
        }
        // The documented body is optional and nullable: JSON `null` is no options at all.
        if body.trim_ascii() == b"null" {
            return Ok(Self(T::default()));
        }
        parse_json(&body).map(Self)
    }
}

fn not_json() -> ApiError {
    Error::invalid_request("the body must be application/json").into()
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            ApiError::new(
                rejection.status(),
                "invalid_request",
                "the body could not be read",
            )
        })
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    reject_json_nul(body)?;
    // Every admin body is an object; serde would also fill a struct from an array.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::invalid_request("the body must be a JSON object").into());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        let text = e.to_string();
        // serde names fields in backquotes; other messages may quote the offending value, so
        // only the member's path is named for them.
        let message = if text.starts_with("missing field") || text.starts_with("unknown field") {
            text.split(", expected")
                .next()
                .unwrap_or("")
                .split(" at line")
                .next()
                .unwrap_or("")
                .to_owned()
        } else if e.is_data() && path != "." {
            // The path is made of the endpoint's own member names and indices.
            let path: String = path
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "_.[]".contains(*c))
                .take(60)
                .collect();
            format!("{path}: not a valid value for this member")
        } else {
            format!(
                "the body is not valid JSON for this endpoint (line {}, column {})",
                e.line(),
                e.column()
            )
        };
        Error::invalid_request(message).into()
    })
}
