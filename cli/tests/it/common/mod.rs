//! Helpers for tests that run the `timepost` binary.
#![allow(dead_code)]

pub mod console;
pub mod console_kit;
pub mod serve_kit;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const SANDBOX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sandbox");

/// A working directory with the sandbox config.
pub fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{SANDBOX}/timepost.toml"),
        d.path().join("timepost.toml"),
    )
    .unwrap();
    d
}

/// Write the secrets file (mode 0600) before the server starts.
pub fn secrets(dir: &Path, toml: &str) {
    let p = dir.join(".timepost");
    std::fs::create_dir_all(&p).unwrap();
    let f = p.join("secrets.toml");
    std::fs::write(&f, toml).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The `admin_token` in the secrets file of the sandbox config.
pub fn admin_token(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".timepost/secrets.toml")).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "admin_token")
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// A running `timepost serve` on a random port.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub token: Option<String>,
    pub lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_timepost"))
            .current_dir(dir)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first.rsplit("http://").next().unwrap().trim().to_string();
        let mut token = None;
        for l in lines.by_ref() {
            let l = l.unwrap();
            // The banner names the secrets file; the token is read there
            // (it is never printed).
            if l.contains("admin API token created in") {
                token = admin_token(dir);
            }
            if l.contains("Ctrl-C") {
                break;
            }
        }
        Server {
            child,
            addr,
            token,
            lines,
        }
    }

    /// Send a request; returns (status, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        http(&self.addr, method, path, headers, body)
    }

    pub fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        let rest = self.lines.by_ref().map_while(Result::ok).collect();
        (status, rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let buf = String::from_utf8_lossy(&buf).to_string();
    let status = buf
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}
