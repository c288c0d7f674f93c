//! The settings the new data path reads: their defaults, bounds and the
//! open-file limit behind `--max-connections`.

use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};

use super::*;

fn resolve(args: &[&str], toml: &str) -> Result<Config, ConfigError> {
    let mut all = vec!["sticky-proxy", "--node", "a=http://h:1"];
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all).map_err(ConfigError::Cli)?;
    Config::from_cli_and_toml(cli, toml)
}

fn read(config: &Config, field: &str) -> String {
    match field {
        "max_body_size" => config.max_body_size.to_string(),
        "max_headers" => config.max_headers.to_string(),
        "max_connections" => config.max_connections.to_string(),
        "tls" => format!("{:?} {:?}", config.tls_cert, config.tls_key),
        other => panic!("no field {other}"),
    }
}

/// Args, file, field, and the value it resolves to or a part of the error.
type Row<'a> = (&'a [&'a str], &'a str, &'a str, Result<&'a str, &'a str>);

#[test]
fn new_settings_defaults_and_bounds() {
    // The process's limit does not change while this binary runs (only a
    // child process raises its own), so the cap read here is the one
    // `validate` reads.
    let cap = connection_cap(nofile_soft_limit());
    let cap_text = cap.to_string();
    let above_cap = (cap + 1).to_string();
    let none = "None None";
    let rows: &[Row] = &[
        (&[], "", "max_body_size", Ok("1048576")),
        (&["--max-body-size", "1"], "", "max_body_size", Ok("1")),
        (
            &["--max-body-size", "2MiB"],
            "",
            "max_body_size",
            Ok("2097152"),
        ),
        (
            &[],
            "max-body-size = \"64KiB\"",
            "max_body_size",
            Ok("65536"),
        ),
        (
            &["--max-body-size", "0"],
            "",
            "max_body_size",
            Err("--max-body-size"),
        ),
        (
            &[],
            "max-body-size = 0",
            "max_body_size",
            Err("--max-body-size"),
        ),
        (
            &["--max-body-size", "lots"],
            "",
            "max_body_size",
            Err("lots"),
        ),
        (&[], "", "max_headers", Ok("100")),
        (&["--max-headers", "1"], "", "max_headers", Ok("1")),
        (&["--max-headers", "1000"], "", "max_headers", Ok("1000")),
        (&[], "max-headers = 20", "max_headers", Ok("20")),
        (
            &["--max-headers", "0"],
            "",
            "max_headers",
            Err("--max-headers"),
        ),
        (
            &["--max-headers", "1001"],
            "",
            "max_headers",
            Err("between 1 and 1000"),
        ),
        (
            &[],
            "max-headers = \"50\"",
            "max_headers",
            Err("invalid type"),
        ),
        (&[], "", "max_connections", Ok(&cap_text)),
        (&["--max-connections", "1"], "", "max_connections", Ok("1")),
        (
            &["--max-connections", &cap_text],
            "",
            "max_connections",
            Ok(&cap_text),
        ),
        (
            &["--max-connections", "0"],
            "",
            "max_connections",
            Err("at least 1"),
        ),
        // Above what the limit allows: taken, with a warning.
        (
            &["--max-connections", &above_cap],
            "",
            "max_connections",
            Ok(&above_cap),
        ),
        (
            &[],
            &format!("max-connections = {above_cap}"),
            "max_connections",
            Ok(&above_cap),
        ),
        (&[], "", "tls", Ok(none)),
        (
            &["--tls-cert", "/c.pem", "--tls-key", "/k.pem"],
            "",
            "tls",
            Ok("Some(\"/c.pem\") Some(\"/k.pem\")"),
        ),
        // The pair may come from two layers.
        (
            &["--tls-key", "/k.pem"],
            "tls-cert = \"/c.pem\"",
            "tls",
            Ok("Some(\"/c.pem\") Some(\"/k.pem\")"),
        ),
        (&["--tls-cert", "/c.pem"], "", "tls", Err("--tls-key")),
        (&["--tls-key", "/k.pem"], "", "tls", Err("--tls-cert")),
        (
            &[],
            "tls-key = \"/k.pem\"",
            "tls",
            Err("both --tls-cert and --tls-key"),
        ),
    ];
    for (args, toml, field, want) in rows {
        let got = resolve(args, toml);
        match (want, got) {
            (Ok(value), Ok(config)) => assert_eq!(read(&config, field), *value, "{args:?} {toml}"),
            (Err(part), Err(error)) => {
                let text = error.to_string();
                assert!(
                    text.contains(part),
                    "{args:?} {toml}: `{text}` lacks `{part}`"
                );
            }
            (want, got) => panic!("{args:?} {toml}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn connection_cap_keeps_the_reserve_and_two_descriptors_per_client() {
    let huge = usize::try_from((u64::MAX - NOFILE_RESERVE) / 2).unwrap_or(usize::MAX);
    for (nofile, cap) in [
        (0, 1),
        (256, 1),
        (258, 1),
        (260, 2),
        (1024, 384),
        (65536, 32640),
        (1 << 20, 524160),
        (RLIM_INFINITY, huge),
    ] {
        assert_eq!(connection_cap(nofile), cap, "RLIMIT_NOFILE {nofile}");
    }
}

/// Set in the child process that raises its own limit.
const CHILD: &str = "STICKY_PROXY_TEST_RAISE_CHILD";

#[test]
fn raising_the_limit_raises_the_default_cap() {
    if std::env::var_os(CHILD).is_none() {
        // Raised in a child process, so this binary's other tests keep one
        // limit.
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "config::tests::new_settings::raising_the_limit_raises_the_default_cap",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "in a child process:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let soft = raise_nofile_limit();
    assert_eq!(soft, nofile_soft_limit());
    if hard != RLIM_INFINITY {
        assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    }
    let config = resolve(&[], "").unwrap();
    assert_eq!(config.max_connections, connection_cap(soft));
}
