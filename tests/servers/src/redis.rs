//! `RedisServer`: a `redis-server` that speaks only TLS and knows only the
//! test's ACL users.

use std::process::Command;

use crate::process::{Server, free_port};
use crate::{Certs, ClientCertificates, TempDir};

/// How [`RedisServer::start`] configures the server: the ACL users (the
/// `default` user is disabled) and whether clients need a certificate.
#[derive(Debug, Clone, Default)]
pub struct RedisTlsOptions {
    users: Vec<(String, String)>,
    client_certificates: ClientCertificates,
}

impl RedisTlsOptions {
    /// Adds the ACL user `name` with `password`, allowed every command on
    /// every key and channel.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    /// Refuses clients without a certificate the test CA signed.
    pub fn require_client_certificates(mut self) -> Self {
        self.client_certificates = ClientCertificates::Required;
        self
    }
}

/// A private `redis-server`: TLS only (`port 0`), on a free port of
/// 127.0.0.1, no persistence, the `default` user off. Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    certs: Certs,
    server: Server,
}

impl RedisServer {
    /// Starts it, or returns `None` after a skip line when there is no
    /// `redis-server` (a panic under `EARN_REQUIRE_SERVICES=1`).
    pub fn start(options: RedisTlsOptions) -> Option<RedisServer> {
        let binary =
            crate::find_binary("redis-server", "EARN_REDIS_SERVER", "/usr/bin/redis-server")?;
        let dir = TempDir::new("redis-tls");
        let certs = Certs::generate(dir.path());
        let port = free_port();
        let auth_clients = match options.client_certificates {
            ClientCertificates::Required => "yes",
            ClientCertificates::NotAsked => "no",
        };
        let mut config = format!(
            "bind 127.0.0.1\nport 0\ntls-port {port}\n\
             tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n\
             tls-auth-clients {auth_clients}\n\
             save \"\"\nappendonly no\ndir {dir}\nlogfile \"\"\n\
             user default off\n",
            cert = certs.server_cert_file().display(),
            key = certs.server_key_file().display(),
            ca = certs.ca_file().display(),
            dir = dir.path().display(),
        );
        for (name, password) in &options.users {
            config.push_str(&format!("user {name} on >{password} ~* &* +@all\n"));
        }
        let config_file = dir.write("redis.conf", config);
        let mut command = Command::new(binary);
        command.arg(config_file);
        Some(RedisServer {
            certs,
            server: Server::spawn(command, port, dir),
        })
    }

    /// `rediss://{user}:{password}@127.0.0.1:{port}`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "rediss://{user}:{password}@127.0.0.1:{}",
            self.server.port()
        )
    }

    /// `rediss://127.0.0.1:{port}`, with no credentials.
    pub fn url_without_credentials(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.server.port())
    }

    /// The certificates the server uses and trusts.
    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// The process.
    pub fn server(&self) -> &Server {
        &self.server
    }
}
