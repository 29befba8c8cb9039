//! The shared part of roles and user roles. Each backend provides `LOCK_ROLE` and `LOCK_USER` (how a change waits for another on the same role or user). Uses: model, rows.

pub(crate) const ROLE_COLUMNS: &str = "name, scopes, description, created_at, updated_at";

pub(crate) const UPSERT: &str =
    "insert into role (name, scopes, description, created_at, updated_at) values ($1, $2, $3, $4, $4)
     on conflict (name) do update
     set scopes = excluded.scopes, description = excluded.description, updated_at = excluded.updated_at";

pub(crate) const DELETE: &str = "delete from role where name = $1";

pub(crate) const HELD: &str = "select exists(select 1 from user_role where role_name = $1)";

pub(crate) const EXISTS: &str = "select exists(select 1 from role where name = $1)";

/// The roles a user holds, as one string `HeldRoles::parse` reads: `name scope…` per role,
/// joined by `"` (no name or scope-token contains it). Also a subquery of the refresh lookup.
pub(crate) const HELD_BY_USER: &str =
    "select string_agg(r.name || ' ' || r.scopes, '\"' order by r.name)
     from user_role ur join role r on r.name = ur.role_name where ur.user_id = $1";

pub(crate) const CLEAR_USER: &str = "delete from user_role where user_id = $1";

pub(crate) const GRANT: &str =
    "insert into user_role (user_id, role_name) values ($1, $2) on conflict do nothing";

/// Sets the status-list bits of the tokens a lost scope cut off: every access token issued since
/// `$4` to a live session of the users reached (`holders`: a join on `s`), carrying the scope `$2`
/// (its row's scope: a session's row holds its login's token, a refresh row the token issued
/// with it). `position` is the dialect's substring search.
fn mark(holders: &str, position: &str) -> String {
    format!(
        "insert into status_mark (status_list_id, status_idx, created_at)
         select list_id, idx, $3 from (
             select s.status_list_id as list_id, s.status_idx as idx, s.scope as scope
             from session s {holders}
             where s.revoked_at is null and s.status_list_id is not null and s.created_at >= $4
             union
             select r.access_status_list_id, r.access_status_idx, r.scope
             from refresh_token r join session s on s.session_id = r.session_id {holders}
             where s.revoked_at is null and r.access_status_list_id is not null
               and r.created_at >= $4
         ) as issued
         where {position}(' ' || scope || ' ', ' ' || $2 || ' ') > 0
         on conflict do nothing"
    )
}

/// [`mark`] for the holders of the role `$1`.
pub(crate) fn mark_role_holders(position: &str) -> String {
    mark(
        "join user_role ur on ur.user_id = s.user_id and ur.role_name = $1",
        position,
    )
}

/// [`mark`] for the user `$1`.
pub(crate) fn mark_user(position: &str) -> String {
    mark(
        "join user_account u on u.user_id = s.user_id and u.user_id = $1",
        position,
    )
}

pub(crate) static FIND: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("select {ROLE_COLUMNS} from role where name = $1"));

pub(crate) static LIST: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("select {ROLE_COLUMNS} from role order by name"));

