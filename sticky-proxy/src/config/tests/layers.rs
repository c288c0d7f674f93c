//! The merge, one table: for each setting a value per layer, and what each
//! combination of layers resolves to (flag > env var > file > default).
//!
//! The env layer is clap's (`env = "STICKY_PROXY_…"` reads the process
//! environment), and setting variables in this process would leak into every
//! test running beside it; so the env combinations run in a child process
//! of this test binary, with the variables set there only.

use std::time::Duration;

use super::super::defaults::default_workers;
use super::*;

struct Layer {
    key: &'static str,
    /// The value in each layer: as TOML, as the env var, as the flag.
    file: &'static str,
    env: &'static str,
    flag: &'static str,
    /// What the setting resolves to with no layer, the file, the env var
    /// (over the file), the flag (over both).
    expect: [String; 4],
    read: fn(&Config) -> String,
}

fn budget(budget: access::Budget) -> String {
    if budget.is_off() {
        "off".to_owned()
    } else {
        format!(
            "{}/{}",
            budget.limit,
            humantime::format_duration(budget.window)
        )
    }
}

fn row(
    key: &'static str,
    [file, env, flag]: [&'static str; 3],
    expect: [&str; 4],
    read: fn(&Config) -> String,
) -> Layer {
    Layer {
        key,
        file,
        env,
        flag,
        expect: expect.map(str::to_owned),
        read,
    }
}

fn layers() -> Vec<Layer> {
    let default_cap = connection_cap(nofile_soft_limit()).to_string();
    let default_workers = default_workers().to_string();
    vec![
        row("rise", ["5", "6", "7"], ["2", "5", "6", "7"], |c| {
            c.rise.to_string()
        }),
        row(
            "health-interval",
            ["\"3s\"", "4s", "5s"],
            ["1s", "3s", "4s", "5s"],
            |c| humantime::format_duration(c.health_interval).to_string(),
        ),
        row(
            "max-head-size",
            ["\"32KiB\"", "16KiB", "8192"],
            ["65536", "32768", "16384", "8192"],
            |c| c.max_head_size.to_string(),
        ),
        row(
            "max-body-size",
            ["2048", "4KiB", "8k"],
            ["1048576", "2048", "4096", "8192"],
            |c| c.max_body_size.to_string(),
        ),
        row(
            "max-headers",
            ["50", "60", "70"],
            ["100", "50", "60", "70"],
            |c| c.max_headers.to_string(),
        ),
        row(
            "max-connections",
            ["10", "11", "12"],
            [&default_cap, "10", "11", "12"],
            |c| c.max_connections.to_string(),
        ),
        row(
            "context-path",
            ["\"/a/\"", "b", "/c/"],
            ["/cobrowse", "/a", "/b", "/c"],
            |c| c.context_path.clone(),
        ),
        row(
            "lookup-origin",
            [
                "\"https://file.example\"",
                "https://env.example",
                "https://flag.example",
            ],
            [
                "-",
                "https://file.example",
                "https://env.example",
                "https://flag.example",
            ],
            |c| c.lookup_origin.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        row(
            "probe-budget",
            ["\"3/1s\"", "off", "5/1m"],
            ["20/10m", "3/1s", "off", "5/1m"],
            |c| budget(c.probe_budget),
        ),
        row(
            "trusted-proxies",
            ["[\"10.0.0.1\"]", "10.0.0.2", "10.0.0.3/32"],
            ["-", "10.0.0.1", "10.0.0.2", "10.0.0.3"],
            |c| {
                ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
                    .into_iter()
                    .find(|ip| c.trusted_proxies.trusts(ip.parse().unwrap()))
                    .unwrap_or("-")
                    .to_owned()
            },
        ),
        // Both or neither is valid, so the pair moves together.
        row(
            "tls-cert",
            ["\"/file.pem\"", "/env.pem", "/flag.pem"],
            ["-", "/file.pem", "/env.pem", "/flag.pem"],
            |c| {
                c.tls_cert
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.display().to_string())
            },
        ),
        row(
            "tls-key",
            ["\"/file.key\"", "/env.key", "/flag.key"],
            ["-", "/file.key", "/env.key", "/flag.key"],
            |c| {
                c.tls_key
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.display().to_string())
            },
        ),
        row(
            "workers",
            ["3", "4", "5"],
            [&default_workers, "3", "4", "5"],
            |c| c.workers.to_string(),
        ),
    ]
}

