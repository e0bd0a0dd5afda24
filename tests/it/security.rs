//! wss:// with test certificates, the Origin policy, and caller identity.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use witrpc::client::TransportError;
use witrpc::prelude::*;
use witrpc::server::async_trait;
use witrpc::{Authorization, CallContext, Identity};
use witrpc_demo::DemoServiceClient;

use crate::util::{TestServer, http_status, init_tracing, within};

/// A CA and a leaf certificate for `localhost` / `127.0.0.1`, written to a temp dir.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("witrpc-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("witrpc test CA {name}"));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_server(pki: &Pki) -> (WitServer, String) {
    init_tracing();
    let server = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket("https://127.0.0.1:0/ws", 10)
        .with_tls_pem(pki.path("cert.pem"), pki.path("key.pem"))
        .with_access_token("tls-token")
        .with_encryption()
        .build()
        .unwrap();
    within("start", server.start_waiting_for_connection()).await.unwrap();
    let url = server.client_url().unwrap();
    (server, url)
}

/// An encrypting client that trusts the test CA.
async fn tls_client(url: &str, pki: &Pki) -> WitClient {
    WitClientBuilder::new()
        .with_websocket(url)
        .with_tls_root_ca_pem(pki.path("ca.pem"))
        .with_access_token("tls-token")
        .with_encryption()
        .connect(Duration::from_secs(10))
        .await
        .expect("TLS client connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_works_with_the_servers_ca_and_encryption_on_top() {
    let pki = Pki::new("wss-ok");
    let (_server, url) = tls_server(&pki).await;
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let client = within("connect", tls_client(&url, &pki)).await;
    let demo = DemoServiceClient::new(client);
    assert_eq!(within("add", demo.add(2, 40)).await.unwrap(), 42);
    let mut messages = demo.message();
    within("broadcast", demo.broadcast("over tls".to_owned())).await.unwrap();
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "over tls");
    let localhost = url.replace("127.0.0.1", "localhost");
    let again = within("connect by name", tls_client(&localhost, &pki)).await;
    assert_eq!(within("add", DemoServiceClient::new(again).add(1, 1)).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_an_unknown_ca_is_a_clear_tls_error() {
    let pki = Pki::new("wss-bad");
    let other = Pki::new("wss-other");
    let (_server, url) = tls_server(&pki).await;
    for builder in [
        WitClientBuilder::new().with_websocket(&url),
        WitClientBuilder::new().with_websocket(&url).with_tls_root_ca_pem(other.path("ca.pem")),
    ] {
        let err = within("connect", builder.connect(Duration::from_secs(10))).await.unwrap_err();
        match &err {
            ClientError::Transport(TransportError::Tls { .. }) => {
                let mut chain = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(s) = source {
                    chain = format!("{chain}: {s}");
                    source = s.source();
                }
                assert!(chain.contains("TLS failed") && chain.contains("certificate"), "{chain}");
            }
            other => panic!("expected a TLS error, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_misconfiguration_is_reported_before_serving() {
    let err = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket("https://127.0.0.1:0/ws", 10)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("with_tls_pem"), "{err}");
    // `.with_tls_pem(..)` before `.with_websocket(..)` no longer compiles (a doctest in
    // witrpc-server-websocket pins that), so there is no run-time error left to check.
    let server = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket("https://127.0.0.1:0/ws", 10)
        .with_tls_pem("/nonexistent/cert.pem", "/nonexistent/key.pem")
        .build()
        .unwrap();
    let err = within("start", server.start_waiting_for_connection()).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}

fn upgrade_request(origin: Option<&str>) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
    )
}

async fn status_for(server: &TestServer, origin: Option<&str>) -> String {
    let addr = server.server.local_addr().unwrap();
    let request = upgrade_request(origin).replace("Host: 127.0.0.1", &format!("Host: 127.0.0.1:{}", addr.port()));
    within("upgrade", http_status(addr, &request)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_browser_requests_get_403_unless_allowed() {
    let server = TestServer::start(|b| b.with_allowed_origins(["https://dashboard.example.com"])).await;
    let port = server.server.local_addr().unwrap().port();
    assert!(status_for(&server, Some("https://evil.example")).await.starts_with("HTTP/1.1 403"));
    assert!(status_for(&server, Some("null")).await.starts_with("HTTP/1.1 403"));
    assert!(status_for(&server, None).await.starts_with("HTTP/1.1 101"));
    assert!(status_for(&server, Some("https://dashboard.example.com")).await.starts_with("HTTP/1.1 101"));
    let same_host = format!("http://127.0.0.1:{port}");
    assert!(status_for(&server, Some(&same_host)).await.starts_with("HTTP/1.1 101"));

    let open = TestServer::start(|b| b.allow_any_origin()).await;
    assert!(status_for(&open, Some("https://evil.example")).await.starts_with("HTTP/1.1 101"));
}

/// Tokens of the form `user:<name>` authorize as `<name>`, for requests whose forwarded
/// `Host` header names this machine.
#[derive(Debug)]
struct UserTokens;

#[async_trait]
impl witrpc::AccessTokenValidator for UserTokens {
    async fn validate(&self, token: &str) -> bool {
        token.starts_with("user:")
    }

    async fn authorize(&self, token: &str, connection: &CallContext) -> Authorization {
        match token.strip_prefix("user:") {
            Some(name) if connection.header("host").is_some_and(|h| h.starts_with("127.0.0.1:")) => {
                Authorization::Allow(Some(Identity::new(name)))
            }
            _ => Authorization::Deny,
        }
    }
}

#[witrpc::service(contract = "WitRpc.Tests.IWhoAmI")]
pub(crate) trait WhoAmI {
    async fn who_am_i(&self) -> String;
}

struct Who;

impl WhoAmI for Who {
    async fn who_am_i(&self) -> String {
        let ctx = CallContext::current().expect("methods run inside a call context");
        let peer = ctx.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        format!("{}@{peer}", ctx.identity.map(|i| i.to_string()).unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_validator_names_the_caller_and_methods_see_it() {
    let server = TestServer::start(|b| {
        b.with_service(WhoAmIServer::new(Who)).with_access_token_validator(UserTokens).with_forwarded_headers(["Host"])
    })
    .await;
    let alice = WhoAmIClient::new(server.client(|b| b.with_access_token("user:alice")).await);
    let bob = WhoAmIClient::new(server.client(|b| b.with_access_token("user:bob")).await);
    assert_eq!(within("alice", alice.who_am_i()).await.unwrap(), "alice@127.0.0.1");
    assert_eq!(within("bob", bob.who_am_i()).await.unwrap(), "bob@127.0.0.1");
    let err = server.try_client(|b| b.with_access_token("nobody")).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized), "{err:?}");
}
