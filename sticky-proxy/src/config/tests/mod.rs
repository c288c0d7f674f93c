use std::time::Duration;

use super::*;

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["sticky-proxy"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap()
}

#[test]
fn flags_with_defaults() {
    let config = Config::from_args([
        "sticky-proxy",
        "--node",
        "node-1=http://127.0.0.1:8701",
        "--node",
        "node-2=http://10.0.0.5:8702/",
        "--health-interval",
        "2s",
        "--health-timeout",
        "300ms",
        "--context-path",
        "cobrowse/",
    ])
    .unwrap();
    assert_eq!(config.nodes.len(), 2);
    assert_eq!(config.nodes[1].name, "node-2");
    assert_eq!(config.nodes[1].url, "http://10.0.0.5:8702");
    assert_eq!(config.nodes[1].authority.as_str(), "10.0.0.5:8702");
    assert_eq!(config.listen, "127.0.0.1:8700".parse().unwrap());
    assert_eq!(config.health_interval, Duration::from_secs(2));
    assert_eq!(config.health_timeout, Duration::from_millis(300));
    assert_eq!(config.context_path, "/cobrowse");
    assert_eq!(config.rise, 2);
    assert_eq!(config.fall, 2);
    assert_eq!(config.lookup_cache_ttl, Duration::from_secs(600));
    assert_eq!(config.lookup_cache_size, 100_000);
    assert_eq!(config.connect_timeout, Duration::from_secs(1));
    assert_eq!(config.upstream_timeout, Duration::from_secs(90));
    assert_eq!(config.max_head_size, 65536);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
    assert!(config.admin_listen.is_none());
    assert!(config.lookup_origin.is_none());
    assert!(config.workers >= 1);
}

#[test]
fn toml_file_with_flags_overriding() {
    let text = r#"
        listen = "127.0.0.1:9000"
        admin-listen = "127.0.0.1:9001"
        health-interval = "3s"
        rise = 5
        max-head-size = "32KiB"
        lookup-origin = "https://agent.example"

        [[node]]
        name = "node-1"
        url = "http://10.0.0.5:8701"

        [[node]]
        name = "node-2"
        url = "http://10.0.0.6:8701"
    "#;
    let config = Config::from_cli_and_toml(
        cli(&[
            "--rise",
            "3",
            "--node",
            "node-2=http://127.0.0.1:1",
            "--node",
            "node-3=http://127.0.0.1:2",
        ]),
        text,
    )
    .unwrap();
    assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(config.admin_listen, Some("127.0.0.1:9001".parse().unwrap()));
    assert_eq!(config.health_interval, Duration::from_secs(3));
    assert_eq!(config.rise, 3, "the flag wins over the file");
    assert_eq!(config.max_head_size, 32 * 1024);
    assert_eq!(
        config.lookup_origin.as_deref(),
        Some("https://agent.example")
    );
    let names: Vec<_> = config
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.url.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("node-1", "http://10.0.0.5:8701"),
            ("node-2", "http://127.0.0.1:1"),
            ("node-3", "http://127.0.0.1:2"),
        ]
    );
}

#[test]
fn unknown_fields_are_rejected() {
    let top = Config::from_cli_and_toml(cli(&["--node", "a=http://h:1"]), "colour = \"blue\"");
    assert!(matches!(top, Err(ConfigError::Parse { .. })), "{top:?}");
    let node = Config::from_cli_and_toml(
        cli(&[]),
        "[[node]]\nname = \"a\"\nurl = \"http://h:1\"\nweight = 3\n",
    );
    assert!(matches!(node, Err(ConfigError::Parse { .. })), "{node:?}");
    let typo =
        Config::from_cli_and_toml(cli(&["--node", "a=http://h:1"]), "health_interval = \"1s\"");
    assert!(typo.is_err());
}

