//! Roles: named scope sets, what a user holds through them, and the scope a user's token may carry (CONTRACT: Roles and least privilege). Uses: nothing.

use std::collections::BTreeSet;

/// A named set of scopes. A user holds the union of its roles' scopes and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    /// Distinct RFC 6749 scope-tokens, in the order given.
    pub scopes: Vec<String>,
    pub description: Option<String>,
    pub created_at: time::OffsetDateTime,
    pub updated_at: time::OffsetDateTime,
}

/// Whether `name` is a role name: `[A-Za-z0-9_.:-]{1,64}`.
pub fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The separator of roles in [`HeldRoles::parse`]: no role name or scope-token contains it.
pub const HELD_SEPARATOR: char = '"';

/// The roles a user holds, each with its scopes, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldRoles(Vec<(String, Vec<String>)>);

impl HeldRoles {
    pub fn new(mut roles: Vec<(String, Vec<String>)>) -> Self {
        roles.sort_by(|a, b| a.0.cmp(&b.0));
        Self(roles)
    }

    /// Reads the store's aggregate: `name scope scope"name scope…` (roles separated by `"`,
    /// a name then its scopes separated by spaces). Nothing (no role) is `None` or empty.
    pub fn parse(aggregate: Option<&str>) -> Self {
        let roles = aggregate
            .unwrap_or_default()
            .split(HELD_SEPARATOR)
            .filter_map(|role| {
                let mut parts = role.split(' ').filter(|p| !p.is_empty());
                let name = parts.next()?;
                Some((name.to_owned(), parts.map(str::to_owned).collect()))
            })
            .collect();
        Self::new(roles)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// Whether any role grants `scope`.
    pub fn holds(&self, scope: &str) -> bool {
        self.0
            .iter()
            .any(|(_, scopes)| scopes.iter().any(|s| s == scope))
    }

    /// Every scope held, once each.
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.0
            .iter()
            .flat_map(|(_, scopes)| scopes.iter().map(String::as_str))
            .collect()
    }

    /// The roles through which `scope` (space-separated) is held: what a token carrying it names
    /// in its `roles` claim (RFC 9068 §2.2.3.1), so that one revocation entry per role edit
    /// reaches every token that relied on the role.
    pub fn granting(&self, scope: &str) -> Vec<String> {
        let wanted: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        self.0
            .iter()
            .filter(|(_, scopes)| scopes.iter().any(|s| wanted.contains(&s.as_str())))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The part of `scope` (space-separated) still held, in its order.
    pub fn retain(&self, scope: &str) -> String {
        scope
            .split(' ')
            .filter(|s| !s.is_empty() && self.holds(s))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The scopes in `before` that are not in `after`: what a change took away.
pub fn lost_scopes<'a>(
    before: impl IntoIterator<Item = &'a str>,
    after: &BTreeSet<&str>,
) -> Vec<String> {
    let lost: BTreeSet<&str> = before.into_iter().filter(|s| !after.contains(s)).collect();
    lost.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(roles: &[(&str, &[&str])]) -> HeldRoles {
        HeldRoles::new(
            roles
                .iter()
                .map(|(n, s)| (n.to_string(), s.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn role_names_are_short_and_plain() {
        for good in [
            "reader",
            "billing.admin",
            "team:ops-2",
            "A_b",
            &"x".repeat(64),
        ] {
            assert!(is_role_name(good), "{good:?}");
        }
        for bad in ["", "a b", "é", "a/b", "a\"b", &"x".repeat(65), "a\0"] {
            assert!(!is_role_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_aggregate_parses_into_sorted_roles() {
        let parsed = HeldRoles::parse(Some("writer read write\"reader read\"empty"));
        assert_eq!(
            parsed,
            held(&[
                ("empty", &[]),
                ("reader", &["read"]),
                ("writer", &["read", "write"])
            ])
        );
        assert_eq!(HeldRoles::parse(None), HeldRoles::default());
        assert_eq!(HeldRoles::parse(Some("")), HeldRoles::default());
    }

    #[test]
    fn a_user_holds_the_union_of_its_roles_and_nothing_else() {
        let roles = held(&[("reader", &["read"]), ("writer", &["write", "read"])]);
        assert!(roles.holds("read") && roles.holds("write"));
        assert!(!roles.holds("admin"));
        assert_eq!(
            roles.scopes().into_iter().collect::<Vec<_>>(),
            ["read", "write"]
        );
        assert!(!HeldRoles::default().holds("read"));
        assert_eq!(roles.retain("admin write read"), "write read");
        assert_eq!(HeldRoles::default().retain("read"), "");
    }

    #[test]
    fn a_token_names_the_roles_that_granted_its_scopes() {
        let roles = held(&[
            ("auditor", &["audit"]),
            ("reader", &["read"]),
            ("writer", &["write", "read"]),
        ]);
        assert_eq!(roles.granting("read"), ["reader", "writer"]);
        assert_eq!(roles.granting("write"), ["writer"]);
        assert_eq!(roles.granting("audit write"), ["auditor", "writer"]);
        assert!(roles.granting("").is_empty());
    }

    #[test]
    fn lost_scopes_are_those_no_longer_held() {
        let after: BTreeSet<&str> = ["read"].into_iter().collect();
        assert_eq!(lost_scopes(["read", "write", "write"], &after), ["write"]);
        assert!(lost_scopes(["read"], &after).is_empty());
        assert_eq!(
            lost_scopes(["b", "a"], &BTreeSet::new()),
            ["a".to_string(), "b".to_string()]
        );
    }
}
