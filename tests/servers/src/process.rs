//! `Server`: a broker process on a free port, killed on drop.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// A running server process of the test's own and the directory it works
/// in (its configuration, certificates, data and `server.log`). Dropping
/// it kills the process, then removes the directory.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// What started it, to start it again.
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    port: u16,
    // Dropped after the process is killed (fields drop in order, after
    // `Drop::drop`).
    dir: TempDir,
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

impl Server {
    /// Runs `command` (its output to `server.log` in `dir`) and waits until
    /// `port` accepts connections; panics with the log if the process
    /// exits or the port stays closed for ten seconds.
    pub(crate) fn spawn(command: Command, port: u16, dir: TempDir) -> Server {
        let mut server = Server {
            child: None,
            program: command.get_program().to_owned(),
            args: command.get_args().map(ToOwned::to_owned).collect(),
            port,
            dir,
        };
        server.restart();
        server
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it; its directory
    /// (and so its store) stays for [`restart`](Self::restart).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, after [`kill9`](Self::kill9)) on the same port and
    /// directory, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill9();
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("server.log");
        let child = command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("server.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let child = self.child.insert(child);
        let port = self.port;
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{command:?} exited ({status}):\n{}", self.log());
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{command:?} did not listen on port {port} within 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port it listens on, at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What it has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
