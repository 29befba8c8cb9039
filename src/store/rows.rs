//! The row types both backends decode into, and the column newtypes that hide how each dialect stores time, ids and JSON (PostgreSQL `timestamptz`/`uuid`/`jsonb`, SQLite Unix milliseconds/text/text). Uses: model.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{
    AuditRecord, AuthorizationCode, BrowserSession, Client, ClientSecretHash, GrantType, HeldRoles,
    KeyState, PreviousSecret, RefreshTokenRecord, RefreshTokenState, Revocation, RevocationKind,
    Role, SessionState, SigningKey, Successor, User,
};

fn decode_error() -> StoreError {
    StoreError::Other { kind: "decode" }
}

/// A point in time: `timestamptz` on PostgreSQL, Unix milliseconds on SQLite (so comparisons in
/// SQL are numeric there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbTime(pub OffsetDateTime);

impl DbTime {
    fn millis(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn from_millis(ms: i64) -> Result<Self, BoxDynError> {
        Ok(Self(OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(ms) * 1_000_000,
        )?))
    }
}

impl From<OffsetDateTime> for DbTime {
    fn from(t: OffsetDateTime) -> Self {
        Self(t)
    }
}

/// A UUID: `uuid` on PostgreSQL, its hyphenated text on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbUuid(pub uuid::Uuid);

/// A JSON document in its text form: `jsonb` on PostgreSQL (as PostgreSQL prints it), text on
/// SQLite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(pub String);

/// A SHA-256 digest (a refresh token's, a client secret's, a throttle key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

// PostgreSQL: time and uuid as sqlx encodes them; jsonb in its binary format, a version byte
// before the text.

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<Postgres>>::decode(value).map(Self)
    }
}

impl Type<Postgres> for DbUuid {
    fn type_info() -> PgTypeInfo {
        <uuid::Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbUuid {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <uuid::Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbUuid {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <uuid::Uuid as Decode<Postgres>>::decode(value).map(Self)
    }
}

/// The JSON type sqlx uses for `jsonb`, whose type information `JsonText` borrows.
type PgJson = sqlx::types::Json<serde_json::Value>;

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        <PgJson as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        *ty == <PgJson as Type<Postgres>>::type_info()
    }
}

/// The jsonb binary format's version byte.
const JSONB_VERSION: u8 = 1;

impl Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.push(JSONB_VERSION);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

impl<'r> Decode<'r, Postgres> for JsonText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let bytes = match value.format() {
            PgValueFormat::Binary => match value.as_bytes()? {
                [JSONB_VERSION, text @ ..] => text,
                _ => return Err("unsupported jsonb format version".into()),
            },
            PgValueFormat::Text => value.as_bytes()?,
        };
        Ok(Self(std::str::from_utf8(bytes)?.to_owned()))
    }
}

// SQLite: time as Unix milliseconds, uuid and JSON as text.

type SqliteBuffer<'q> = <Sqlite as Database>::ArgumentBuffer<'q>;

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut SqliteBuffer<'q>) -> Result<IsNull, BoxDynError> {
        buf.push(SqliteArgumentValue::Int64(self.millis()));
        Ok(IsNull::No)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Self::from_millis(<i64 as Decode<Sqlite>>::decode(value)?)
    }
}

impl Type<Sqlite> for DbUuid {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for DbUuid {
    fn encode_by_ref(&self, buf: &mut SqliteBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbUuid {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<&str as Decode<Sqlite>>::decode(value)?.parse()?))
    }
}

impl Type<Sqlite> for JsonText {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for JsonText {
    fn encode_by_ref(&self, buf: &mut SqliteBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.clone(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for JsonText {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<String as Decode<Sqlite>>::decode(value)?))
    }
}

// A digest is bytes on both.

impl<DB: Database> Type<DB> for Digest
where
    Vec<u8>: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <Vec<u8> as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <Vec<u8> as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Digest
where
    Vec<u8>: Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        self.0.to_vec().encode(buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Digest
where
    Vec<u8>: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let bytes = <Vec<u8> as Decode<DB>>::decode(value)?;
        Ok(Self(bytes.try_into().map_err(|_| "a digest is 32 bytes")?))
    }
}

// The rows.

pub const CLIENT_COLUMNS: &str = "client_id, name, secret_digest, secret_phc, grant_types, scopes,
    audiences, is_admin, can_introspect, disabled, created_at, updated_at, secret_created_at,
    secret_max_age, previous_secret_digest, previous_secret_phc, previous_secret_expires_at,
    redirect_uris, first_party";

