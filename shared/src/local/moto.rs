//! moto's server mode on 127.0.0.1: installed into a project-local venv when missing,
//! started on a free port, and stopped with its parent process.

use super::LocalError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running moto server. Dropping it kills the process.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

/// Returns the `moto_server` executable, installing `moto[server]` into
/// `{tools_dir}/moto-venv` first when it is not there (about 40 s from PyPI).
pub async fn ensure_installed(tools_dir: &Path) -> Result<PathBuf, LocalError> {
    let venv = tools_dir.join("moto-venv");
    let server = venv.join("bin").join("moto_server");
    if server.exists() {
        return Ok(server);
    }

    eprintln!("installing moto[server] into {} (first run only)...", venv.display());
    std::fs::create_dir_all(tools_dir)
        .map_err(|source| LocalError::Io { what: format!("create {}", tools_dir.display()), source })?;
    run_quiet(Command::new("python3").arg("-m").arg("venv").arg(&venv), "python3 -m venv").await?;
    run_quiet(
        Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", "moto[server]"]),
        "pip install moto[server]",
    )
    .await?;
    Ok(server)
}

async fn run_quiet(command: &mut Command, what: &str) -> Result<(), LocalError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| LocalError::Io { what: what.to_string(), source })?;
    if output.status.success() {
        return Ok(());
    }
    Err(LocalError::Setup(format!(
        "{what} failed ({}): {}; check that python3 and PyPI are reachable, or set AWS_ENDPOINT_URL to a running moto server",
        output.status,
        String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default()
    )))
}

impl MotoServer {
    /// Starts moto on 127.0.0.1 at `port` (0 picks a free one) and waits until it responds.
    pub async fn start(tools_dir: &Path, port: u16) -> Result<Self, LocalError> {
        let server = ensure_installed(tools_dir).await?;
        let port = if port == 0 { free_port()? } else { port };

        let mut command = Command::new(server);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: prctl only sets a flag on the child between fork and exec; it allocates nothing.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child =
            command.spawn().map_err(|source| LocalError::Io { what: "start moto_server".to_string(), source })?;

        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_ready(port).await?;
        Ok(Self { child, endpoint })
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> Result<u16, LocalError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|source| LocalError::Io { what: "find a free port".to_string(), source })?;
    let port =
        listener.local_addr().map_err(|source| LocalError::Io { what: "find a free port".to_string(), source })?.port();
    Ok(port)
}

async fn wait_until_ready(port: u16) -> Result<(), LocalError> {
    for _ in 0..300 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
            if stream.write_all(request).await.is_ok() {
                let mut buffer = [0u8; 12];
                if stream.read_exact(&mut buffer).await.is_ok() && buffer.starts_with(b"HTTP/1.") {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LocalError::Setup(format!("moto_server did not respond on 127.0.0.1:{port} within 30 s; start moto_server from the project-local venv by hand to see its error, or set AWS_ENDPOINT_URL to a running server")))
}
