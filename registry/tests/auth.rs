//! The one authentication flow, against registries that challenge in every spelling the
//! specs allow: Bearer (a token from a token service, with the credentials) and Basic, the
//! scheme in any case. Both the oci-client paths (a tag list) and the hand-written ones (a
//! streamed upload) get through; wrong or missing credentials are "refused access" without
//! the password in the message; a real htpasswd registry takes a push; a blob whose bytes do
//! not match its digest is refused as it ends; a registry that will not mount gets the blob
//! copied through the client, the upload it opened instead closed; a token registry mounts
//! with one token naming both repositories.
//!
//! The fake registries here are axum servers on loopback: each serves the few distribution
//! endpoints the test needs, and a token endpoint.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use osbs_registry::{Credentials, Producer, Registry, RegistryError, Secret, Settings};
use osbs_testkit::registry::{PASSWORD, PrivateRegistry, USER};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "tok-3f9a";
/// The token service's answer to a request naming both repositories of a mount.
const MOUNT_TOKEN: &str = "tok-mount-77";
/// The scopes of a mount of a `base` blob into `app`, as they are sent.
const MOUNT_SCOPES: &str = "scope=repository%3Aapp%3Apull%2Cpush&scope=repository%3Abase%3Apull";
/// The one blob of the fake's `base` repository.
const BASE_BLOB: &[u8] = b"a base layer in another repository";
const WRONG: &str = "wrong-password-xyz";

/// How the fake registry challenges.
#[derive(Debug, Clone)]
enum Challenge {
    /// `WWW-Authenticate` as given (`{realm}` is replaced by the token URL); answers
    /// `Bearer TOKEN`, which the token service gives for USER:PASSWORD.
    Bearer(&'static str),
    /// `WWW-Authenticate` as given; answers Basic USER:PASSWORD.
    Basic(&'static str),
}

#[derive(Debug, Default)]
struct Seen {
    token_requests: AtomicUsize,
    scopes: Mutex<Vec<String>>,
    uploaded: Mutex<Vec<u8>>,
    uploads_closed: AtomicUsize,
    /// Whether a mount with a token for both repositories is done (else: an upload opened).
    mounts: AtomicBool,
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn answer(status: StatusCode, headers: &[(&str, String)], body: impl Into<Body>) -> Response {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, value);
    }
    response.body(body.into()).unwrap()
}

/// Starts a fake registry; returns its address and what it saw.
async fn fake_registry(challenge: Challenge) -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let app = {
        let (seen, address) = (Arc::clone(&seen), address.clone());
        axum::Router::new().fallback(move |request: Request| {
            let (seen, address, challenge) =
                (Arc::clone(&seen), address.clone(), challenge.clone());
            async move { serve(request, &challenge, &address, &seen).await }
        })
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, seen)
}