#[derive(sqlx::FromRow)]
pub struct ClientRow {
    client_id: String,
    name: Option<String>,
    secret_digest: Option<Vec<u8>>,
    secret_phc: Option<String>,
    grant_types: JsonText,
    scopes: JsonText,
    audiences: JsonText,
    is_admin: bool,
    can_introspect: bool,
    disabled: bool,
    created_at: DbTime,
    updated_at: DbTime,
    secret_created_at: Option<DbTime>,
    secret_max_age: Option<i64>,
    previous_secret_digest: Option<Vec<u8>>,
    previous_secret_phc: Option<String>,
    previous_secret_expires_at: Option<DbTime>,
    redirect_uris: JsonText,
    first_party: bool,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(Client {
            client_id: row.client_id,
            name: row.name,
            secret: secret_from_columns(row.secret_digest, row.secret_phc)?,
            grant_types: json_list(&row.grant_types)?
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(decode_error))
                .collect::<Result<_, _>>()?,
            scopes: json_list(&row.scopes)?,
            audiences: json_list(&row.audiences)?,
            is_admin: row.is_admin,
            can_introspect: row.can_introspect,
            disabled: row.disabled,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
            secret_created_at: row.secret_created_at.map(|t| t.0),
            secret_max_age: row
                .secret_max_age
                .map(|s| u64::try_from(s).map(std::time::Duration::from_secs))
                .transpose()
                .map_err(|_| decode_error())?,
            previous_secret: match (
                secret_from_columns(row.previous_secret_digest, row.previous_secret_phc)?,
                row.previous_secret_expires_at,
            ) {
                (ClientSecretHash::None, _) => None,
                (secret, Some(expires_at)) => Some(PreviousSecret {
                    secret,
                    expires_at: expires_at.0,
                }),
                (_, None) => return Err(decode_error()),
            },
            redirect_uris: json_list(&row.redirect_uris)?,
            first_party: row.first_party,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct BrowserSessionRow {
    browser_session_id: DbUuid,
    user_id: DbUuid,
    source_addr: Option<String>,
    created_at: DbTime,
    expires_at: DbTime,
    last_seen_at: DbTime,
}

impl From<BrowserSessionRow> for BrowserSession {
    fn from(row: BrowserSessionRow) -> Self {
        BrowserSession {
            browser_session_id: row.browser_session_id.0,
            user_id: row.user_id.0,
            source_addr: row.source_addr,
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
            last_seen_at: row.last_seen_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct AuthorizationCodeRow {
    code_digest: Digest,
    client_id: String,
    user_id: DbUuid,
    browser_session_id: Option<DbUuid>,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    created_at: DbTime,
    expires_at: DbTime,
    used_at: Option<DbTime>,
    session_id: Option<DbUuid>,
}

impl TryFrom<AuthorizationCodeRow> for AuthorizationCode {
    type Error = StoreError;

    /// A code with a session but never used cannot be written: refused as corrupt.
    fn try_from(row: AuthorizationCodeRow) -> Result<Self, StoreError> {
        if row.used_at.is_none() && row.session_id.is_some() {
            return Err(decode_error());
        }
        Ok(AuthorizationCode {
            code_digest: row.code_digest.0,
            client_id: row.client_id,
            user_id: row.user_id.0,
            browser_session_id: row.browser_session_id.map(|id| id.0),
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            scope: row.scope,
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
            used_at: row.used_at.map(|t| t.0),
            session_id: row.session_id.map(|id| id.0),
        })
    }
}

/// The stored form of a client's secret: (digest, PHC string).
pub fn secret_columns(secret: &ClientSecretHash) -> (Option<Vec<u8>>, Option<String>) {
    match secret {
        ClientSecretHash::None => (None, None),
        ClientSecretHash::Digest(digest) => (Some(digest.to_vec()), None),
        ClientSecretHash::Phc(phc) => (None, Some(phc.clone())),
    }
}

fn secret_from_columns(
    digest: Option<Vec<u8>>,
    phc: Option<String>,
) -> Result<ClientSecretHash, StoreError> {
    match (digest, phc) {
        (None, None) => Ok(ClientSecretHash::None),
        (Some(digest), None) => digest
            .try_into()
            .map(ClientSecretHash::Digest)
            .map_err(|_| decode_error()),
        (None, Some(phc)) => Ok(ClientSecretHash::Phc(phc)),
        (Some(_), Some(_)) => Err(decode_error()),
    }
}

fn json_list(text: &JsonText) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(&text.0).map_err(|_| decode_error())
}

pub fn grant_json(grants: &[GrantType]) -> JsonText {
    JsonText(
        serde_json::to_string(&grants.iter().map(|g| g.as_str()).collect::<Vec<_>>())
            .expect("strings serialise"),
    )
}

pub fn list_json(items: &[String]) -> JsonText {
    JsonText(serde_json::to_string(items).expect("strings serialise"))
}

pub const USER_COLUMNS: &str =
    "user_id, username, username_key, password_phc, disabled, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub struct UserRow {
    user_id: DbUuid,
    username: String,
    username_key: String,
    password_phc: String,
    disabled: bool,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            user_id: row.user_id.0,
            username: row.username,
            username_key: row.username_key,
            password_phc: row.password_phc,
            disabled: row.disabled,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct SigningKeyRow {
    kid: String,
    alg: String,
    state: String,
    public_jwk: JsonText,
    private_key_ciphertext: Vec<u8>,
    created_at: DbTime,
    activated_at: Option<DbTime>,
    retired_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;

    fn try_from(row: SigningKeyRow) -> Result<Self, StoreError> {
        Ok(SigningKey {
            kid: row.kid,
            alg: row.alg.parse().map_err(|_| decode_error())?,
            state: KeyState::parse(&row.state).ok_or_else(decode_error)?,
            public_jwk: row.public_jwk.0,
            private_key_ciphertext: row.private_key_ciphertext,
            created_at: row.created_at.0,
            activated_at: row.activated_at.map(|t| t.0),
            retired_at: row.retired_at.map(|t| t.0),
            revoked_at: row.revoked_at.map(|t| t.0),
        })
    }
}

/// A refresh token joined with its successor, its session and the session's user.
#[derive(sqlx::FromRow)]
pub struct RefreshRow {
    session_id: DbUuid,
    token_digest: Digest,
    scope: String,
    created_at: DbTime,
    idle_expires_at: DbTime,
    consumed_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
    successor_ciphertext: Option<Vec<u8>>,
    successor_unused: bool,
    successor_scope: Option<String>,
    client_id: String,
    user_id: DbUuid,
    session_expires_at: DbTime,
    session_revoked_at: Option<DbTime>,
    user_disabled: bool,
    held_roles: Option<String>,
    successor_status_list_id: Option<i64>,
    successor_status_idx: Option<i64>,
}

impl TryFrom<RefreshRow> for RefreshTokenRecord {
    type Error = StoreError;

    /// Decodes the state. A row that is not consumed but carries a successor is inconsistent
    /// (the schema's check forbids it) and is refused rather than guessed at.
    fn try_from(row: RefreshRow) -> Result<Self, StoreError> {
        let successor = Successor {
            sealed: row.successor_ciphertext,
            unused: row.successor_unused,
            scope: row.successor_scope,
        };
        let state = match (row.revoked_at, row.consumed_at) {
            (Some(at), _) => RefreshTokenState::Revoked { at: at.0 },
            (None, Some(at)) => RefreshTokenState::Consumed {
                at: at.0,
                successor,
            },
            (None, None) if successor == Successor::default() => RefreshTokenState::Valid,
            (None, None) => return Err(decode_error()),
        };
        Ok(RefreshTokenRecord {
            session_id: row.session_id.0,
            token_digest: row.token_digest.0,
            scope: row.scope,
            created_at: row.created_at.0,
            idle_expires_at: row.idle_expires_at.0,
            state,
            client_id: row.client_id,
            user_id: row.user_id.0,
            session_expires_at: row.session_expires_at.0,
            session: match row.session_revoked_at {
                Some(at) => SessionState::Revoked { at: at.0 },
                None => SessionState::Live,
            },
            user_disabled: row.user_disabled,
            held_roles: HeldRoles::parse(row.held_roles.as_deref()),
            successor_status: status_ref(row.successor_status_list_id, row.successor_status_idx),
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditRow {
    audit_event_id: i64,
    created_at: DbTime,
    event_type: String,
    actor: Option<String>,
    subject: Option<String>,
    client_id: Option<String>,
    session_id: Option<DbUuid>,
    source_addr: Option<String>,
    detail: JsonText,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            audit_event_id: row.audit_event_id,
            created_at: row.created_at.0,
            event_type: row.event_type,
            actor: row.actor,
            subject: row.subject,
            client_id: row.client_id,
            session_id: row.session_id.map(|id| id.0.to_string()),
            source_addr: row.source_addr,
            detail: serde_json::from_str(&row.detail.0).map_err(|_| decode_error())?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct RoleRow {
    name: String,
    scopes: String,
    description: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<RoleRow> for Role {
    fn from(row: RoleRow) -> Self {
        Role {
            name: row.name,
            scopes: row
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            description: row.description,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct RevocationRow {
    revocation_id: i64,
    kind: String,
    value: String,
    revoked_at: DbTime,
    expires_at: DbTime,
    scopes: Option<String>,
}

impl TryFrom<RevocationRow> for Revocation {
    type Error = StoreError;

    fn try_from(row: RevocationRow) -> Result<Self, StoreError> {
        Ok(Revocation {
            revocation_id: row.revocation_id,
            kind: RevocationKind::parse(&row.kind).ok_or_else(decode_error)?,
            value: row.value,
            revoked_at: row.revoked_at.0,
            expires_at: row.expires_at.0,
            scopes: row.scopes,
        })
    }
}

/// A status-list entry from its two nullable columns (both or neither).
pub(crate) fn status_ref(
    list_id: Option<i64>,
    idx: Option<i64>,
) -> Option<crate::model::StatusRef> {
    Some(crate::model::StatusRef {
        list_id: list_id?,
        idx: idx?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh_row(consumed: bool, revoked: bool, sealed: bool) -> RefreshRow {
        let t = DbTime(OffsetDateTime::UNIX_EPOCH);
        RefreshRow {
            session_id: DbUuid(uuid::Uuid::nil()),
            token_digest: Digest([1; 32]),
            scope: "read".to_owned(),
            created_at: t,
            idle_expires_at: t,
            consumed_at: consumed.then_some(t),
            revoked_at: revoked.then_some(t),
            successor_ciphertext: sealed.then(|| vec![2]),
            successor_unused: sealed,
            successor_scope: None,
            client_id: "app".to_owned(),
            user_id: DbUuid(uuid::Uuid::nil()),
            session_expires_at: t,
            session_revoked_at: None,
            user_disabled: false,
            held_roles: None,
            successor_status_list_id: None,
            successor_status_idx: None,
        }
    }

    #[test]
    fn refresh_rows_decode_into_their_state() {
        let state = |row| RefreshTokenRecord::try_from(row).map(|r| r.state);
        assert_eq!(
            state(refresh_row(false, false, false)).unwrap(),
            RefreshTokenState::Valid
        );
        assert!(matches!(
            state(refresh_row(true, false, true)).unwrap(),
            RefreshTokenState::Consumed { successor, .. } if successor.unused && successor.sealed.is_some()
        ));
        // Revoked wins over consumed: a revoked token is never judged as a retry.
        assert!(matches!(
            state(refresh_row(true, true, false)).unwrap(),
            RefreshTokenState::Revoked { .. }
        ));
        // A successor on a token never consumed cannot happen: refused, not guessed at.
        assert!(state(refresh_row(false, false, true)).is_err());
    }

    #[tokio::test]
    async fn columns_keep_their_sqlite_encoding() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let id = uuid::Uuid::new_v4();
        let json = JsonText(r#"{"a":[1,2]}"#.to_owned());
        let row: (DbTime, i64, DbUuid, String, JsonText, Digest) =
            sqlx::query_as("select $1, $1, $2, $2, $3, $4")
                .bind(DbTime(at))
                .bind(DbUuid(id))
                .bind(json.clone())
                .bind(Digest([7; 32]))
                .fetch_one(&pool)
                .await
                .unwrap();
        // Unix milliseconds: sub-millisecond precision is dropped, as it always was.
        assert_eq!(row.1, 1_700_000_000_123);
        assert_eq!(row.0.0.unix_timestamp_nanos(), 1_700_000_000_123_000_000);
        assert_eq!(row.2, DbUuid(id));
        assert_eq!(row.3, id.to_string());
        assert_eq!(row.4, json);
        assert_eq!(row.5, Digest([7; 32]));
    }
}