#[test]
fn bad_values_are_rejected() {
    let args = |extra: &[&str]| {
        let mut all = vec!["sticky-proxy", "--node", "a=http://h:1"];
        all.extend_from_slice(extra);
        Config::from_args(all)
    };
    assert!(Config::from_args(["sticky-proxy"]).is_err(), "no node");
    assert!(args(&["--node", "b=https://h:1"]).is_err(), "https");
    assert!(args(&["--node", "b=http://h:1/cobrowse"]).is_err(), "path");
    assert!(
        args(&["--node", "b=http://u:p@h:1"]).is_err(),
        "credentials"
    );
    assert!(args(&["--node", "a=http://h:2"]).is_err(), "duplicate name");
    assert!(
        args(&["--node", "b c=http://h:2"]).is_err(),
        "space in name"
    );
    assert!(args(&["--node", "bhttp://h:2"]).is_err(), "no =");
    assert!(args(&["--health-interval", "soon"]).is_err());
    assert!(
        args(&["--health-timeout", "2s"]).is_err(),
        "timeout above interval"
    );
    let short = args(&["--health-interval", "100ms"]).unwrap();
    assert_eq!(
        short.health_timeout,
        Duration::from_millis(100),
        "the default follows a short interval"
    );
    assert!(args(&["--rise", "0"]).is_err());
    assert!(args(&["--max-head-size", "10"]).is_err());
    assert!(args(&["--workers", "0"]).is_err());
    assert!(args(&["--bogus"]).is_err());
}

#[test]
fn limits_defaults_flags_and_file() {
    let defaults = Config::from_args(["sticky-proxy", "--node", "a=http://h:1"]).unwrap();
    assert_eq!(defaults.header_timeout, Duration::from_secs(10));
    assert_eq!(defaults.keep_alive_timeout, Duration::from_secs(75));
    assert_eq!(defaults.probe_budget, "20/10m".parse().unwrap());
    assert_eq!(defaults.create_budget, "60/1m".parse().unwrap());
    assert_eq!(defaults.limiter_capacity, 1_000_000);
    assert_eq!(defaults.max_connections_per_client, 256);
    assert!(defaults.trusted_proxies.is_empty());
    assert!(defaults.agent_key_file.is_none() && defaults.agent_public_keys.is_none());
    assert_eq!(defaults.agent_token_max_age, Duration::from_secs(12 * 3600));
    assert_eq!(defaults.retire_timeout, Duration::from_secs(600));
    assert_eq!(defaults.max_conns_per_node, 0);
    assert_eq!(defaults.cometd_peek_limit, 256 * 1024);

    let flags = Config::from_args([
        "sticky-proxy",
        "--node",
        "a=http://h:1",
        "--trusted-proxies",
        "127.0.0.1, 10.0.0.0/8",
        "--probe-budget",
        "off",
        "--create-budget",
        "5/30s",
        "--limiter-capacity",
        "1000",
        "--max-connections-per-client",
        "0",
        "--header-timeout",
        "2s",
        "--agent-key-file",
        "/k",
        "--agent-token-max-age",
        "1h",
    ])
    .unwrap();
    assert!(flags.trusted_proxies.trusts("10.1.2.3".parse().unwrap()));
    assert!(!flags.trusted_proxies.trusts("11.1.2.3".parse().unwrap()));
    assert!(flags.probe_budget.is_off());
    assert_eq!(flags.create_budget.limit, 5);
    assert_eq!(flags.create_budget.window, Duration::from_secs(30));
    assert_eq!(flags.limiter_capacity, 1000);
    assert_eq!(flags.max_connections_per_client, 0);
    assert_eq!(flags.header_timeout, Duration::from_secs(2));
    assert_eq!(flags.agent_key_file.as_deref(), Some(Path::new("/k")));
    assert_eq!(flags.agent_token_max_age, Duration::from_secs(3600));

    // The file, as a list or one string; flags still win.
    for trusted in ["[\"127.0.0.1\", \"::1\"]", "\"127.0.0.1, ::1\""] {
        let text = format!(
            "trusted-proxies = {trusted}\nprobe-budget = \"3/1s\"\ncreate-budget = \"off\"\n\
             header-timeout = \"500ms\"\nmax-connections-per-client = 8\nlimiter-capacity = 10\n\
             agent-public-keys = \"/keys.pem\"\nagent-token-max-age = \"30m\"\n"
        );
        let config = Config::from_cli_and_toml(
            cli(&["--node", "a=http://h:1", "--header-timeout", "1s"]),
            &text,
        )
        .unwrap();
        assert!(
            config.trusted_proxies.trusts("::1".parse().unwrap()),
            "{trusted}"
        );
        assert_eq!(config.probe_budget.limit, 3);
        assert!(config.create_budget.is_off());
        assert_eq!(
            config.header_timeout,
            Duration::from_secs(1),
            "the flag wins"
        );
        assert_eq!(config.max_connections_per_client, 8);
        assert_eq!(config.limiter_capacity, 10);
        assert_eq!(
            config.agent_public_keys.as_deref(),
            Some(Path::new("/keys.pem"))
        );
        assert_eq!(config.agent_token_max_age, Duration::from_secs(1800));
    }

    let args = |extra: &[&str]| {
        let mut all = vec!["sticky-proxy", "--node", "a=http://h:1"];
        all.extend_from_slice(extra);
        Config::from_args(all)
    };
    for bad in [
        &["--probe-budget", "0/1m"][..],
        &["--create-budget", "60"],
        &["--trusted-proxies", "nope"],
        &["--trusted-proxies", "10.0.0.0/33"],
        &["--limiter-capacity", "0"],
        &["--header-timeout", "0s"],
        &["--keep-alive-timeout", "0s"],
        &["--agent-token-max-age", "0s"],
        &["--max-connections-per-client", "-1"],
        &["--agent-key-file", "/a", "--agent-public-keys", "/b"],
    ] {
        assert!(args(bad).is_err(), "{bad:?}");
    }
    let file =
        Config::from_cli_and_toml(cli(&["--node", "a=http://h:1"]), "probe-budget = \"lots\"");
    assert!(matches!(file, Err(ConfigError::Parse { .. })), "{file:?}");
}

