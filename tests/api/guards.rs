//! The guards of issue 12 that hold at the edge and under races: repeated JSON members, key
//! rotation's 409, cross-site requests, bounded staleness of revocations and the last admin.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_error};

/// A password login of a new user with a standard client: (client, refresh token).
async fn login(app: &TestApp) -> ((String, String), String) {
    let (id, secret) = app.standard_client().await;
    app.create_user("grace", "grace's password").await;
    let body: Value = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "grace"),
                ("password", "grace's password"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = body["refresh_token"].as_str().unwrap().to_owned();
    ((id, secret), token)
}

async fn refresh_json(app: &TestApp, client: &(String, String), body: String) -> reqwest::Response {
    app.request(Method::POST, "/refresh")
        .basic_auth(&client.0, Some(&client.1))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn a_repeated_json_member_in_refresh_is_invalid_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client, token) = login(&app).await;
    // Which of two values counts differs between JSON readers: neither may be picked.
    for body in [
        format!(r#"{{"refresh_token":"{token}","refresh_token":"tsr_other"}}"#),
        format!(r#"{{"refresh_token":"tsr_other","refresh_token":"{token}"}}"#),
        format!(r#"{{"refresh_token":"{token}","refresh_token":"{token}"}}"#),
        format!(r#"{{"refresh_token":"{token}","scope":"read","scope":"read write"}}"#),
    ] {
        let refused = assert_error(
            refresh_json(&app, &client, body).await,
            400,
            "invalid_request",
        )
        .await;
        let text = refused.to_string();
        assert!(text.contains("repeated"), "{text}");
        assert!(!text.contains(&token), "no value is echoed: {text}");
    }
    // Nothing was used up: the token still rotates, once.
    let response = refresh_json(&app, &client, json!({"refresh_token": token}).to_string()).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
}

both_backends!(a_repeated_json_member_in_refresh_is_invalid_request,);
