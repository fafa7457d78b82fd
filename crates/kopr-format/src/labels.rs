//! Manifest labels, built and parsed in one place: every manifest has a `type`; snapshot
//! manifests name their source (`hostname`, `username`, `path`), and policy manifests their
//! target and its kind (`policyType`: `global`, `host`, `user` or `path`), as Kopia labels them.

use std::collections::BTreeMap;

use crate::snapshot::SourceInfo;

/// A manifest's labels (sorted, as Go marshals maps).
pub type Labels = BTreeMap<String, String>;

/// The label naming a manifest's type.
pub const TYPE: &str = "type";
/// The source's or policy target's host.
pub const HOSTNAME: &str = "hostname";
/// The source's or policy target's user.
pub const USERNAME: &str = "username";
/// The source's or policy target's path.
pub const PATH: &str = "path";
/// What a policy applies to.
pub const POLICY_TYPE: &str = "policyType";

/// The type of snapshot manifests.
pub const SNAPSHOT: &str = "snapshot";
/// The type of policy manifests.
pub const POLICY: &str = "policy";
/// The type of the maintenance parameters' manifest.
pub const MAINTENANCE: &str = "maintenance";

/// Labels that match every manifest of type `kind`.
pub fn of_type(kind: &str) -> Labels {
    [(TYPE.to_string(), kind.to_string())].into()
}

/// A manifest's type, if labelled.
pub fn type_of(labels: &Labels) -> Option<&str> {
    labels.get(TYPE).map(String::as_str)
}

/// The labels of the snapshots of `si` (empty user and path are left out, as Kopia does).
pub fn of_snapshot_source(si: &SourceInfo) -> Labels {
    let mut m = of_type(SNAPSHOT);
    m.insert(HOSTNAME.to_string(), si.host.clone());
    if !si.user_name.is_empty() {
        m.insert(USERNAME.to_string(), si.user_name.clone());
    }
    if !si.path.is_empty() {
        m.insert(PATH.to_string(), si.path.clone());
    }
    m
}

/// What a policy for `si` applies to: `path`, `user`, `host` or `global` (an empty host).
pub fn policy_kind(si: &SourceInfo) -> &'static str {
    if !si.path.is_empty() {
        "path"
    } else if !si.user_name.is_empty() {
        "user"
    } else if !si.host.is_empty() {
        "host"
    } else {
        "global"
    }
}

/// The labels of the policy of `si`: each kind names only the parts of the target it has.
pub fn of_policy_target(si: &SourceInfo) -> Labels {
    let mut m = of_type(POLICY);
    let kind = policy_kind(si);
    m.insert(POLICY_TYPE.to_string(), kind.to_string());
    if kind != "global" {
        m.insert(HOSTNAME.to_string(), si.host.clone());
    }
    if kind == "user" || kind == "path" {
        m.insert(USERNAME.to_string(), si.user_name.clone());
    }
    if kind == "path" {
        m.insert(PATH.to_string(), si.path.clone());
    }
    m
}

/// The source (of a snapshot) or target (of a policy) that labels name; missing parts are empty.
pub fn source_of(labels: &Labels) -> SourceInfo {
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    SourceInfo {
        host: get(HOSTNAME),
        user_name: get(USERNAME),
        path: get(PATH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn si(host: &str, user: &str, path: &str) -> SourceInfo {
        SourceInfo {
            host: host.into(),
            user_name: user.into(),
            path: path.into(),
        }
    }

    fn pairs(l: &Labels) -> Vec<(&str, &str)> {
        l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn snapshot_labels_are_kopias() {
        let l = of_snapshot_source(&si("h", "u", "/p"));
        assert_eq!(
            pairs(&l),
            [
                ("hostname", "h"),
                ("path", "/p"),
                ("type", "snapshot"),
                ("username", "u")
            ]
        );
        assert_eq!(type_of(&l), Some(SNAPSHOT));
        assert_eq!(source_of(&l), si("h", "u", "/p"));
        assert_eq!(
            pairs(&of_snapshot_source(&si("h", "", ""))),
            [("hostname", "h"), ("type", "snapshot")]
        );
    }

    #[test]
    fn policy_labels_name_only_what_the_kind_has() {
        let cases = [
            (
                si("", "", ""),
                vec![("policyType", "global"), ("type", "policy")],
            ),
            (
                si("h", "", ""),
                vec![
                    ("hostname", "h"),
                    ("policyType", "host"),
                    ("type", "policy"),
                ],
            ),
            (
                si("h", "u", ""),
                vec![
                    ("hostname", "h"),
                    ("policyType", "user"),
                    ("type", "policy"),
                    ("username", "u"),
                ],
            ),
            (
                si("h", "u", "/p"),
                vec![
                    ("hostname", "h"),
                    ("path", "/p"),
                    ("policyType", "path"),
                    ("type", "policy"),
                    ("username", "u"),
                ],
            ),
        ];
        for (target, want) in cases {
            let l = of_policy_target(&target);
            assert_eq!(pairs(&l), want, "{target:?}");
            assert_eq!(source_of(&l), target);
        }
        assert_eq!(pairs(&of_type(MAINTENANCE)), [("type", "maintenance")]);
    }
}