async fn serve(request: Request, challenge: &Challenge, address: &str, seen: &Seen) -> Response {
    let (parts, body) = request.into_parts();
    let given = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = parts.uri.path().to_owned();
    if path == "/token" {
        seen.token_requests.fetch_add(1, Ordering::SeqCst);
        let query = parts.uri.query().unwrap_or_default();
        seen.scopes.lock().unwrap().push(query.to_owned());
        if given != basic(USER, PASSWORD) {
            return answer(
                StatusCode::UNAUTHORIZED,
                &[],
                r#"{"details":"bad credentials"}"#,
            );
        }
        let token = if query.contains(MOUNT_SCOPES) {
            MOUNT_TOKEN
        } else {
            TOKEN
        };
        // Both spellings of the token answer: `token` (Docker) and `access_token` (OAuth2).
        return answer(
            StatusCode::OK,
            &[],
            format!(r#"{{"access_token":"{token}"}}"#),
        );
    }
    let (expected, header) = match challenge {
        Challenge::Bearer(text) => (
            format!("Bearer {TOKEN}"),
            text.replace("{realm}", &format!("http://{address}/token")),
        ),
        Challenge::Basic(text) => (basic(USER, PASSWORD), (*text).to_owned()),
    };
    let mount_token = format!("Bearer {MOUNT_TOKEN}");
    if given != expected && given != mount_token {
        return answer(
            StatusCode::UNAUTHORIZED,
            &[("www-authenticate", header)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
    }
    let upload = "/v2/app/blobs/uploads/1".to_owned();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/v2/") => answer(StatusCode::OK, &[], "{}"),
        (&Method::GET, "/v2/app/tags/list") => {
            answer(StatusCode::OK, &[], r#"{"name":"app","tags":["a","b"]}"#)
        }
        (&Method::POST, "/v2/app/blobs/uploads/")
            if seen.mounts.load(Ordering::SeqCst)
                && parts.uri.query().is_some_and(|q| q.contains("mount="))
                && given == mount_token =>
        {
            answer(StatusCode::CREATED, &[], "")
        }
        (&Method::POST, "/v2/app/blobs/uploads/") => {
            answer(StatusCode::ACCEPTED, &[("location", upload)], "")
        }
        (&Method::PATCH, "/v2/app/blobs/uploads/1") => {
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            seen.uploaded.lock().unwrap().extend_from_slice(&bytes);
            answer(StatusCode::ACCEPTED, &[("location", upload)], "")
        }
        (&Method::PUT, "/v2/app/blobs/uploads/1") => answer(StatusCode::CREATED, &[], ""),
        (&Method::DELETE, "/v2/app/blobs/uploads/1") => {
            seen.uploads_closed.fetch_add(1, Ordering::SeqCst);
            answer(StatusCode::NO_CONTENT, &[], "")
        }
        (&Method::GET, blob) if blob.starts_with("/v2/base/blobs/sha256:") => {
            answer(StatusCode::OK, &[], BASE_BLOB)
        }
        (&Method::GET, blob) if blob.starts_with("/v2/app/blobs/sha256:") => {
            // Not the bytes of the digest asked for.
            answer(StatusCode::OK, &[], "tampered bytes")
        }
        _ => answer(StatusCode::NOT_FOUND, &[], ""),
    }
}

fn registry(address: &str, password: Option<&str>) -> Registry {
    let mut settings = Settings::new("osbs-registry-test");
    settings.attempts = 1;
    if let Some(password) = password {
        settings.credentials.insert(
            address.to_owned(),
            Credentials::new(USER, Secret::new(password)),
        );
    }
    Registry::new(address, &settings).unwrap()
}

async fn upload(registry: &Registry, content: &'static [u8]) -> Result<String, RegistryError> {
    let producer: Producer<(), std::io::Error> = Arc::new(move |out: &mut dyn Write| {
        out.write_all(content)?;
        Ok(((), None))
    });
    match registry
        .upload_stream("app", "a test blob", true, producer)
        .await
    {
        Ok(((), blob)) => Ok(blob.digest),
        Err(osbs_registry::UploadError::Registry(error)) => Err(error),
        Err(osbs_registry::UploadError::Producer(error)) => panic!("the producer failed: {error}"),
    }
}

#[tokio::test]
async fn every_challenge_spelling_gets_through_both_paths() {
    let cases = [
        Challenge::Bearer(r#"Bearer realm="{realm}",service="fake.registry""#),
        Challenge::Bearer(r#"bearer realm="{realm}", service="fake.registry""#),
        Challenge::Bearer(
            r#"BEARER realm="{realm}",service="fake.registry",scope="repository:app:pull,push""#,
        ),
        Challenge::Bearer(r#"Bearer service="fake.registry", realm="{realm}""#),
        Challenge::Basic(r#"Basic realm="fake registry""#),
        Challenge::Basic(r#"basic realm="fake registry", charset="UTF-8""#),
    ];
    for challenge in cases {
        let (address, seen) = fake_registry(challenge.clone()).await;
        let registry = registry(&address, Some(PASSWORD));
        let tags = registry.tags("app").await;
        assert_eq!(
            tags.ok(),
            Some(vec!["a".to_owned(), "b".to_owned()]),
            "{challenge:?}"
        );
        let digest = upload(&registry, b"uploaded through the fake").await;
        assert_eq!(
            digest.ok(),
            Some(osbs_registry::digest::sha256_digest(
                b"uploaded through the fake"
            )),
            "{challenge:?}"
        );
        assert_eq!(*seen.uploaded.lock().unwrap(), b"uploaded through the fake");
        let token_requests = seen.token_requests.load(Ordering::SeqCst);
        match challenge {
            Challenge::Bearer(_) => {
                assert!(token_requests >= 2, "{challenge:?}: {token_requests}");
                let scopes = seen.scopes.lock().unwrap().join(" ");
                assert!(
                    scopes.contains("scope=repository%3Aapp%3Apull")
                        && scopes.contains("scope=repository%3Aapp%3Apull%2Cpush")
                        && scopes.contains("service=fake.registry"),
                    "{challenge:?}: {scopes}"
                );
            }
            Challenge::Basic(_) => assert_eq!(token_requests, 0, "{challenge:?}"),
        }
    }
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused_without_showing_the_password() {
    for challenge in [
        Challenge::Bearer(r#"Bearer realm="{realm}",service="fake.registry""#),
        Challenge::Basic(r#"Basic realm="fake registry""#),
    ] {
        let (address, _) = fake_registry(challenge.clone()).await;
        for (password, expected) in [
            (Some(WRONG), "refused access"),
            (None, "it wants a user and password and none was given"),
        ] {
            let registry = registry(&address, password);
            let errors = [
                registry.tags("app").await.unwrap_err(),
                upload(&registry, b"x").await.unwrap_err(),
            ];
            for error in errors {
                let shown = format!("{error} {error:?} {registry:?}");
                assert!(
                    matches!(error, RegistryError::Denied { .. }),
                    "{challenge:?}: {shown}"
                );
                assert!(shown.contains(expected), "{challenge:?}: {shown}");
                assert!(
                    !shown.contains(WRONG) && !shown.contains(PASSWORD),
                    "{shown}"
                );
                assert!(!error.is_transient());
            }
        }
    }
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_is_refused_as_it_ends() {
    let (address, _) = fake_registry(Challenge::Basic(r#"Basic realm="x""#)).await;
    let registry = registry(&address, Some(PASSWORD));
    let digest = osbs_registry::digest::sha256_digest(b"the real bytes");
    let mut stream = registry.blob_stream("app", &digest).await.unwrap();
    let mut last = None;
    while let Some(piece) = stream.next().await {
        last = Some(piece);
    }
    let error = last.expect("the stream ends").unwrap_err();
    assert!(matches!(error, RegistryError::Protocol { .. }), "{error}");
    let full = registry.blob("app", &digest, 1 << 20).await.unwrap_err();
    assert!(!full.is_transient(), "{full}");
}

#[tokio::test]
async fn a_registry_that_will_not_mount_gets_the_blob_copied_and_its_upload_closed() {
    // The fake answers a mount as a registry whose token names one repository does: 202,
    // an upload opened instead.
    let (address, seen) = fake_registry(Challenge::Bearer(
        r#"Bearer realm="{realm}",service="fake.registry""#,
    ))
    .await;
    let registry = registry(&address, Some(PASSWORD));
    let digest = osbs_registry::digest::sha256_digest(BASE_BLOB);
    assert!(!registry.mount_blob("app", &digest, "base").await.unwrap());
    assert_eq!(seen.uploads_closed.load(Ordering::SeqCst), 1);
    assert_eq!(
        registry.ensure_blob("app", &digest, "base").await.unwrap(),
        osbs_registry::Arrival::Copied
    );
    assert_eq!(seen.uploads_closed.load(Ordering::SeqCst), 2);
    assert_eq!(*seen.uploaded.lock().unwrap(), BASE_BLOB);
}

#[tokio::test]
async fn a_token_registry_mounts_with_one_token_for_both_repositories() {
    // oci-client's token names one repository; a registry checks the token of a mount for
    // a pull of the repository mounted from too.
    let (address, seen) = fake_registry(Challenge::Bearer(
        r#"Bearer realm="{realm}",service="fake.registry""#,
    ))
    .await;
    seen.mounts.store(true, Ordering::SeqCst);
    let (with_password, anonymous) = (registry(&address, Some(PASSWORD)), registry(&address, None));
    let digest = osbs_registry::digest::sha256_digest(BASE_BLOB);
    assert_eq!(
        with_password
            .ensure_blob("app", &digest, "base")
            .await
            .unwrap(),
        osbs_registry::Arrival::Mounted
    );
    assert_eq!(seen.uploads_closed.load(Ordering::SeqCst), 0);
    assert!(seen.uploaded.lock().unwrap().is_empty(), "nothing copied");
    let scopes = seen.scopes.lock().unwrap().join(" ");
    assert!(
        scopes.contains(&format!("{MOUNT_SCOPES}&service=fake.registry")),
        "{scopes}"
    );
    // The same registry without credentials: no token for the mount, so no mount, and
    // the copy is refused as every push is.
    assert!(anonymous.ensure_blob("app", &digest, "base").await.is_err());
}

#[tokio::test]
async fn a_real_htpasswd_registry_takes_a_push_with_the_password_only() {
    let private = PrivateRegistry::with_password("127.0.0.1");
    let anonymous = registry(&private.address, None)
        .push_blob("ns/app", Bytes::from_static(b"needs a password"))
        .await
        .unwrap_err();
    assert!(
        anonymous
            .to_string()
            .contains("it wants a user and password"),
        "{anonymous}"
    );
    let wrong = registry(&private.address, Some(WRONG))
        .push_blob("ns/app", Bytes::from_static(b"needs a password"))
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("HTTP 401") && !wrong.to_string().contains(WRONG),
        "{wrong}"
    );
    let registry = registry(&private.address, Some(PASSWORD));
    let blob = registry
        .push_blob("ns/app", Bytes::from_static(b"needs a password"))
        .await
        .unwrap();
    assert!(registry.blob_exists("ns/app", &blob.digest).await.unwrap());
    let (value, streamed) = registry
        .upload_stream(
            "ns/app",
            "a streamed blob",
            true,
            Arc::new(|out: &mut dyn Write| {
                out.write_all(b"streamed with a password")?;
                Ok::<_, std::io::Error>(((), None))
            }),
        )
        .await
        .unwrap();
    let () = value;
    assert!(
        registry
            .blob_exists("ns/app", &streamed.digest)
            .await
            .unwrap()
    );
}
