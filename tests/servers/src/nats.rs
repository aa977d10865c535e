//! `NatsServer`: a `nats-server` with TLS, the test's users and JetStream.

use std::process::Command;

use crate::process::{Server, free_port};
use crate::{Certs, ClientCertificates, TempDir};

/// A user the server accepts.
#[derive(Debug, Clone)]
pub enum NatsUser {
    /// `user` and `password`.
    Password {
        /// The user name.
        user: String,
        /// Its password.
        password: String,
    },
    /// An nkey user: its public key (`U…`); the client signs the server's
    /// nonce with the seed.
    Nkey {
        /// The public key.
        public_key: String,
    },
}

/// How [`NatsServer::start`] configures the server: its users (none: no
/// authorization) and whether clients need a certificate (`verify`).
#[derive(Debug, Clone, Default)]
pub struct NatsTlsOptions {
    users: Vec<NatsUser>,
    client_certificates: ClientCertificates,
}

impl NatsTlsOptions {
    /// Adds a user with a password.
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.users.push(NatsUser::Password {
            user: user.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Adds an nkey user by its public key.
    pub fn nkey(mut self, public_key: &str) -> Self {
        self.users.push(NatsUser::Nkey {
            public_key: public_key.to_owned(),
        });
        self
    }

    /// Refuses clients without a certificate the test CA signed
    /// (`verify: true`).
    pub fn require_client_certificates(mut self) -> Self {
        self.client_certificates = ClientCertificates::Required;
        self
    }
}

/// A private `nats-server`: TLS required, on a free port of 127.0.0.1,
/// JetStream on with its store in the server's directory. Killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    certs: Certs,
    server: Server,
}

impl NatsServer {
    /// Starts it, or returns `None` after a skip line when there is no
    /// `nats-server` (a panic under `EARN_REQUIRE_SERVICES=1`).
    pub fn start(options: NatsTlsOptions) -> Option<NatsServer> {
        let binary =
            crate::find_binary("nats-server", "EARN_NATS_SERVER", "/usr/sbin/nats-server")?;
        let dir = TempDir::new("nats-tls");
        let certs = Certs::generate(dir.path());
        let port = free_port();
        // JSON strings are valid in NATS's configuration format.
        let quote = |text: &str| format!("{text:?}");
        let users: Vec<String> = options
            .users
            .iter()
            .map(|user| match user {
                NatsUser::Password { user, password } => {
                    format!("{{user: {}, password: {}}}", quote(user), quote(password))
                }
                NatsUser::Nkey { public_key } => format!("{{nkey: {}}}", quote(public_key)),
            })
            .collect();
        let authorization = if users.is_empty() {
            String::new()
        } else {
            format!(
                "authorization {{\n  users: [\n    {}\n  ]\n}}\n",
                users.join("\n    ")
            )
        };
        let config = format!(
            "listen: \"127.0.0.1:{port}\"\n\
             tls {{\n  cert_file: {cert}\n  key_file: {key}\n  ca_file: {ca}\n  verify: {verify}\n  timeout: 2\n}}\n\
             {authorization}\
             jetstream {{\n  store_dir: {store}\n}}\n",
            cert = quote(&certs.server_cert_file().display().to_string()),
            key = quote(&certs.server_key_file().display().to_string()),
            ca = quote(&certs.ca_file().display().to_string()),
            verify = options.client_certificates == ClientCertificates::Required,
            store = quote(&dir.path().join("jetstream").display().to_string()),
        );
        let config_file = dir.write("nats.conf", config);
        let mut command = Command::new(binary);
        command.arg("-c").arg(config_file);
        Some(NatsServer {
            certs,
            server: Server::spawn(command, port, dir),
        })
    }

    /// A plain `nats-server` with JetStream (no TLS, no users), its store
    /// in its directory, for tests that kill and restart it
    /// ([`Server::kill9`], [`Server::restart`]); its URL is
    /// `nats://127.0.0.1:{port}`.
    pub fn start_plain() -> Option<Server> {
        let binary =
            crate::find_binary("nats-server", "EARN_NATS_SERVER", "/usr/sbin/nats-server")?;
        let dir = TempDir::new("nats");
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("jetstream"));
        Some(Server::spawn(command, port, dir))
    }

    /// `tls://127.0.0.1:{port}`, with no credentials (give them in the
    /// client's options).
    pub fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.server.port())
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
