//! Duplicated keys in the text a user writes: a YAML or JSON definition file, and JSON
//! input and arguments given to the `wfm` CLI; and a step with two actions, of which the
//! message can carry one. serde would keep the last value silently; the CLI refuses,
//! naming the key, and nothing reaches the server.

use std::process::Command;

use serde_json::json;

use super::{Matrix, common::*};

/// Runs the `wfm` CLI against the server; its stderr when it fails.
fn wfm(server: &Server, args: &[&str]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .arg("--server")
        .arg(server.url())
        .args(args)
        .output()
        .expect("wfm runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

#[tokio::test]
async fn what_would_not_arrive_as_written_is_refused_before_anything_is_sent() {
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let mut m = Matrix::new(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };

    let cases = [
        (
            "YAML definition repeating a step's key",
            vec![
                "register".to_string(),
                "-f".into(),
                file(
                    "step.yaml",
                    "name: dup\nsteps:\n  - id: a\n    id: b\n    tool: {name: sleep, arguments: {duration_ms: 1}}\n",
                ),
            ],
            "the key 'id' appears twice",
        ),
        (
            "YAML definition repeating a tool argument",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "args.yaml",
                    "name: dup\nsteps:\n  - id: a\n    tool:\n      name: sleep\n      arguments:\n        duration_ms: 1\n        duration_ms: 100000\n",
                ),
            ],
            "the key 'duration_ms' appears twice",
        ),
        (
            "JSON definition repeating a top-level key",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "top.json",
                    r#"{"name": "dup", "steps": [], "steps": [{"id": "a", "tool": {"name": "sleep"}}]}"#,
                ),
            ],
            "the key 'steps' appears twice",
        ),
        (
            "YAML definition giving a step two actions",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "two-actions.yaml",
                    "name: dup\nsteps:\n  - id: a\n    workflow: {name: echo}\n    tool: {name: sleep, arguments: {duration_ms: 1}}\n",
                ),
            ],
            "step 'a' has both `tool` and `workflow`; give exactly one",
        ),
        (
            "YAML definition whose input_schema is not an object",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "schema-false.yaml",
                    "name: dup\ninput_schema: false\nsteps:\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
                ),
            ],
            "input_schema must be a JSON Schema object that accepts an object, like {type: object}; it is false",
        ),
        (
            "YAML definition whose tool arguments are a template, not an object",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "args-template.yaml",
                    "name: dup\nsteps:\n  - {id: a, tool: {name: sleep, arguments: \"{{ input }}\"}}\n",
                ),
            ],
            "step 'a': tool.arguments must be an object of names to values, each of which may be a template, like {n: \"{{ input.n }}\"}; it is \"{{ input }}\"",
        ),
        (
            "YAML definition whose child input is a list",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "input-list.yaml",
                    "name: dup\nsteps:\n  - {id: a, workflow: {name: echo, input: [1, 2]}}\n",
                ),
            ],
            "step 'a': workflow.input must be an object of names to values",
        ),
        (
            "YAML definition with an integer a double cannot hold",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "big.yaml",
                    "name: dup\nsteps:\n  - {id: a, tool: {name: json_transform, arguments: {data: 9007199254740993, expression: data}}}\n",
                ),
            ],
            "9007199254740993 at /steps/0/tool/arguments/data would not arrive as written",
        ),
        (
            "YAML definition with .nan",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "nan.yaml",
                    "name: dup\nsteps:\n  - {id: a, tool: {name: json_transform, arguments: {data: .nan, expression: data}}}\n",
                ),
            ],
            ".nan at /steps/0/tool/arguments/data would not arrive as written",
        ),
        (
            "JSON definition with an integer a double cannot hold",
            vec![
                "register".into(),
                "-f".into(),
                file(
                    "big.json",
                    r#"{"name": "dup", "steps": [{"id": "a", "tool": {"name": "json_transform", "arguments": {"data": [12345678901234567890], "expression": "data"}}}]}"#,
                ),
            ],
            "12345678901234567890 at /steps/0/tool/arguments/data/0 would not arrive as written",
        ),
        (
            "a label given twice",
            vec![
                "register".into(),
                "--type".into(),
                "echo".into(),
                "--name".into(),
                "dup".into(),
                "--label".into(),
                "team=a".into(),
                "--label".into(),
                "team=b".into(),
            ],
            "--label team is given twice (team=a and team=b); give it once",
        ),
        (
            "JSON input repeating a key",
            vec![
                "run".into(),
                "echo".into(),
                "--input".into(),
                r#"{"a": 1, "a": 2}"#.into(),
            ],
            "the key 'a' appears twice",
        ),
        (
            "JSON arguments repeating a nested key",
            vec![
                "register".into(),
                "--type".into(),
                "echo".into(),
                "--name".into(),
                "dup".into(),
                "--arguments".into(),
                r#"{"x": {"y": 1, "y": 1}}"#.into(),
            ],
            "the key 'y' appears twice",
        ),
    ];
    for (case, args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let answer = wfm(&server, &args);
        let err = answer.expect_err(case);
        assert!(err.contains(says), "{case}: {err}");
        // Nothing was registered or started.
        m.check(
            case,
            Err::<(), _>(tonic::Status::invalid_argument(err)),
            tonic::Code::InvalidArgument,
            says,
        )
        .await;
    }
    // The same file without the repeated key registers.
    let ok = file(
        "ok.yaml",
        "name: fine\nsteps:\n  - id: a\n    tool: {name: sleep, arguments: {duration_ms: 1}}\n",
    );
    wfm(&server, &["register", "-f", &ok]).expect("a clean definition registers");
    assert_eq!(m.cases, 13);
}

