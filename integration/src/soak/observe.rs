//! Watching the stack: the proxy's own view of the nodes (`/nodes`, polled
//! every 100 ms, each change an event) and one monitor per process that
//! timestamps what it logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::record::Shared;
use super::timeline::What;

/// The proxy's `/nodes`: (name, state) pairs.
pub async fn proxy_view(shared: &Shared) -> Option<Vec<(String, String)>> {
    let admin = shared.admin_url()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .ok()?;
    let nodes: serde_json::Value = client
        .get(format!("{admin}/nodes"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        nodes
            .as_array()?
            .iter()
            .map(|n| {
                let name = n["name"].as_str().unwrap_or_default().to_owned();
                let state = n["state"].as_str().unwrap_or_default().to_owned();
                (name, state)
            })
            .collect(),
    )
}

/// Records every change of the proxy's view of the nodes, every 100 ms.
pub async fn watch_proxy_view(shared: Arc<Shared>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut last: Vec<(String, String)> = Vec::new();
    while !*stop.borrow() {
        match proxy_view(&shared).await {
            Some(view) => {
                for (name, state) in &view {
                    if !last.iter().any(|(n, s)| n == name && s == state) {
                        let (node, state) = (name.clone(), state.clone());
                        shared.event(What::ProxyView { node, state });
                    }
                }
                for (name, _) in &last {
                    if !view.iter().any(|(n, _)| n == name) {
                        let node = name.clone();
                        shared.event(What::ProxyView {
                            node,
                            state: "absent".into(),
                        });
                    }
                }
                last = view;
            }
            None => last.clear(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Timestamps what a process logs: panics, the end of a node's drain, and
/// an exit nobody asked for.
pub async fn monitor(
    shared: Arc<Shared>,
    label: String,
    node: Option<(String, u32)>,
    mut lines: mpsc::UnboundedReceiver<String>,
    expect_exit: Arc<AtomicBool>,
) {
    while let Some(line) = lines.recv().await {
        if line.contains("panicked at") {
            shared.event(What::Trouble {
                process: label.clone(),
                what: format!("panic: {line}"),
            });
        }
        if let Some((name, inc)) = &node {
            if line.contains("drained: no live session left")
                || line.contains("drain timeout: exiting")
            {
                shared.event(What::NodeDrainClosed {
                    node: name.clone(),
                    inc: *inc,
                    line: line.clone(),
                });
            }
        }
    }
    if !expect_exit.load(Ordering::SeqCst) {
        shared.event(What::Trouble {
            process: label,
            what: "exited without being told to (stderr closed)".into(),
        });
        if let Some((node, inc)) = node {
            let status = "crashed (stderr closed)".to_owned();
            shared.event(What::NodeExited { node, inc, status });
        }
    }
}
