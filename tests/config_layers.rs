//! The real binary reads a TOML file and `ZKRS_*` variables, and refuses bad ones by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::free_port;

fn four_letter(port: u16, word: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn toml_file_and_environment_configure_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    let toml = tmp.path().join("zkrs.toml");
    std::fs::write(
        &toml,
        format!(
            "tickTime = 2000\nclientPort = {file_port}\nclientPortAddress = \"127.0.0.1\"\n\
             dataDir = \"{}\"\n\"4lw.commands.whitelist\" = [\"ruok\", \"conf\"]\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zkrs"))
        .arg("--config")
        .arg(&toml)
        .env("ZKRS_CLIENT_PORT", env_port.to_string())
        .env("ZKRS_TICK_TIME", "1500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let conf = loop {
        if let Some(text) = four_letter(env_port, "conf") {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "server never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The environment won over the file for the port and tickTime; the file set the rest.
    assert!(conf.contains(&format!("clientPort={env_port}")), "{conf}");
    assert!(conf.contains("tickTime=1500"), "{conf}");
    assert!(conf.contains("minSessionTimeout=3000"), "{conf}");
    assert!(TcpStream::connect(("127.0.0.1", file_port)).is_err());
    let stat = four_letter(env_port, "stat").unwrap();
    assert!(
        stat.contains("is not executed because it is not in the whitelist"),
        "{stat}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_environment_value_stops_the_server_naming_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zkrs"))
        .arg("--data-dir")
        .arg(tmp.path())
        .env("ZKRS_TICK_TIME", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ZKRS_TICK_TIME") && err.contains("tickTime"),
        "{err}"
    );
}

#[test]
fn a_bad_toml_value_stops_the_server_naming_key_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("zkrs.toml");
    std::fs::write(&toml, "tickTime = 2000\nmaxClientCnxns = -3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zkrs"))
        .arg("--config")
        .arg(&toml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("maxClientCnxns"),
        "{err}"
    );
}
