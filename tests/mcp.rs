//! MCP servers as tool providers, against real servers installed from their registries by
//! scripts/install-mcp-servers.sh: @modelcontextprotocol/server-everything (npm, over stdio
//! and streamable HTTP) and mcp-server-time (PyPI, over stdio).

mod decl_harness;

use std::time::Duration;

use decl_harness::*;
use serde_json::json;
use wfm::proto;

/// A config with both servers over stdio and one that cannot start.
fn config() -> String {
    let (everything, time) = mcp_servers();
    format!(
        r#"
[mcp_servers.everything]
command = "node"
args = ["{}", "stdio"]

[mcp_servers.time]
command = "{}"
args = ["--local-timezone", "UTC"]

[mcp_servers.broken]
command = "/nonexistent/mcp-server"
startup_timeout = "5s"
"#,
        everything.display(),
        time.display()
    )
}

#[tokio::test]
async fn lists_mcp_tools_and_survives_a_broken_server() {
    let server = Server::start(&config());
    let mut c = server.client().await;
    let tools = c
        .list_tools(proto::ListToolsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tools;
    let find = |name: &str| tools.iter().find(|t| t.name == name);
    let echo = find("everything.echo").unwrap_or_else(|| {
        panic!(
            "no everything.echo in {:?}\n{}",
            tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
            server.log()
        )
    });
    assert_eq!(echo.server, "everything");
    assert!(!echo.description.is_empty());
    assert!(
        echo.input_schema
            .as_ref()
            .is_some_and(|s| s.fields.contains_key("properties"))
    );
    let time = find("time.get_current_time").expect("time.get_current_time");
    assert_eq!(time.server, "time");
    assert!(find("sleep").is_some_and(|t| t.server == "builtin"));
    assert!(!tools.iter().any(|t| t.server == "broken"));
    let log = server.log();
    assert!(
        log.contains("broken") && log.contains("could not be connected"),
        "{log}"
    );
    // server-everything adds tools once the session is initialized and says so
    // (notifications/tools/list_changed): wfm lists them again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .log()
        .contains("MCP server's tools changed server=everything")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no re-listing after list_changed:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn runs_a_workflow_over_mcp_tools() {
    let (url, _requests) = flaky_http(1).await;
    let server = Server::start(&config());
    let mut c = server.client().await;
    register(
        &mut c,
        "sum",
        r#"
steps:
  - id: add
    tool: {name: everything.get-sum, arguments: {a: "{{ input.a }}", b: "{{ input.b }}"}}
output: "{{ steps.add.output }}"
"#,
    )
    .await
    .expect("child registers");
    let yaml = format!(
        r#"
input_schema:
  type: object
  required: [cities, timezone]
  properties:
    cities: {{type: array, items: {{type: string}}}}
    timezone: {{type: string}}
steps:
  - id: weather
    for_each: "{{{{ input.cities }}}}"
    max_parallel: 2
    tool: {{name: everything.get-structured-content, arguments: {{location: "{{{{ item }}}}"}}}}
  - id: now
    tool: {{name: time.get_current_time, arguments: {{timezone: "{{{{ input.timezone }}}}"}}}}
  - id: hottest
    depends_on: [weather]
    tool:
      name: json_transform
      arguments: {{data: "{{{{ steps.weather.output }}}}", expression: "data | map(attribute='temperature') | max"}}
  - id: warn
    depends_on: [hottest]
    when: "steps.hottest.output > 100"
    tool: {{name: everything.echo, arguments: {{message: "too hot"}}}}
  - id: ping
    tool: {{name: http_request, arguments: {{url: "{url}"}}}}
    retry: {{maximum_attempts: 3, initial_interval: 50ms}}
  - id: slow
    tool: {{name: everything.trigger-long-running-operation, arguments: {{duration: 30, steps: 5}}}}
    timeout: 300ms
    continue_on_error: true
  - id: total
    depends_on: [hottest, now]
    workflow: {{name: sum, input: {{a: "{{{{ steps.hottest.output }}}}", b: 1}}}}
output:
  hottest: "{{{{ steps.hottest.output }}}}"
  timezone: "{{{{ steps.now.output.timezone }}}}"
  sum_text: "{{{{ steps.total.output }}}}"
  warned: "{{{{ steps.warn.status }}}}"
  slow: "{{{{ steps.slow.status }}}}"
"#
    );
    register(&mut c, "mcp-flow", &yaml)
        .await
        .expect("registers");
    let events = execute(
        &mut c,
        "mcp-flow",
        json!({"cities": ["New York", "Chicago", "Los Angeles"], "timezone": "Europe/Paris"}),
    )
    .await
    .expect("runs");
    let all = lines(&events);
    let r = result(&events);
    assert!(r.success, "{all:#?}\n{}", server.log());
    let out = output(&events);
    assert_eq!(out["timezone"], json!("Europe/Paris"), "{out}");
    assert_eq!(out["warned"], json!("skipped"));
    assert_eq!(out["slow"], json!("failed"));
    let hottest = out["hottest"].as_f64().expect("a number, kept as a number");
    assert!(
        out["sum_text"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("is {}", hottest + 1.0)),
        "{out}"
    );

    // Structured content of each item, in item order.
    let weather = step_result(&r, "weather");
    let items = wfm::api::convert::value_to_json_lossy(weather.output.as_ref().unwrap());
    assert_eq!(items.as_array().map(Vec::len), Some(3));
    assert!(items[0]["temperature"].is_number(), "{items}");
    let w = step_lines(&events, "weather");
    assert_eq!(w[0], "started weather 1");
    assert_eq!(
        w.iter()
            .filter(|l| l.starts_with("progress weather: item"))
            .count(),
        3
    );
    assert_eq!(w.last().unwrap(), "completed weather");

    assert_eq!(
        step_lines(&events, "now"),
        ["started now 1", "completed now"]
    );
    assert_eq!(
        step_lines(&events, "hottest"),
        ["started hottest 1", "completed hottest"]
    );
    assert!(step_lines(&events, "warn")[0].starts_with("skipped warn: when"));
    let ping = step_lines(&events, "ping");
    assert_eq!(ping[0], "started ping 1");
    assert!(
        ping[1].starts_with("failed ping 1 retry: ToolFailed"),
        "{ping:#?}"
    );
    assert_eq!(&ping[2..], ["started ping 2", "completed ping"]);
    let slow = step_lines(&events, "slow");
    assert!(
        slow.iter().any(|l| l.starts_with("failed slow 1: Timeout")),
        "{slow:#?}"
    );
    let total = step_lines(&events, "total");
    assert_eq!(total[0], "started total 1");
    assert!(
        total
            .iter()
            .any(|l| l.contains("child sum (") && l.contains("step add completed")),
        "{total:#?}"
    );
    assert_eq!(total.last().unwrap(), "completed total");
}

#[tokio::test]
async fn an_mcp_tool_error_fails_the_step_with_the_servers_message() {
    let server = Server::start(&config());
    let mut c = server.client().await;
    register(
        &mut c,
        "bad-tz",
        "steps:\n  - {id: now, tool: {name: time.get_current_time, arguments: {timezone: Not/AZone}}}\n",
    )
    .await
    .unwrap();
    let events = execute(&mut c, "bad-tz", json!({})).await.unwrap();
    let now = step_lines(&events, "now");
    assert!(
        now[1].starts_with("failed now 1: ToolFailed: tool 'time.get_current_time' failed:"),
        "{now:#?}"
    );
    assert!(
        now[1].contains("Not/AZone"),
        "the server's message: {}",
        now[1]
    );
    assert!(!result(&events).success);
}

/// An MCP tool that refuses its arguments (JSON-RPC invalid params, -32602) fails the step
/// as InvalidArguments, as a built-in tool's bad arguments do, so a retry policy listing
/// `InvalidArguments` as non-retryable stops at once; it used to be ToolFailed, retried.
/// server-everything answers it as an error result reading "MCP error -32602: …".
#[tokio::test]
async fn an_mcp_tool_refusing_its_arguments_is_invalid_arguments() {
    let server = Server::start(&config());
    let mut c = server.client().await;
    register(
        &mut c,
        "bad-sum",
        r#"
steps:
  - id: add
    tool: {name: everything.get-sum, arguments: {a: "{{ input.a }}", b: 1}}
    retry: {maximum_attempts: 3, initial_interval: 10ms, non_retryable_error_types: [InvalidArguments]}
"#,
    )
    .await
    .unwrap();
    let events = execute(&mut c, "bad-sum", json!({"a": "x"})).await.unwrap();
    let add = step_lines(&events, "add");
    assert_eq!(add.len(), 2, "one attempt, not retried: {add:#?}");
    assert!(
        add[1].starts_with(
            "failed add 1: InvalidArguments: tool 'everything.get-sum': invalid arguments: "
        ),
        "{add:#?}"
    );
    assert!(
        add[1].contains("expected number"),
        "the server's reason: {add:#?}"
    );
    assert!(!result(&events).success);
}

/// The pids of the processes `parent` started whose command line contains `needle`.
fn children_matching(parent: u32, needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
        return found;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}

#[tokio::test]
async fn reconnects_a_stdio_server_that_died() {
    let server = Server::start(&config());
    let mut c = server.client().await;
    register(
        &mut c,
        "echo",
        r#"
steps:
  - id: say
    tool: {name: everything.echo, arguments: {message: "hello"}}
    retry: {maximum_attempts: 20, initial_interval: 200ms, backoff_coefficient: 1.5, maximum_interval: 1s}
"#,
    )
    .await
    .unwrap();
    let events = execute(&mut c, "echo", json!({})).await.unwrap();
    assert!(result(&events).success);
    let before = children_matching(server.pid(), "server-everything");
    assert_eq!(before.len(), 1, "one server-everything child: {before:?}");
    // Kill the server wfm started (our own grandchild), then call it again.
    let status = std::process::Command::new("kill")
        .args(["-9", &before[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let events = execute(&mut c, "echo", json!({})).await.unwrap();
    assert!(
        result(&events).success,
        "{:#?}\n{}",
        lines(&events),
        server.log()
    );
    assert_eq!(output(&events)["say"], json!("Echo: hello"));
    let after = children_matching(server.pid(), "server-everything");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "a new server process");
    assert!(
        server.log().contains("MCP server reconnected"),
        "{}",
        server.log()
    );
}

/// Starts server-everything over streamable HTTP on a free port; killed on drop.
struct HttpEverything(std::process::Child, u16);

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_everything() -> HttpEverything {
    http_everything_on(free_port()).await
}

async fn http_everything_on(port: u16) -> HttpEverything {
    let (everything, _) = mcp_servers();
    let child = std::process::Command::new("node")
        .arg(&everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start server-everything over HTTP");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "server-everything did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    HttpEverything(child, port)
}

#[tokio::test]
async fn calls_a_server_over_streamable_http() {
    let http = http_everything().await;
    let server = Server::start(&format!(
        "[mcp_servers.web]\nurl = \"http://127.0.0.1:{}/mcp\"\n",
        http.1
    ));
    echoes_through_web(&server, "over http").await;
}

/// An MCP server behind HTTPS whose certificate a private CA signed: trusted once the
/// operator names the CA in `SSL_CERT_FILE`, refused with the reason otherwise.
#[tokio::test]
async fn calls_a_server_over_https_it_trusts() {
    let http = http_everything().await;
    let (front, tls) = https_front(([127, 0, 0, 1], http.1).into());
    let config =
        format!("[mcp_servers.web]\nurl = \"https://{front}/mcp\"\nstartup_timeout = \"5s\"\n");
    let trusting = Server::start_with_env(&config, &[("SSL_CERT_FILE", tls.ca())]);
    echoes_through_web(&trusting, "over https").await;

    let untrusting = Server::start(&config);
    let mut c = untrusting.client().await;
    let tools = c
        .list_tools(proto::ListToolsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tools;
    assert!(!tools.iter().any(|t| t.server == "web"), "{tools:?}");
    let log = untrusting.log();
    assert!(
        log.contains("did not answer MCP's initialize: invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
}

/// The server's `web.echo` is listed and a workflow calling it echoes `message`.
async fn echoes_through_web(server: &Server, message: &str) {
    let mut c = server.client().await;
    let tools = c
        .list_tools(proto::ListToolsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tools;
    assert!(
        tools
            .iter()
            .any(|t| t.name == "web.echo" && t.server == "web"),
        "{}",
        server.log()
    );
    register(
        &mut c,
        "web-echo",
        "steps:\n  - {id: say, tool: {name: web.echo, arguments: {message: \"{{ input.m }}\"}}}\n",
    )
    .await
    .unwrap();
    let events = execute(&mut c, "web-echo", json!({"m": message}))
        .await
        .unwrap();
    assert_eq!(
        output(&events),
        json!({"say": format!("Echo: {message}")}),
        "{:#?}",
        lines(&events)
    );
}

/// wfm started before its MCP server (as services in one deployment often are): it serves
/// at once without the server's tools, keeps trying, and adds them once the server is up.
#[tokio::test]
async fn a_server_that_comes_up_after_wfm_gets_its_tools_added() {
    let port = free_port();
    let server = Server::start(&format!(
        "[mcp_servers.late]\nurl = \"http://127.0.0.1:{port}/mcp\"\nstartup_timeout = \"2s\"\n"
    ));
    let mut c = server.client().await;
    let names = |tools: Vec<proto::Tool>| tools.into_iter().map(|t| t.name).collect::<Vec<_>>();
    let before = names(
        c.list_tools(proto::ListToolsRequest {})
            .await
            .unwrap()
            .into_inner()
            .tools,
    );
    assert!(!before.iter().any(|n| n.starts_with("late.")), "{before:?}");
    let log = server.log();
    // One line from wfm that says what is wrong, and none from the MCP library beside it.
    assert!(log.contains("retrying in the background"), "{log}");
    assert!(
        log.contains("did not answer MCP's initialize: Connection refused"),
        "{log}"
    );
    assert!(!log.contains("rmcp::"), "{log}");

    let _http = http_everything_on(port).await;
    wait_for_tool(&mut c, &server, "late.echo").await;
    register(
        &mut c,
        "late-echo",
        "steps:\n  - {id: say, tool: {name: late.echo, arguments: {message: hi}}}\n",
    )
    .await
    .unwrap();
    let events = execute(&mut c, "late-echo", json!({})).await.unwrap();
    assert_eq!(
        output(&events),
        json!({"say": "Echo: hi"}),
        "{:#?}",
        lines(&events)
    );
}

/// A run resumed after a crash while its MCP server is down too: the missing tool is
/// unavailable (not unknown), so the step's retry policy waits the server out.
#[tokio::test]
async fn a_resumed_run_waits_for_its_mcp_server_to_come_back() {
    let port = free_port();
    let http = http_everything_on(port).await;
    let mut server = Server::start(&format!(
        "[mcp_servers.late]\nurl = \"http://127.0.0.1:{port}/mcp\"\nstartup_timeout = \"2s\"\n"
    ));
    let mut c = server.client().await;
    register(
        &mut c,
        "nap-then-echo",
        r#"
steps:
  - id: nap
    tool: {name: sleep, arguments: {duration_ms: 1000}}
  - id: say
    depends_on: [nap]
    tool: {name: late.echo, arguments: {message: back}}
    retry: {maximum_attempts: 100, initial_interval: 100ms, backoff_coefficient: 1.0}
"#,
    )
    .await
    .unwrap();
    let id = c
        .start_execution(proto::StartExecutionRequest {
            name: "nap-then-echo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Both die while the run naps; wfm comes back first.
    drop(http);
    server.kill_and_restart();
    let mut c = server.client().await;
    let mut stream = c
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut http = None;
    let mut seen = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("the run ended within 60s")
        .unwrap()
    {
        let event = r.event.unwrap();
        seen.push(event.clone());
        if let Some(proto::execution_event::Kind::StepFailed(f)) = &event.kind
            && http.is_none()
        {
            assert!(
                f.will_retry && f.error.contains("not connected yet"),
                "{f:?}"
            );
            http = Some(http_everything_on(port).await);
        }
    }
    assert!(
        http.is_some(),
        "the step never missed its server: {:#?}",
        lines(&seen)
    );
    assert_eq!(
        output(&seen),
        json!({"say": "Echo: back"}),
        "{:#?}",
        lines(&seen)
    );
}

/// A stdio server slower to start than its `startup_timeout` (a first `npx -y` downloading
/// its package): start-up goes on without it, and the attempts made in the background give
/// it longer, so its tools appear instead of it being killed and started again forever.
#[tokio::test]
async fn a_stdio_server_slower_than_its_startup_timeout_connects_in_the_background() {
    let (everything, _) = mcp_servers();
    let server = Server::start(&format!(
        "[mcp_servers.slow]\ncommand = \"sh\"\nargs = [\"-c\", \"sleep 3; exec node '{}' stdio\"]\nstartup_timeout = \"1s\"\n",
        everything.display()
    ));
    let mut c = server.client().await;
    wait_for_tool(&mut c, &server, "slow.echo").await;
    assert!(
        server.log().contains("startup_timeout (1s)"),
        "the first attempt gave up at start: {}",
        server.log()
    );
}

/// A stdio server that exits at start says why on its stderr: wfm's warning carries its
/// last lines, at the default log level, instead of only "connection closed".
#[tokio::test]
async fn a_stdio_server_that_exits_at_start_is_reported_with_what_it_said() {
    let server = Server::start(
        "[mcp_servers.keyless]\ncommand = \"sh\"\nargs = [\"-c\", \"echo starting >&2; echo 'fatal: missing API_KEY' >&2; exit 3\"]\nstartup_timeout = \"5s\"\n",
    );
    let _ = server.client().await;
    let log = server.log();
    assert!(
        log.contains("its stderr ended with: starting | fatal: missing API_KEY"),
        "{log}"
    );
}

/// Waits until ListTools lists `name`, or fails after 60 s with the tools and the log.
async fn wait_for_tool(c: &mut Client, server: &Server, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tools: Vec<String> = c
            .list_tools(proto::ListToolsRequest {})
            .await
            .unwrap()
            .into_inner()
            .tools
            .into_iter()
            .map(|t| t.name)
            .collect();
        if tools.iter().any(|n| n == name) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never appeared: {tools:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