#[test]
fn retire_connection_cap_and_peek_flags() {
    let flags = Config::from_args([
        "sticky-proxy",
        "--node",
        "a=http://h:1",
        "--retire-timeout",
        "30s",
        "--max-conns-per-node",
        "0",
        "--cometd-peek-limit",
        "4KiB",
    ])
    .unwrap();
    assert_eq!(flags.retire_timeout, Duration::from_secs(30));
    assert_eq!(flags.max_conns_per_node, 0);
    assert_eq!(flags.cometd_peek_limit, 4096);
    let file = Config::from_cli_and_toml(
        cli(&["--node", "a=http://h:1", "--max-conns-per-node", "7"]),
        "retire-timeout = \"1m\"\nmax-conns-per-node = 64\ncometd-peek-limit = 2048\n",
    )
    .unwrap();
    assert_eq!(file.retire_timeout, Duration::from_secs(60));
    assert_eq!(file.max_conns_per_node, 7, "the flag wins");
    assert_eq!(file.cometd_peek_limit, 2048);
    for bad in [
        &["--retire-timeout", "0s"][..],
        &["--cometd-peek-limit", "10"],
        &["--cometd-peek-limit", "1MiB"],
        &["--max-conns-per-node", "-1"],
    ] {
        let mut args = vec!["sticky-proxy", "--node", "a=http://h:1"];
        args.extend_from_slice(bad);
        assert!(Config::from_args(args).is_err(), "{bad:?}");
    }
}

#[test]
fn default_port_is_filled_in() {
    let spec = NodeSpec::parse("n=http://example.com").unwrap();
    assert_eq!(spec.url, "http://example.com:80");
    let v6 = NodeSpec::parse("n=http://[::1]:8701").unwrap();
    assert_eq!(v6.authority.as_str(), "[::1]:8701");
}

#[test]
fn byte_sizes() {
    assert_eq!(parse_byte_size("65536"), Ok(65536));
    assert_eq!(parse_byte_size("64KiB"), Ok(65536));
    assert_eq!(parse_byte_size("64k"), Ok(65536));
    assert_eq!(parse_byte_size("1MiB"), Ok(1 << 20));
    assert!(parse_byte_size("64 parsecs").is_err());
    assert!(parse_byte_size("").is_err());
}

#[test]
fn reload_reads_the_file_again() {
    let dir = std::env::temp_dir().join(format!("sticky-proxy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    std::fs::write(&path, "[[node]]\nname = \"a\"\nurl = \"http://h:1\"\n").unwrap();
    let config = Config::from_args(["sticky-proxy", "--config", path.to_str().unwrap()]).unwrap();
    assert_eq!(config.nodes.len(), 1);
    std::fs::write(
        &path,
        "[[node]]\nname = \"a\"\nurl = \"http://h:1\"\n[[node]]\nname = \"b\"\nurl = \"http://h:2\"\n",
    )
    .unwrap();
    let nodes = config.reload_nodes().unwrap();
    assert_eq!(nodes.len(), 2);
    std::fs::write(&path, "").unwrap();
    assert!(
        config.reload_nodes().is_err(),
        "a reload to no node is refused"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

mod docs;
mod layers;
mod new_settings;
