//! The shared part of browser sessions and authorization codes. Each backend provides `USER_ENABLED` (how a login waits for an offboarding in progress, as for a password login). Uses: model, rows.

use std::sync::LazyLock;

pub(crate) const BROWSER_COLUMNS: &str =
    "browser_session_id, user_id, source_addr, created_at, expires_at, last_seen_at";

pub(crate) const INSERT_BROWSER: &str = "insert into browser_session
         (browser_session_id, token_digest, user_id, source_addr, created_at, expires_at, last_seen_at)
     values ($1, $2, $3, $4, $5, $6, $5)";

/// Finds and touches in one statement; a disabled user's sessions are dead even before the
/// disabling transaction's end of them is seen.
pub(crate) static TOUCH_BROWSER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update browser_session set last_seen_at = $2
         where token_digest = $1 and ended_at is null and expires_at > $2 and last_seen_at > $3
           and user_id in (select user_id from user_account where not disabled)
         returning {BROWSER_COLUMNS}"
    )
});

pub(crate) const END_BROWSER: &str =
    "update browser_session set ended_at = $2 where token_digest = $1 and ended_at is null";

/// Every browser session of a user: disabled, subject revoked, new password.
pub(crate) const END_USER_BROWSERS: &str =
    "update browser_session set ended_at = $2 where user_id = $1 and ended_at is null";

pub(crate) const CODE_COLUMNS: &str =
    "code_digest, client_id, user_id, browser_session_id, redirect_uri, code_challenge,
    scope, created_at, expires_at, used_at, session_id";

pub(crate) const INSERT_CODE: &str =
    "insert into authorization_code (code_digest, client_id, user_id, browser_session_id,
         redirect_uri, code_challenge, scope, created_at, expires_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) static FIND_CODE: LazyLock<String> = LazyLock::new(|| {
    format!("select {CODE_COLUMNS} from authorization_code where code_digest = $1")
});

/// The single-use check: a second exchange re-checks `used_at` after the first commits (the
/// row lock on PostgreSQL, the write lock on SQLite) and changes nothing.
pub(crate) const CLAIM_CODE: &str = "update authorization_code set used_at = $2
     where code_digest = $1 and used_at is null and expires_at > $2";

pub(crate) const LINK_CODE: &str =
    "update authorization_code set session_id = $2 where code_digest = $1";

macro_rules! authorization_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{AuthorizationCode, BrowserSession, NewRefreshToken, Session};
            use $crate::store::rows::{AuthorizationCodeRow, BrowserSessionRow, DbTime, DbUuid};
            use $crate::store::sql::authorization as q;
            use $crate::store::{AuthorizationStore, CodeRedeemed, SessionAdded, StoreError};

            #[async_trait::async_trait]
            impl AuthorizationStore for $store {
                async fn add_browser_session(
                    &self,
                    session: &BrowserSession,
                    digest: &[u8; 32],
                ) -> Result<(), StoreError> {
                    sqlx::query(q::INSERT_BROWSER)
                        .bind(DbUuid(session.browser_session_id))
                        .bind(&digest[..])
                        .bind(DbUuid(session.user_id))
                        .bind(&session.source_addr)
                        .bind(DbTime(session.created_at))
                        .bind(DbTime(session.expires_at))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn touch_browser_session(
                    &self,
                    digest: &[u8; 32],
                    now: OffsetDateTime,
                    idle_since: OffsetDateTime,
                ) -> Result<Option<BrowserSession>, StoreError> {
                    Ok(sqlx::query_as::<_, BrowserSessionRow>(&q::TOUCH_BROWSER)
                        .bind(&digest[..])
                        .bind(DbTime(now))
                        .bind(DbTime(idle_since))
                        .fetch_optional(&self.pool)
                        .await?
                        .map(BrowserSession::from))
                }

                async fn end_browser_session(
                    &self,
                    digest: &[u8; 32],
                    now: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let ended = sqlx::query(q::END_BROWSER)
                        .bind(&digest[..])
                        .bind(DbTime(now))
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    Ok(ended == 1)
                }

                async fn add_authorization_code(
                    &self,
                    code: &AuthorizationCode,
                ) -> Result<(), StoreError> {
                    sqlx::query(q::INSERT_CODE)
                        .bind(&code.code_digest[..])
                        .bind(&code.client_id)
                        .bind(DbUuid(code.user_id))
                        .bind(code.browser_session_id.map(DbUuid))
                        .bind(&code.redirect_uri)
                        .bind(&code.code_challenge)
                        .bind(&code.scope)
                        .bind(DbTime(code.created_at))
                        .bind(DbTime(code.expires_at))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn find_authorization_code(
                    &self,
                    digest: &[u8; 32],
                ) -> Result<Option<AuthorizationCode>, StoreError> {
                    sqlx::query_as::<_, AuthorizationCodeRow>(&q::FIND_CODE)
                        .bind(&digest[..])
                        .fetch_optional(&self.pool)
                        .await?
                        .map(AuthorizationCode::try_from)
                        .transpose()
                }

                async fn redeem_authorization_code(
                    &self,
                    digest: &[u8; 32],
                    session: &Session,
                    first: Option<&NewRefreshToken>,
                    now: OffsetDateTime,
                ) -> Result<CodeRedeemed, StoreError> {
                    let mut tx = self.begin_write().await?;
                    // As a password login: the user row, then the client row, as an offboarding
                    // takes them (no deadlock, and an offboarding in progress wins); the code row
                    // after them.
                    let started = Self::start_session(&mut tx, session, first).await?;
                    if started == SessionAdded::UserDisabled {
                        return Ok(CodeRedeemed::UserDisabled);
                    }
                    // Used or expired meanwhile: the rollback takes the session with it.
                    let claimed = sqlx::query(q::CLAIM_CODE)
                        .bind(&digest[..])
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if claimed != 1 {
                        return Ok(CodeRedeemed::NotLive);
                    }
                    sqlx::query(q::LINK_CODE)
                        .bind(&digest[..])
                        .bind(DbUuid(session.session_id))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(CodeRedeemed::Redeemed)
                }
            }
        };
    };
}
pub(crate) use authorization_store;
