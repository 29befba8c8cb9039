//! Browser sessions (CONTRACT: browser sign-in): the signed-in state a cookie carries between /authorize requests, with absolute and idle lifetimes. Uses: store, crypto, clock, model.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Error, Issuer};
use crate::crypto::random_bytes;
use crate::crypto::secrets::sha256;
use crate::model::BrowserSession;

/// A browser session's cookie value in clear: 256 random bits, base64url (43 characters).
/// Only its SHA-256 is stored; `Debug` is redacted.
pub struct BrowserCookie(String);

impl BrowserCookie {
    fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BrowserCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrowserCookie([redacted])")
    }
}

/// The digest of a presented cookie value; `None` for a value that cannot be one of ours (no
/// lookup then).
fn cookie_digest(value: &str) -> Option<[u8; 32]> {
    (value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| sha256(value.as_bytes()))
}

impl Issuer {
    /// Starts a browser session for a user who has just signed in (through
    /// [`Issuer::sign_in`]). The cookie value is returned once.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn start_browser_session(
        &self,
        user_id: uuid::Uuid,
        source_addr: Option<IpAddr>,
    ) -> Result<(BrowserCookie, BrowserSession), Error> {
        let cookie = BrowserCookie::generate();
        let now = self.clock.now();
        let session = BrowserSession {
            browser_session_id: uuid::Uuid::new_v4(),
            user_id,
            source_addr: source_addr.map(|ip| ip.to_string()),
            created_at: now,
            expires_at: now + self.policy.browser_session_ttl,
            last_seen_at: now,
        };
        self.store
            .add_browser_session(&session, &sha256(cookie.expose().as_bytes()))
            .await?;
        tracing::info!(browser_session_id = %session.browser_session_id, "browser session started");
        Ok((cookie, session))
    }

    /// The live browser session a cookie names, its idle clock restarted; `None` when unknown,
    /// past its absolute or idle lifetime, ended, or its user disabled.
    pub async fn browser_session(
        &self,
        cookie_value: &str,
    ) -> Result<Option<BrowserSession>, Error> {
        let Some(digest) = cookie_digest(cookie_value) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let idle_since = now - self.policy.browser_session_idle_ttl;
        Ok(self
            .store
            .touch_browser_session(&digest, now, idle_since)
            .await?)
    }

    /// Ends the browser session a cookie names (POST /logout). Ending an unknown or ended one
    /// is no error: the browser is signed out either way.
    pub async fn end_browser_session(&self, cookie_value: &str) -> Result<(), Error> {
        let Some(digest) = cookie_digest(cookie_value) else {
            return Ok(());
        };
        if self
            .store
            .end_browser_session(&digest, self.clock.now())
            .await?
        {
            tracing::info!("browser session ended");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_256_bit_redacted_and_looked_up_only_when_well_formed() {
        let cookie = BrowserCookie::generate();
        assert_eq!(cookie.expose().len(), 43);
        assert_ne!(cookie.expose(), BrowserCookie::generate().expose());
        assert_eq!(format!("{cookie:?}"), "BrowserCookie([redacted])");
        assert_eq!(
            cookie_digest(cookie.expose()),
            Some(sha256(cookie.expose().as_bytes()))
        );
        assert_eq!(cookie_digest(""), None);
        assert_eq!(cookie_digest(&format!("{}=", &cookie.expose()[1..])), None);
        assert_eq!(cookie_digest(&"a".repeat(44)), None);
    }
}
