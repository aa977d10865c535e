//! `Certs`: a CA, a server certificate and a client certificate, made at
//! test time and written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Whether the server asks for a client certificate (`tls-auth-clients`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Asked for, and a connection without one refused (`yes`).
    Required,
    /// Not asked for (`no`).
    #[default]
    NotAsked,
}

/// A test CA and two certificates it signed, as PEM files in one
/// directory: `ca.pem`; `server.pem` and `server-key.pem`, valid for
/// `127.0.0.1` and `localhost`; `client.pem` and `client-key.pem`, for
/// mutual TLS. Keys are ECDSA P-256 in PKCS#8, which OpenSSL (Redis),
/// Go (NATS) and rustls all read.
#[derive(Debug, Clone)]
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// Makes the CA and the certificates and writes them into `dir`.
    pub fn generate(dir: &Path) -> Certs {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::new()).expect("CA params");
        ca.distinguished_name
            .push(DnType::CommonName, "earn test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |names: Vec<String>, name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("leaf key");
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            params.use_authority_key_identifier_extension = true;
            let cert = params.signed_by(&key, &issuer).expect("signed leaf");
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf(
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(
            Vec::new(),
            "earn test client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        };
        write("ca.pem", &ca_cert.pem());
        write("server.pem", &server);
        write("server-key.pem", &server_key);
        write("client.pem", &client);
        write("client-key.pem", &client_key);
        Certs {
            dir: dir.to_owned(),
        }
    }

    /// The CA's certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate file.
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key file.
    pub fn server_key_file(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }

    /// The client's certificate file.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client's private key file.
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.join("client-key.pem")
    }

    /// The CA's certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        read(&self.ca_file())
    }

    /// The client's certificate, PEM.
    pub fn client_cert_pem(&self) -> Vec<u8> {
        read(&self.client_cert_file())
    }

    /// The client's private key, PEM.
    pub fn client_key_pem(&self) -> Vec<u8> {
        read(&self.client_key_file())
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