const DEFAULT: usize = 0;
const FILE: usize = 1;
const ENV: usize = 2;
const FLAG: usize = 3;

/// Set in the child process this test starts, with the env layer.
const CHILD: &str = "STICKY_PROXY_TEST_ENV_LAYER_CHILD";

fn resolve(layers: &[Layer], with_file: bool, with_flags: bool, nodes: &[&str]) -> Config {
    let mut args = vec!["sticky-proxy".to_owned()];
    for node in nodes {
        args.extend(["--node".to_owned(), (*node).to_owned()]);
    }
    let mut toml = String::new();
    for layer in layers {
        if with_flags {
            args.extend([format!("--{}", layer.key), layer.flag.to_owned()]);
        }
        if with_file {
            toml.push_str(&format!("{} = {}\n", layer.key, layer.file));
        }
    }
    let cli = Cli::try_parse_from(&args).unwrap();
    Config::from_cli_and_toml(cli, &toml).unwrap()
}

fn check(layers: &[Layer], config: &Config, want: usize, what: &str) {
    for layer in layers {
        assert_eq!(
            (layer.read)(config),
            layer.expect[want],
            "{} with {what}",
            layer.key
        );
    }
}

fn env_var(key: &str) -> String {
    format!(
        "STICKY_PROXY_{}",
        key.replace('-', "_").to_ascii_uppercase()
    )
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let layers = layers();
    if std::env::var_os(CHILD).is_some() {
        // The env layer (and the nodes, from STICKY_PROXY_NODE).
        let env = resolve(&layers, false, false, &[]);
        check(&layers, &env, ENV, "the env var");
        let names: Vec<_> = env.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "--node from the env, comma-separated");
        check(
            &layers,
            &resolve(&layers, true, false, &[]),
            ENV,
            "env and file",
        );
        let all = resolve(&layers, true, true, &["c=http://h:3"]);
        check(&layers, &all, FLAG, "flag, env and file");
        let names: Vec<_> = all.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["c"], "--node flags replace the env's list");
        return;
    }

    let node = ["a=http://h:1"];
    check(
        &layers,
        &resolve(&layers, false, false, &node),
        DEFAULT,
        "nothing",
    );
    check(
        &layers,
        &resolve(&layers, true, false, &node),
        FILE,
        "the file",
    );
    check(
        &layers,
        &resolve(&layers, false, true, &node),
        FLAG,
        "the flag",
    );
    check(
        &layers,
        &resolve(&layers, true, true, &node),
        FLAG,
        "flag and file",
    );

    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "config::tests::layers::flag_beats_env_beats_file_beats_default",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("STICKY_PROXY_NODE", "a=http://h:1,b=http://h:2");
    for layer in &layers {
        child.env(env_var(layer.key), layer.env);
    }
    let output = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the env layer, in a child process:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_default_follows_the_settings_above_it() {
    // --health-timeout's default is min(500ms, the interval), whichever
    // layer gave the interval.
    let from_file = Config::from_cli_and_toml(
        Cli::try_parse_from(["sticky-proxy", "--node", "a=http://h:1"]).unwrap(),
        "health-interval = \"200ms\"",
    )
    .unwrap();
    assert_eq!(from_file.health_timeout, Duration::from_millis(200));
    let given = Config::from_cli_and_toml(
        Cli::try_parse_from(["sticky-proxy", "--node", "a=http://h:1"]).unwrap(),
        "health-interval = \"200ms\"\nhealth-timeout = \"100ms\"",
    )
    .unwrap();
    assert_eq!(given.health_timeout, Duration::from_millis(100));
}
