//! The local stack: moto's server on 127.0.0.1, the template's resources on it, and the
//! webhook functions served over HTTP through the same handlers Lambda runs.

pub mod demo;
pub mod dev_keys;
pub mod functions;
pub mod moto;
pub mod providers;
pub mod server;
pub mod stack;
pub mod template;
pub mod worker;

pub use functions::LocalFunctions;
pub use moto::MotoServer;
pub use stack::{local_sdk_config, LocalStack};
pub use template::Template;

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Failures of the local commands, each saying what to do next.
#[derive(Debug, Error)]
pub enum LocalError {
    #[error("{what} failed: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error("{operation} on {name} failed: {message}; is the endpoint a running moto server?")]
    Aws { operation: &'static str, name: String, message: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl LocalError {
    pub(crate) fn aws<E: std::error::Error + 'static>(operation: &'static str, name: &str, error: &E) -> Self {
        LocalError::Aws {
            operation,
            name: name.to_string(),
            message: aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string(),
        }
    }
}

/// Finds the project root: `COMMSYNC_ROOT`, else the nearest directory from the current
/// one upwards that contains `template.yaml`, else the directory the CLI was built from.
pub fn project_root() -> PathBuf {
    if let Ok(root) = std::env::var("COMMSYNC_ROOT") {
        return PathBuf::from(root);
    }
    if let Ok(current) = std::env::current_dir() {
        for directory in current.ancestors() {
            if directory.join("template.yaml").is_file() && directory.join("Cargo.toml").is_file() {
                return directory.to_path_buf();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Returns the directory for project-local tools (the moto venv).
pub fn tools_dir(root: &Path) -> PathBuf {
    root.join(".tools")
}

/// Returns the file where `local up` records the running stack for `local invoke`.
pub fn state_file(root: &Path) -> PathBuf {
    root.join(".commsync").join("local.json")
}
