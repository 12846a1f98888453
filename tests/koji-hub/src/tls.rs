//! TLS for the hub: the server side (certificate, and client certificates checked against a
//! CA, whose CN `sslLogin` takes as the user name), and a throw-away PKI for tests and the
//! quickstart (a CA, a server certificate for 127.0.0.1/localhost, client certificates).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("invalid TLS setup: {0}")]
    Setup(String),
    #[error("cannot generate a test certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server configuration: our certificate, and client certificates optional (password
/// logins happen over TLS too) but verified against `client_ca` when presented.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pem_error = |what, path: &Path| {
        let path = path.to_owned();
        move |error: rustls::pki_types::pem::Error| TlsError::Pem {
            what,
            path,
            reason: error.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(pem_error("certificates", &files.cert))?
        .collect::<Result<_, _>>()
        .map_err(pem_error("certificates", &files.cert))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(pem_error("a key", &files.key))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&files.client_ca)
        .map_err(pem_error("CA certificates", &files.client_ca))?
    {
        let ca = ca.map_err(pem_error("CA certificates", &files.client_ca))?;
        roots
            .add(ca)
            .map_err(|error| TlsError::Setup(error.to_string()))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|error| TlsError::Setup(error.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Setup(error.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|error| TlsError::Setup(error.to_string()))?;
    Ok(Arc::new(config))
}

/// The CN of a (verified) client certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    certificate
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// PEM files of a throw-away PKI.
#[derive(Debug, Clone)]
pub struct TestPki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    dir: PathBuf,
    ca: Arc<(rcgen::CertificateParams, rcgen::KeyPair)>,
}

impl TestPki {
    /// A CA and a server certificate for 127.0.0.1 and localhost, written into `dir`.
    pub fn generate(dir: &Path) -> Result<TestPki, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "OSBS test Koji CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let pki = TestPki {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("hub.crt"),
            server_key: dir.join("hub.key"),
            dir: dir.to_owned(),
            ca: Arc::new((ca_params, ca_key)),
        };
        write(&pki.ca_cert, &ca_cert.pem())?;
        let (cert, key) = pki.issue(
            "koji-hub",
            vec!["127.0.0.1".into(), "localhost".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        write(&pki.server_cert, &cert)?;
        write(&pki.server_key, &key)?;
        Ok(pki)
    }

    /// A client certificate with CN `user`, as `(cert path, key path)`.
    pub fn client(&self, user: &str) -> Result<(PathBuf, PathBuf), TlsError> {
        let (cert, key) =
            self.issue(user, Vec::new(), rcgen::ExtendedKeyUsagePurpose::ClientAuth)?;
        let cert_path = self.dir.join(format!("{user}.crt"));
        let key_path = self.dir.join(format!("{user}.key"));
        write(&cert_path, &cert)?;
        write(&key_path, &key)?;
        Ok((cert_path, key_path))
    }

    /// The hub's side of this PKI.
    pub fn hub_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: self.ca_cert.clone(),
        }
    }

    fn issue(
        &self,
        cn: &str,
        names: Vec<String>,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Result<(String, String), TlsError> {
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate()?;
        let issuer = rcgen::Issuer::from_params(&self.ca.0, &self.ca.1);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn write(path: &Path, text: &str) -> Result<(), TlsError> {
    std::fs::write(path, text).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}