/// A client option given to `wfm serve` would be ignored (a --tls-cert server would start
/// in plaintext and say nothing): it is refused before anything starts, naming what the
/// server takes instead. The same options in the environment, for the client commands of
/// the same shell, are left alone.
#[test]
fn client_options_given_to_serve_are_refused() {
    for (args, says) in [
        (
            &["serve", "--tls-cert", "c.pem", "--tls-key", "k.pem"][..],
            "--tls-cert is an option of the client subcommands, not of `wfm serve`: its certificate is the config file's [tls] cert",
        ),
        (
            &["--token", "t", "serve"][..],
            "--token is an option of the client subcommands, not of `wfm serve`",
        ),
        (
            &["serve", "--server", "http://127.0.0.1:1"][..],
            "--server is an option of the client subcommands",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("wfm runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !dir.path().join("wfm.db").exists(),
            "{args:?}: nothing started"
        );
    }
}

/// A typo in a log level would turn every log line off (tracing reads an unknown word as a
/// target): refused at start, from the config and from RUST_LOG alike.
#[test]
fn a_log_level_that_is_not_a_level_is_refused() {
    for (env, says) in [
        (
            ("WFM_LOG__LEVEL", "inf"),
            "log.level 'inf': 'inf' is not a level",
        ),
        (
            ("RUST_LOG", "info,wfm=verbose"),
            "RUST_LOG 'info,wfm=verbose': 'wfm=verbose' is not a level",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env_remove("RUST_LOG")
            .env(env.0, env.1)
            .output()
            .expect("wfm runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
}

/// A host name where an address is wanted: the error says what to give.
#[test]
fn a_listen_address_that_is_a_host_name_is_refused_with_what_to_give() {
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--listen", "localhost:50051"])
        .output()
        .expect("wfm runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("'localhost:50051' is not an IP address and port: give e.g. 127.0.0.1:50051"),
        "{stderr}"
    );
}

/// Runs the `wfm` CLI against the server at `url`; its exit code and stderr.
fn wfm_code(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .arg("--server")
        .arg(url)
        .args(args)
        .output()
        .expect("wfm runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// README: every command exits 2 for a command line or configuration it refuses before
/// doing anything, and 1 when it fails after that.
#[tokio::test]
async fn refusals_before_anything_is_sent_exit_2_and_failures_after_exit_1() {
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "child", "echo", json!({})).await;
    let mut m = Matrix::new(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let unparsable = dir.path().join("unparsable.yaml");
    std::fs::write(&unparsable, "steps: [\n").unwrap();
    let unparsable = unparsable.display().to_string();
    let missing = dir.path().join("missing.yaml").display().to_string();
    let refused: &[(&[&str], &str)] = &[
        (
            &["run", "child", "--input", "{bad"],
            "--input is not valid JSON",
        ),
        (
            &["run", "child", "--input", "[1]"],
            "--input must be a JSON object",
        ),
        (
            &["start", "child", "--metadata", "3"],
            "--metadata must be a JSON object",
        ),
        (
            &["executions", "--status", "weird"],
            "unknown status 'weird'",
        ),
        (
            &["register", "-t", "echo", "--arguments", "[1]"],
            "--arguments must be a JSON object",
        ),
        (
            &["list", "--label", "a=1", "--label", "a=2"],
            "--label a is given twice",
        ),
        (
            &["register", "-f", &unparsable],
            "is not a valid workflow definition",
        ),
        (&["register", "-f", &missing], "cannot read"),
        (&["--tls-ca", &missing, "list"], "--tls-ca"),
    ];
    let url = server.url();
    let cases = refused
        .iter()
        .map(|(args, says)| (url.as_str(), *args, *says))
        .chain([("notaurl", &["list"][..], "invalid server address 'notaurl'")]);
    for (url, args, says) in cases {
        let (code, stderr) = wfm_code(url, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        m.check(
            &format!("{url} {args:?}"),
            Err::<(), _>(tonic::Status::invalid_argument(stderr.clone())),
            tonic::Code::InvalidArgument,
            says,
        )
        .await;
    }

    // Failures after that: a call the server refused, a server that does not answer.
    let (code, stderr) = wfm_code(&url, &["run", "nope"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("error: NotFound: "), "{stderr}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, stderr) = wfm_code(&nobody, &["list"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to wfm"), "{stderr}");
}

/// A server refusing its configuration exits 2 before it listens: no tokens on an address
/// other machines reach.
#[test]
fn serve_refusing_to_listen_without_authentication_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("WFM_AUTH__TOKENS")
        .env_remove("WFM_AUTH__TOKENS_FILE")
        .env_remove("WFM_AUTH__INSECURE")
        .output()
        .expect("wfm runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    assert!(!dir.path().join("wfm.db").exists(), "nothing started");
}

/// `wfm token create` refusing its id exits 2, like any command line refused.
#[test]
fn token_create_refusing_its_id_exits_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["token", "create", "--role", "admin", "--id", "two words"])
        .output()
        .expect("wfm runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("token id 'two words' must be"), "{stderr}");
    assert!(output.stdout.is_empty(), "no token printed");
}

/// A connection lost mid-stream (the server killed) is UNAVAILABLE, the code to retry on,
/// not tonic's UNKNOWN, with where to follow on from.
#[tokio::test]
async fn a_watch_whose_server_is_killed_says_unavailable() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slow.yaml");
    std::fs::write(
        &file,
        "name: slow\nsteps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 60000}}}\n",
    )
    .unwrap();
    wfm(&server, &["register", "-f", &file.display().to_string()]).expect("registers");
    let id = wfm(&server, &["start", "slow"]).expect("starts");
    let id = id.trim();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "watch", id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wfm watch runs");
    // Once it shows the step running, the stream is established.
    let mut stdout = std::io::BufReader::new(watch.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("nap") {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(read > 0, "wfm watch ended early: {seen}");
        seen.push_str(&line);
    }
    server.signal("KILL");
    let output = watch.wait_with_output().expect("wfm watch ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: Unavailable: "), "{stderr}");
    assert!(
        stderr.contains(&format!("to follow on from here: wfm watch {id} --after ")),
        "{stderr}"
    );
}

/// `register -f` flags given replace the file's values, even to clear or lower them.
#[tokio::test]
async fn register_flags_given_replace_the_files_values() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("limited.yaml");
    std::fs::write(
        &file,
        "name: limited\ndescription: from the file\nmax_concurrency: 1\nsteps:\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let latest = |c: &mut Client| {
        let mut c = c.clone();
        async move {
            c.get(wfm::proto::GetRequest {
                name: "limited".into(),
                version: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .workflow
            .unwrap()
        }
    };
    let mut c = server.client().await;
    wfm(&server, &["register", "-f", &file]).expect("registers");
    let w = latest(&mut c).await;
    assert_eq!(
        (w.description.as_str(), w.max_concurrency),
        ("from the file", 1)
    );
    wfm(
        &server,
        &[
            "register",
            "-f",
            &file,
            "--description",
            "given",
            "--max-concurrency",
            "5",
        ],
    )
    .expect("registers");
    let w = latest(&mut c).await;
    assert_eq!((w.description.as_str(), w.max_concurrency), ("given", 5));
    wfm(
        &server,
        &[
            "register",
            "-f",
            &file,
            "--description",
            "",
            "--max-concurrency",
            "0",
        ],
    )
    .expect("registers");
    let w = latest(&mut c).await;
    assert_eq!(
        (w.description.as_str(), w.max_concurrency, w.version),
        ("", 0, 3)
    );
    // Not given: the file's again.
    wfm(&server, &["register", "-f", &file]).expect("registers");
    let w = latest(&mut c).await;
    assert_eq!(
        (w.description.as_str(), w.max_concurrency, w.version),
        ("from the file", 1, 4)
    );
}
