//! Co-browse in a real browser: Debian's Chromium (`/usr/bin/chromium`),
//! driven by `playwright-core` from `web/test/browser.mjs`, against the real
//! proxy in front of three real nodes, the demo shop on another site, and
//! the widget and agent console the nodes serve. What the scenario checks
//! is listed at the top of `browser.mjs`; screenshots and the measured
//! figures go to `target/browser-artifacts/` (ignored by git).
//!
//! `make test` builds the bundle (`make web`) and installs playwright-core
//! (`npm ci` in `web/`) before the binaries; `.ci/run` installs Chromium.
//!
//! The nodes must allow the proxy's own origin (the agent console is served
//! through it), which is known only once the proxy listens, and the proxy
//! needs the nodes' addresses: so the proxy starts with a placeholder node
//! from a config file, and learns the real nodes by a reload (SIGHUP) —
//! every port is still the kernel's choice.

use std::path::PathBuf;
use std::time::Duration;

use integration::{agent_key_file, default_agent_token, eventually, Process, TEST_ORIGIN};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// The whole browser scenario, at most (its own steps have 10 s deadlines).
const SCENARIO_DEADLINE: Duration = Duration::from_secs(200);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn write_proxy_config(path: &std::path::Path, nodes: &[(String, String)]) {
    let mut text = String::new();
    for (name, url) in nodes {
        text.push_str(&format!("[[node]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"));
    }
    std::fs::write(path, text).expect("write proxy config");
}

#[tokio::test]
async fn cobrowse_in_chromium_through_the_proxy() {
    let web = workspace().join("web");
    assert!(
        chromium().exists(),
        "{} is missing: install Debian's chromium (`apt-get install chromium`; .ci/run does)",
        chromium().display()
    );
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "run `npm ci` in web/ first (`make test` does)"
    );

    // The proxy, first with a placeholder node nothing listens for.
    let dir = std::env::temp_dir().join(format!("cobrowse-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("proxy.toml");
    write_proxy_config(&config, &[("node-1".into(), "http://127.0.0.1:1".into())]);
    let mut proxy_args = integration::proxy_args(&[]);
    proxy_args.extend(["--config".to_owned(), config.display().to_string()]);
    let proxy = Process::start("sticky-proxy", "proxy", &proxy_args, true).await;

    // The demo shop on its own port. `localhost` and `127.0.0.1` are
    // different sites: the proxy's cookies are third-party on the shop.
    let widget_url = format!("{}/cobrowse/widget.js", proxy.url());
    let demo = Process::start(
        "session-node",
        "demo-site",
        &[
            "demo-site".to_owned(),
            "--widget-url".to_owned(),
            widget_url,
        ],
        false,
    )
    .await;
    let demo_origin = format!("http://localhost:{}", demo.addr.port());
    // Not in --allowed-origins: Chromium maps the name to 127.0.0.1.
    let disallowed_origin = format!("http://evil.test:{}", demo.addr.port());

    let origins = format!("{demo_origin},{},{TEST_ORIGIN}", proxy.url());
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let args: Vec<String> = [
            "--name",
            &format!("node-{i}"),
            "--allowed-origins",
            &origins,
            "--agent-key-file",
            &agent_key_file().display().to_string(),
            "--trusted-proxies",
            "127.0.0.1",
            "--token-partition",
            &format!("{i}/3"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        nodes.push(Process::start("session-node", &format!("node-{i}"), &args, false).await);
    }
    let specs: Vec<(String, String)> = nodes.iter().map(|n| (n.name.clone(), n.url())).collect();
    write_proxy_config(&config, &specs);
    proxy.signal(Signal::SIGHUP);
    let admin = proxy.admin_url();
    eventually(
        Duration::from_secs(20),
        "the proxy sees the three nodes up",
        || {
            let admin = admin.clone();
            let specs = specs.clone();
            async move {
                let listed: Value = integration::client()
                    .get(format!("{admin}/nodes"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let up = specs.iter().all(|(name, url)| {
                    listed.as_array().is_some_and(|all| {
                        all.iter().any(|n| {
                            n["name"] == name.as_str()
                                && n["state"] == "up"
                                && n["url"]
                                    .as_str()
                                    .is_some_and(|u| u.starts_with(url.as_str()))
                        })
                    })
                });
                up.then_some(())
            }
        },
    )
    .await;

    let widget = integration::client()
        .get(format!("{}/cobrowse/widget.js", proxy.url()))
        .send()
        .await
        .expect("widget.js");
    assert_eq!(
        widget.status(),
        200,
        "the nodes serve no widget: build the bundle (`make web`) before the binaries (`make test` does)"
    );

    let artifacts = workspace().join("target").join("browser-artifacts");
    let activity_seconds: u64 = std::env::var("COBROWSE_BROWSER_ACTIVITY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let cfg = json!({
        "proxy": proxy.url(),
        "demo": format!("{demo_origin}/"),
        "disallowedDemo": format!("{disallowed_origin}/"),
        "hostRules": "MAP evil.test 127.0.0.1",
        "agentToken": default_agent_token(),
        "nodes": nodes.iter().map(|n| (n.name.clone(), json!(n.pid().as_raw()))).collect::<serde_json::Map<_, _>>(),
        "artifacts": artifacts.display().to_string(),
        "activitySeconds": activity_seconds,
        "changes": 200,
    });
    let output = tokio::time::timeout(
        SCENARIO_DEADLINE,
        tokio::process::Command::new("node")
            .current_dir(&web)
            .arg("test/browser.mjs")
            .arg(cfg.to_string())
            .env("CHROMIUM", chromium())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser scenario finished in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let result: Value = serde_json::from_str(last).unwrap_or(Value::Null);
    let logs = || {
        let mut all = format!("proxy:\n{}\n", proxy.log());
        for n in &nodes {
            all.push_str(&format!("{}:\n{}\n", n.name, n.log()));
        }
        all
    };
    assert!(
        output.status.success() && result["ok"] == true,
        "browser scenario failed (screenshots in {}):\n{stdout}\n{stderr}\n{}",
        artifacts.display(),
        logs()
    );
    eprintln!("{stderr}");
    eprintln!("browser scenario: {result}");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    std::fs::write(artifacts.join("results.json"), format!("{result:#}\n")).expect("results");

    // The targets, measured through the proxy.
    let p99 = result["latency"]["p99"].as_u64().expect("p99");
    assert_eq!(result["latency"]["n"], 200);
    assert!(p99 < 1000, "delivery p99 {p99} ms: something is badly off");
    for side in ["customerMs", "agentMs"] {
        let ms = result["nodeKill"][side].as_u64().expect("kill timing");
        assert!(
            ms < 5000,
            "{side}: the end of a killed node's session took {ms} ms"
        );
    }
    for shot in [
        "customer.png",
        "agent-console.png",
        "customer-disallowed-origin.png",
    ] {
        assert!(artifacts.join(shot).exists(), "no screenshot {shot}");
    }
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
}