macro_rules! role_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Records a scope cut-off and announces it, in the caller's transaction.
            pub(crate) async fn insert_scope_cutoff(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: $crate::model::RevocationKind,
                value: &str,
                scopes: &[String],
                now: time::OffsetDateTime,
                expires_at: time::OffsetDateTime,
                actor: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                let scopes = scopes.join(" ");
                Self::insert_scoped_revocation(
                    tx,
                    kind,
                    value,
                    Some(&scopes),
                    now,
                    expires_at,
                    actor,
                )
                .await?;
                Self::announce(tx, $crate::store::topic::REVOCATIONS, now).await
            }

            /// Ends a change in the caller's transaction: the cut-off of what it took away, if
            /// anything, and its audit event completed with what the transaction found.
            #[allow(clippy::too_many_arguments)]
            pub(crate) async fn record_change(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: $crate::model::RevocationKind,
                value: &str,
                lost: &[String],
                now: time::OffsetDateTime,
                expires_at: time::OffsetDateTime,
                audit: &$crate::model::AuditEvent,
                found: serde_json::Value,
            ) -> Result<(), $crate::store::StoreError> {
                if !lost.is_empty() {
                    let actor = audit.actor.as_deref();
                    Self::insert_scope_cutoff(tx, kind, value, lost, now, expires_at, actor)
                        .await?;
                    Self::mark_lost(tx, kind, value, lost, now, expires_at).await?;
                }
                let mut event = audit.clone();
                if let (Some(detail), serde_json::Value::Object(found)) =
                    (event.detail.as_object_mut(), found)
                {
                    detail.extend(found);
                }
                Self::insert_audit(tx, &event).await
            }

            /// Sets the status-list bits of the tokens a cut-off reaches, in the caller's
            /// transaction (the cut-off's announcement tells the list builder).
            async fn mark_lost(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: $crate::model::RevocationKind,
                value: &str,
                lost: &[String],
                now: time::OffsetDateTime,
                expires_at: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                use std::sync::LazyLock;
                use $crate::store::rows::{DbTime, DbUuid};
                use $crate::store::sql::roles as q;
                static ROLE: LazyLock<String> =
                    LazyLock::new(|| q::mark_role_holders(<$store>::POSITION));
                static USER: LazyLock<String> = LazyLock::new(|| q::mark_user(<$store>::POSITION));
                // Tokens issued since this long before the change can still be live.
                let since = now - (expires_at - now);
                for scope in lost {
                    let query = if kind == $crate::model::RevocationKind::Role {
                        sqlx::query(&ROLE).bind(value.to_owned())
                    } else {
                        let user = uuid::Uuid::parse_str(value)
                            .map_err(|_| $crate::store::StoreError::Other { kind: "user id" })?;
                        sqlx::query(&USER).bind(DbUuid(user))
                    };
                    query
                        .bind(scope)
                        .bind(DbTime(now))
                        .bind(DbTime(since))
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// The roles a user holds, read in the caller's transaction.
            pub(crate) async fn held_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                user_id: uuid::Uuid,
            ) -> Result<$crate::model::HeldRoles, $crate::store::StoreError> {
                let aggregate: Option<String> =
                    sqlx::query_scalar($crate::store::sql::roles::HELD_BY_USER)
                        .bind($crate::store::rows::DbUuid(user_id))
                        .fetch_one(&mut **tx)
                        .await?;
                Ok($crate::model::HeldRoles::parse(aggregate.as_deref()))
            }

            /// Grants each role, all or none: [`StoreError::UnknownRole`] names the first
            /// missing one (the caller's transaction is then dropped).
            pub(crate) async fn grant_roles(
                tx: &mut sqlx::Transaction<'_, $db>,
                user_id: uuid::Uuid,
                roles: &[String],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql::roles as q;
                for role in roles {
                    let exists: bool = sqlx::query_scalar(q::EXISTS)
                        .bind(role)
                        .fetch_one(&mut **tx)
                        .await?;
                    if !exists {
                        return Err($crate::store::StoreError::UnknownRole(role.clone()));
                    }
                    sqlx::query(q::GRANT)
                        .bind($crate::store::rows::DbUuid(user_id))
                        .bind(role)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }
        }

        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{AuditEvent, HeldRoles, RevocationKind, Role, lost_scopes};
            use $crate::store::rows::{DbTime, DbUuid, RoleRow};
            use $crate::store::sql::roles as q;
            use $crate::store::{RoleStore, RoleWrite, StoreError};

            #[async_trait::async_trait]
            impl RoleStore for $store {
                async fn put_role(
                    &self,
                    role: &Role,
                    now: OffsetDateTime,
                    cutoff_expires_at: OffsetDateTime,
                    audit: &AuditEvent,
                ) -> Result<RoleWrite, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let previous: Option<String> = sqlx::query_scalar(Self::LOCK_ROLE)
                        .bind(&role.name)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let scopes = role.scopes.join(" ");
                    sqlx::query(q::UPSERT)
                        .bind(&role.name)
                        .bind(&scopes)
                        .bind(&role.description)
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?;
                    let kept = role.scopes.iter().map(String::as_str).collect();
                    let lost = lost_scopes(
                        previous
                            .as_deref()
                            .unwrap_or_default()
                            .split(' ')
                            .filter(|s| !s.is_empty()),
                        &kept,
                    );
                    let held: bool = sqlx::query_scalar(q::HELD)
                        .bind(&role.name)
                        .fetch_one(&mut *tx)
                        .await?;
                    let found = serde_json::json!({"previous": previous, "lost": lost});
                    let (kind, name) = (RevocationKind::Role, role.name.as_str());
                    Self::record_change(
                        &mut tx,
                        kind,
                        name,
                        &lost,
                        now,
                        cutoff_expires_at,
                        audit,
                        found,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(RoleWrite {
                        created: previous.is_none(),
                        lost,
                        held,
                    })
                }

                async fn delete_role(
                    &self,
                    name: &str,
                    now: OffsetDateTime,
                    cutoff_expires_at: OffsetDateTime,
                    audit: &AuditEvent,
                ) -> Result<Option<RoleWrite>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let scopes: Option<String> = sqlx::query_scalar(Self::LOCK_ROLE)
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(scopes) = scopes else {
                        return Ok(None);
                    };
                    let held: bool = sqlx::query_scalar(q::HELD)
                        .bind(name)
                        .fetch_one(&mut *tx)
                        .await?;
                    let lost = lost_scopes(
                        scopes.split(' ').filter(|s| !s.is_empty()),
                        &Default::default(),
                    );
                    let found = serde_json::json!({"lost": lost});
                    let kind = RevocationKind::Role;
                    Self::record_change(
                        &mut tx,
                        kind,
                        name,
                        &lost,
                        now,
                        cutoff_expires_at,
                        audit,
                        found,
                    )
                    .await?;
                    // After the marks, which reach the tokens of its holders.
                    sqlx::query(q::DELETE).bind(name).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(Some(RoleWrite {
                        created: false,
                        lost,
                        held,
                    }))
                }

                async fn find_role(&self, name: &str) -> Result<Option<Role>, StoreError> {
                    Ok(sqlx::query_as::<_, RoleRow>(&q::FIND)
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?
                        .map(Role::from))
                }

                async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
                    Ok(sqlx::query_as::<_, RoleRow>(&q::LIST)
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(Role::from)
                        .collect())
                }

                async fn held_roles(&self, user_id: uuid::Uuid) -> Result<HeldRoles, StoreError> {
                    let aggregate: Option<String> = sqlx::query_scalar(q::HELD_BY_USER)
                        .bind(DbUuid(user_id))
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(HeldRoles::parse(aggregate.as_deref()))
                }

                async fn set_user_roles(
                    &self,
                    user_id: uuid::Uuid,
                    roles: &[String],
                    now: OffsetDateTime,
                    cutoff_expires_at: OffsetDateTime,
                    audit: &AuditEvent,
                ) -> Result<Option<Vec<String>>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let found: Option<DbUuid> = sqlx::query_scalar(Self::LOCK_USER)
                        .bind(DbUuid(user_id))
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_none() {
                        return Ok(None);
                    }
                    let before = Self::held_in(&mut tx, user_id).await?;
                    sqlx::query(q::CLEAR_USER)
                        .bind(DbUuid(user_id))
                        .execute(&mut *tx)
                        .await?;
                    Self::grant_roles(&mut tx, user_id, roles).await?;
                    let after = Self::held_in(&mut tx, user_id).await?;
                    let lost = lost_scopes(before.scopes(), &after.scopes());
                    let found = serde_json::json!({"lost": lost});
                    let (kind, value) = (RevocationKind::SubjectScope, user_id.to_string());
                    Self::record_change(
                        &mut tx,
                        kind,
                        &value,
                        &lost,
                        now,
                        cutoff_expires_at,
                        audit,
                        found,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(Some(lost))
                }

                async fn renew_scope_cutoff(
                    &self,
                    kind: RevocationKind,
                    value: &str,
                    scopes: &[String],
                    now: OffsetDateTime,
                    expires_at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    Self::insert_scope_cutoff(&mut tx, kind, value, scopes, now, expires_at, None)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        };
    };
}
pub(crate) use role_store;
