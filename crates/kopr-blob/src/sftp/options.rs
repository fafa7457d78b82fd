//! The options of an SFTP storage, stored in the repository config with Kopia's field names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where and how to reach the server; serialized with Kopia's field names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpOptions {
    /// The repository's directory on the server (relative paths start at the login directory).
    pub path: String,
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Login user.
    pub username: String,
    /// Password (when set, the key is not used).
    #[serde(default)]
    pub password: String,
    /// Absolute path of the private key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyfile: String,
    /// The private key itself.
    #[serde(rename = "keyData", default, skip_serializing_if = "String::is_empty")]
    pub key_data: String,
    /// Absolute path of the known_hosts file.
    #[serde(
        rename = "knownHostsFile",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub known_hosts_file: String,
    /// known_hosts lines themselves.
    #[serde(
        rename = "knownHostsData",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub known_hosts_data: String,
    /// Run an external `ssh` command instead of the built-in client.
    #[serde(rename = "externalSSH", default)]
    pub external_ssh: bool,
    /// The external command (`ssh` when empty).
    #[serde(
        rename = "sshCommand",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ssh_command: String,
    /// Its arguments, separated by spaces.
    #[serde(
        rename = "sshArguments",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ssh_arguments: String,
    /// Shards given at creation (`null`: the `.shards` file decides).
    #[serde(rename = "dirShards", default)]
    pub dir_shards: Option<Vec<usize>>,
    /// Kopia's listing parallelism (kopr lists [`LIST_PARALLEL`] directories at once).
    #[serde(rename = "listParallelism", default, skip_serializing_if = "is_zero")]
    pub list_parallelism: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl fmt::Debug for SftpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpOptions")
            .field("path", &self.path)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
