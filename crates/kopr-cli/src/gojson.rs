//! JSON printed as Go's `json.MarshalIndent` prints it (Kopia's `repository status` storage
//! config): two-space indents after a prefix, empty arrays and objects as `[]`/`{}`, and the
//! keys of a storage config in the order of Kopia's Go structs.

use serde_json::Value;

/// Kopia's field order of each storage kind's options (fields not listed follow, by name):
/// data only, one row per storage kind, the fields of its Go struct in order.
#[rustfmt::skip]
const FIELD_ORDER: &[(&str, &[&str])] = &[
    ("filesystem", &[
        "path", "fileMode", "dirMode", "uid", "gid", "dirShards", "listParallelism",
    ]),
    ("s3", &[
        "bucket", "prefix", "endpoint", "doNotUseTLS", "doNotVerifyTLS", "rootCA", "accessKeyID",
        "secretAccessKey", "sessionToken", "webIdentityToken", "webIdentityTokenFile", "roleARN",
        "sessionName", "duration", "roleEndpoint", "roleRegion", "region", "pointInTime",
    ]),
    ("azure", &[
        "container", "prefix", "storageAccount", "storageKey", "sasToken", "TenantID", "ClientID",
        "ClientSecret", "clientCertificate", "azureFederatedTokenFile", "storageDomain",
        "doNotUseTLS", "readsPerSecond", "writesPerSecond", "listsPerSecond",
        "maxUploadSpeedBytesPerSecond", "maxDownloadSpeedBytesPerSecond", "concurrentReads",
        "concurrentWrites", "pointInTime",
    ]),
    ("gcs", &[
        "bucket", "prefix", "credentialsFile", "credentials", "readOnly", "readsPerSecond",
        "writesPerSecond", "listsPerSecond", "maxUploadSpeedBytesPerSecond",
        "maxDownloadSpeedBytesPerSecond", "concurrentReads", "concurrentWrites", "pointInTime",
    ]),
    ("webdav", &[
        "url", "username", "password", "trustedServerCertificateFingerprint", "atomicWrites",
        "dirShards", "listParallelism", "readsPerSecond", "writesPerSecond", "listsPerSecond",
        "maxUploadSpeedBytesPerSecond", "maxDownloadSpeedBytesPerSecond", "concurrentReads",
        "concurrentWrites",
    ]),
    ("sftp", &[
        "path", "host", "port", "username", "password", "keyfile", "keyData", "knownHostsFile",
        "knownHostsData", "externalSSH", "sshCommand", "sshArguments", "dirShards",
        "listParallelism", "readsPerSecond", "writesPerSecond", "listsPerSecond",
        "maxUploadSpeedBytesPerSecond", "maxDownloadSpeedBytesPerSecond", "concurrentReads",
        "concurrentWrites",
    ]),
    ("rclone", &[
        "remotePath", "rcloneExe", "rcloneArgs", "rcloneEnv", "startupTimeout", "debug",
        "noWaitForTransfers", "embeddedConfig", "atomicWrites", "dirShards", "listParallelism",
        "readsPerSecond", "writesPerSecond", "listsPerSecond", "maxUploadSpeedBytesPerSecond",
        "maxDownloadSpeedBytesPerSecond", "concurrentReads", "concurrentWrites",
    ]),
];

/// The field order of storage `kind` (empty for a kind not in [`FIELD_ORDER`]).
fn field_order(kind: &str) -> &'static [&'static str] {
    FIELD_ORDER
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[], |(_, fields)| fields)
}

/// A storage config as Kopia prints it: Kopia's field order and, for the filesystem, the
/// defaults Kopia fills in at connect (file mode 0600, directory mode 0700, no shards).
pub fn storage_config(kind: &str, config: &Value, prefix: &str) -> String {
    let mut obj = config.as_object().cloned().unwrap_or_default();
    if kind == "filesystem" {
        obj.entry("fileMode").or_insert(Value::from(0o600));
        obj.entry("dirMode").or_insert(Value::from(0o700));
        obj.entry("dirShards").or_insert(Value::Null);
    }
    let order = field_order(kind);
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| {
        (
            order.iter().position(|o| o == k).unwrap_or(order.len()),
            (*k).clone(),
        )
    });
    let pairs: Vec<(String, &Value)> = keys.into_iter().map(|k| (k.clone(), &obj[k])).collect();
    let mut out = String::new();
    write_object(&mut out, &pairs, prefix, 0);
    out
}

fn indent(out: &mut String, prefix: &str, depth: usize) {
    out.push('\n');
    out.push_str(prefix);
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_object(out: &mut String, pairs: &[(String, &Value)], prefix: &str, depth: usize) {
    if pairs.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        indent(out, prefix, depth + 1);
        out.push_str(&Value::String(k.clone()).to_string());
        out.push_str(": ");
        write_value(out, v, prefix, depth + 1);
    }
    indent(out, prefix, depth);
    out.push('}');
}

fn write_value(out: &mut String, v: &Value, prefix: &str, depth: usize) {
    match v {
        Value::Object(m) => {
            let pairs: Vec<(String, &Value)> = m.iter().map(|(k, v)| (k.clone(), v)).collect();
            write_object(out, &pairs, prefix, depth);
        }
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, prefix, depth + 1);
                write_value(out, x, prefix, depth + 1);
            }
            indent(out, prefix, depth);
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kopia 0.23.1's `repository status` of the `default` fixture.
    #[test]
    fn filesystem_config_prints_like_kopia() {
        let v = serde_json::json!({"path": "<repo>"});
        let p = " ".repeat(21);
        assert_eq!(
            storage_config("filesystem", &v, &p),
            format!("{{\n{p}  \"path\": \"<repo>\",\n{p}  \"fileMode\": 384,\n{p}  \"dirMode\": 448,\n{p}  \"dirShards\": null\n{p}}}")
        );
        let v =
            serde_json::json!({"region": "r", "bucket": "b", "endpoint": "e", "dirShards": [1, 3]});
        assert_eq!(
            storage_config("s3", &v, ""),
            "{\n  \"bucket\": \"b\",\n  \"endpoint\": \"e\",\n  \"region\": \"r\",\n  \"dirShards\": [\n    1,\n    3\n  ]\n}"
        );
    }

    /// SFTP's keys in the order of Kopia's Go struct, whatever the order they are stored in.
    #[test]
    fn sftp_config_prints_in_kopias_field_order() {
        let v = serde_json::json!({"dirShards": null, "externalSSH": false, "username": "u",
            "port": 22, "host": "h", "path": "/r", "password": "", "keyfile": "/k"});
        assert_eq!(
            storage_config("sftp", &v, ""),
            "{\n  \"path\": \"/r\",\n  \"host\": \"h\",\n  \"port\": 22,\n  \"username\": \"u\",\n  \"password\": \"\",\n  \"keyfile\": \"/k\",\n  \"externalSSH\": false,\n  \"dirShards\": null\n}"
        );
    }
}
