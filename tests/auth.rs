//! Access: bearer tokens with roles on every RPC, TLS and mutual TLS with certificates made
//! in the test, and the refusal to expose an open server.

mod common;

use std::{path::Path, process::Command, time::Duration};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use tonic::Code;
use wfm::api::auth::{Role, create_token};
use wfm::client::{Client, ConnectOptions, connect};
use wfm::proto;

/// Every RPC of the service, each called with a minimal request; the answer's code.
const RPCS: &[&str] = &[
    "Register",
    "Unregister",
    "List",
    "Get",
    "Execute",
    "StartExecution",
    "GetExecution",
    "ListExecutions",
    "WatchExecution",
    "CancelExecution",
    "ListWorkflowTypes",
    "ListTools",
    "GetStats",
    "Shutdown",
];

const SOME_ID: &str = "01a20fc6-47b6-731f-bc39-9d945e4990e6";

async fn call(client: &mut Client, rpc: &str) -> Code {
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    match rpc {
        "Register" => code(
            client
                .register(proto::RegisterRequest {
                    name: "authz-probe".into(),
                    source: native("echo", json!({})),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        "Unregister" => code(
            client
                .unregister(proto::UnregisterRequest {
                    name: "nothing".into(),
                })
                .await
                .map(|_| ()),
        ),
        "List" => code(client.list(proto::ListRequest::default()).await.map(|_| ())),
        "Get" => code(
            client
                .get(proto::GetRequest {
                    name: "nothing".into(),
                    version: 0,
                })
                .await
                .map(|_| ()),
        ),
        "Execute" => code(
            client
                .execute(execute_request("nothing", json!({})))
                .await
                .map(|_| ()),
        ),
        "StartExecution" => code(
            client
                .start_execution(proto::StartExecutionRequest {
                    name: "nothing".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        "GetExecution" => code(
            client
                .get_execution(proto::GetExecutionRequest {
                    execution_id: SOME_ID.into(),
                })
                .await
                .map(|_| ()),
        ),
        "ListExecutions" => code(
            client
                .list_executions(proto::ListExecutionsRequest::default())
                .await
                .map(|_| ()),
        ),
        "WatchExecution" => code(
            client
                .watch_execution(proto::WatchExecutionRequest {
                    execution_id: SOME_ID.into(),
                    after_sequence: 0,
                })
                .await
                .map(|_| ()),
        ),
        "CancelExecution" => code(
            client
                .cancel_execution(proto::CancelExecutionRequest {
                    execution_id: SOME_ID.into(),
                    reason: String::new(),
                })
                .await
                .map(|_| ()),
        ),
        "ListWorkflowTypes" => code(
            client
                .list_workflow_types(proto::ListWorkflowTypesRequest {})
                .await
                .map(|_| ()),
        ),
        "ListTools" => code(
            client
                .list_tools(proto::ListToolsRequest {})
                .await
                .map(|_| ()),
        ),
        "GetStats" => code(
            client
                .get_stats(proto::GetStatsRequest::default())
                .await
                .map(|_| ()),
        ),
        // An invalid grace period: authorization is decided before the request is read.
        "Shutdown" => code(
            client
                .shutdown(proto::ShutdownRequest {
                    grace_period: Some(prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    }),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        other => panic!("unknown rpc {other}"),
    }
}

fn allowed(role: Role, rpc: &str) -> bool {
    match rpc {
        "Register" | "Unregister" | "Shutdown" => role == Role::Admin,
        "Execute" | "StartExecution" | "CancelExecution" => role >= Role::Operator,
        _ => true,
    }
}

fn write_config(dir: &Path, body: &str) -> String {
    let path = dir.join("wfm.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn every_rpc_with_no_token_a_wrong_token_and_each_role() {
    let (admin, admin_entry) = create_token("ops", Role::Admin).unwrap();
    let (operator, operator_entry) = create_token("ci", Role::Operator).unwrap();
    let (reader, reader_entry) = create_token("dash", Role::Reader).unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    // Two tokens in the config file, one in a tokens file.
    std::fs::write(
        config_dir.path().join("tokens"),
        format!("# id role sha256\ndash reader {}\n", reader_entry.sha256),
    )
    .unwrap();
    let config = write_config(
        config_dir.path(),
        &format!(
            "[auth]\ntokens_file = \"{}\"\ntokens = [\n  {{ id = \"ops\", role = \"admin\", sha256 = \"{}\" }},\n  {{ id = \"ci\", role = \"operator\", sha256 = \"{}\" }},\n]\n",
            config_dir.path().join("tokens").display(),
            admin_entry.sha256,
            operator_entry.sha256
        ),
    );
    let mut server = Server::start_with(&[], &["--config", &config]).await;
    let with = |token: Option<&str>| ConnectOptions {
        token: token.map(str::to_string),
        ..Default::default()
    };

    let mut nobody = connect(&server.url(), with(None)).await.unwrap();
    let mut stranger = connect(&server.url(), with(Some("wfm_not-a-real-token")))
        .await
        .unwrap();
    let mut checked = 0;
    for rpc in RPCS {
        assert_eq!(
            call(&mut nobody, rpc).await,
            Code::Unauthenticated,
            "{rpc} without a token"
        );
        assert_eq!(
            call(&mut stranger, rpc).await,
            Code::Unauthenticated,
            "{rpc} with a wrong token"
        );
        checked += 2;
    }
    for (role, token) in [
        (Role::Reader, &reader),
        (Role::Operator, &operator),
        (Role::Admin, &admin),
    ] {
        let mut client = connect(&server.url(), with(Some(token))).await.unwrap();
        for rpc in RPCS {
            let code = call(&mut client, rpc).await;
            if allowed(role, rpc) {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{role:?} may call {rpc}, got {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{role:?} may not call {rpc}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, RPCS.len() * 5);
    // Nothing a refused caller sent was applied: the only workflow is the admin's probe.
    let mut admin_client = connect(&server.url(), with(Some(&admin))).await.unwrap();
    let listed = admin_client
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .workflows;
    assert_eq!(
        listed.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["authz-probe"]
    );

    // Health and reflection stay open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();

    // The admin can stop it.
    admin_client
        .shutdown(proto::ShutdownRequest::default())
        .await
        .unwrap();
    assert!(server.wait_exit(Duration::from_secs(15)).success());
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert, client_key) = leaf(vec!["client".into()]);
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server_cert),
            ("server.key", server_key),
            ("client.pem", client_cert),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let pki = Pki::new();
    let (token, entry) = create_token("tls", Role::Admin).unwrap();
    let tls = write_config(
        pki.dir.path(),
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n[auth]\ntokens = [{{ id = \"tls\", role = \"admin\", sha256 = \"{}\" }}]\n",
            pki.path("server.pem"),
            pki.path("server.key"),
            entry.sha256
        ),
    );
    let server = Server::start_with(&[], &["--config", &tls]).await;
    let url = format!("https://{}", server.addr);
    let options = ConnectOptions {
        token: Some(token.clone()),
        ca_pem: Some(pki.read("ca.pem")),
        identity: None,
    };
    let mut client = connect(&url, options.clone()).await.unwrap();
    client
        .register(proto::RegisterRequest {
            name: "secure-echo".into(),
            source: native("echo", json!({})),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut stream = client
        .execute(execute_request("secure-echo", json!({"over": "tls"})))
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        events.push(r.event.unwrap());
    }
    assert_eq!(labels(&events).last().unwrap(), "completed");
    assert_eq!(
        output_json(&result_of(events.last().unwrap()).output),
        json!({"over": "tls"})
    );
    // A plaintext client gets nowhere.
    let plain = connect(
        &server.url(),
        ConnectOptions {
            token: Some(token.clone()),
            ..Default::default()
        },
    )
    .await;
    if let Ok(mut plain) = plain {
        assert!(plain.list(proto::ListRequest::default()).await.is_err());
    }
    drop(server);

    // Mutual TLS: a client certificate signed by the CA is required.
    let mtls_dir = tempfile::tempdir().unwrap();
    let mtls = write_config(
        mtls_dir.path(),
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            pki.path("server.pem"),
            pki.path("server.key"),
            pki.path("ca.pem")
        ),
    );
    let server = Server::start_with(&[], &["--config", &mtls]).await;
    let url = format!("https://{}", server.addr);
    let with_identity = ConnectOptions {
        ca_pem: Some(pki.read("ca.pem")),
        identity: Some((pki.read("client.pem"), pki.read("client.key"))),
        token: None,
    };
    let mut client = connect(&url, with_identity).await.unwrap();
    client.list(proto::ListRequest::default()).await.unwrap();
    let without = ConnectOptions {
        ca_pem: Some(pki.read("ca.pem")),
        ..Default::default()
    };
    let refused = match connect(&url, without).await {
        Err(_) => true,
        Ok(mut c) => c.list(proto::ListRequest::default()).await.is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");

    // The CLI presents its certificate with --tls-cert and --tls-key.
    let cli = |identity: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wfm"));
        command.args(["--server", &url, "--tls-ca", &pki.path("ca.pem")]);
        if !identity {
            // A token too: its call is written before the server's alert is read.
            command.args(["--token", "t"]);
        }
        if identity {
            command.args([
                "--tls-cert",
                &pki.path("client.pem"),
                "--tls-key",
                &pki.path("client.key"),
            ]);
        }
        command.args(["list"]).output().unwrap()
    };
    let listed = cli(true);
    assert!(listed.status.success(), "{listed:?}");
    // Without one: an error that says what to give, never a silent death by SIGPIPE when
    // the server closes the connection under a write.
    for _ in 0..3 {
        let refused = cli(false);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        assert!(stderr.contains("give --tls-cert and --tls-key"), "{stderr}");
        // However the handshake's end reached the call, it is a connection refused to it.
        assert!(stderr.starts_with("error: Unavailable: "), "{stderr}");
    }
}

#[test]
fn an_open_server_is_not_exposed_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    assert!(stderr.contains("--insecure"), "{stderr}");
}

/// With auth off, only the user running wfm may call it: another user of the machine reaches
/// loopback too, and is turned away. Needs root, to run a client as
/// another user; CI runs as root.
#[tokio::test]
async fn with_auth_off_another_user_of_the_machine_is_refused() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: running a client as another user needs root");
        return;
    }
    let server = Server::start().await;
    let as_nobody = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wfm"))
            .args(["--server", &server.url()])
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    for args in [
        &["register", "--type", "echo", "--name", "intruder"][..],
        &["shutdown"],
        &["list"],
    ] {
        let output = as_nobody(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {output:?}");
        assert!(
            stderr.contains("PermissionDenied: auth is off (no tokens configured), so only the user running wfm may call it; this caller is another user (uid 65534)"),
            "{args:?}: {stderr}"
        );
    }
    // Nothing changed, and the server still serves the user running it.
    let mut client = server.client().await;
    let listed = client
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.workflows.is_empty(), "{listed:?}");
}

/// A tokens file is the operator asking for auth: an empty one (a provisioning step that
/// failed) must not start a server with auth off.
#[test]
fn an_empty_tokens_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# no token yet\n").unwrap();
    let config = write_config(
        dir.path(),
        &format!("[auth]\ntokens_file = \"{}\"\n", tokens.display()),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            &config,
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has no token, so auth would be off")
            && stderr.contains("wfm token create"),
        "{stderr}"
    );
}

#[tokio::test]
async fn insecure_says_so_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--listen", "0.0.0.0:0", "--insecure", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("wfm listening on 0.0.0.0:"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("INSECURE") && text.contains("WITHOUT AUTHENTICATION"),
        "{text}"
    );
}

/// With auth off only the user running wfm may call it; the files it writes hold every
/// input and output, so they are that user's alone too, whatever the umask it started with.
#[tokio::test]
async fn the_database_files_are_readable_by_the_user_running_wfm_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "echo", "echo", json!({})).await;
    execute(&mut client, "echo", json!({"secret": 1})).await;
    for file in ["wfm.db", "wfm.db-wal", "wfm.db-shm"] {
        let mode = std::fs::metadata(server.data_dir().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is {mode:o}: others may read it");
    }
}

/// Tokens on a non-loopback address without TLS are sent in clear text: allowed (a private
/// network may be trusted), and said at start.
#[test]
fn tokens_without_tls_beyond_loopback_are_warned_about() {
    use std::io::BufRead;
    let (_, entry) = create_token("ops", Role::Admin).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "listen = \"0.0.0.0:0\"\n[auth]\ntokens = [ {{ id = \"ops\", role = \"admin\", sha256 = \"{}\" }} ]\n",
            entry.sha256
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--config", &config, "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (lines, arrive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let warned = std::iter::from_fn(|| arrive.recv_timeout(Duration::from_secs(10)).ok())
        .any(|line| line.contains("bearer tokens travel in clear text"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "no warning about tokens in clear text");
}
