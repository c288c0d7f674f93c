//! The official CometD JavaScript client (npm `cometd` + `cometd-nodejs-client`,
//! run by Node.js) through the real proxy in front of three real nodes, on
//! both transports, with cookies kept and with cookies blocked.
//!
//! The scenario itself is `integration/js/scenario.mjs`; `make test` installs
//! its two packages (`npm ci` in `integration/js`, versions in the lock file).

use std::path::PathBuf;
use std::time::Duration;

use integration::{start_node, Process, TEST_ORIGIN};
use serde_json::Value;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

async fn stack() -> (Process, Vec<Process>) {
    // A short connect timeout makes a hundred long-poll cycles take seconds.
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(start_node(&format!("node-{i}"), &["--cometd-timeout", "50ms"]).await);
    }
    let mut args: Vec<String> = vec![
        "--lookup-origin".into(),
        TEST_ORIGIN.into(),
        "--health-interval".into(),
        "100ms".into(),
    ];
    for node in &nodes {
        args.push("--node".into());
        args.push(format!("{}={}", node.name, node.url()));
    }
    let proxy = Process::start("sticky-proxy", "proxy", &args, false).await;
    // Wait until the proxy sees a ready node.
    integration::eventually(Duration::from_secs(10), "proxy ready", || async {
        let r = integration::client()
            .get(format!("{}/cobrowse/health", proxy.url()))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    (proxy, nodes)
}

async fn run_scenario(proxy: &Process, transport: &str, cookies: &str) -> Value {
    assert!(
        js_dir().join("node_modules/cometd").exists(),
        "run `npm ci` in integration/js first (`make test` does)"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .current_dir(js_dir())
            .args([
                "scenario.mjs",
                &proxy.url(),
                transport,
                cookies,
                TEST_ORIGIN,
                integration::default_agent_token(),
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("scenario finished in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let result: Value = serde_json::from_str(last).unwrap_or(Value::Null);
    assert!(
        output.status.success() && result["ok"] == true,
        "{transport}/{cookies}: {stdout}\n{stderr}\nproxy log:\n{}",
        proxy.log()
    );
    result
}

#[tokio::test]
async fn websocket_through_the_proxy() {
    let (proxy, _nodes) = stack().await;
    for cookies in ["cookies", "blocked"] {
        let result = run_scenario(&proxy, "websocket", cookies).await;
        assert_eq!(result["delivered"], 50);
    }
}

#[tokio::test]
async fn long_polling_through_the_proxy() {
    let (proxy, _nodes) = stack().await;
    for cookies in ["cookies", "blocked"] {
        let result = run_scenario(&proxy, "long-polling", cookies).await;
        assert!(
            result["customerConnects"].as_u64().unwrap() >= 100,
            "{result}"
        );
    }
}
