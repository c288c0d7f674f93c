//! Docs cannot drift from the table: every setting in it is a flag in
//! `--help` with its `STICKY_PROXY_*` variable, a key of the TOML file, and
//! a row of the README's flag table.

use std::ffi::OsStr;

use clap::CommandFactory;

use super::*;

/// The README's `sticky-proxy` flag table: from its heading to the next.
fn readme_flag_table() -> &'static str {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("### Flags (each also `STICKY_PROXY_<FLAG>`")
        .expect("the README has the proxy's flag table");
    let rest = &readme[start + 1..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

#[test]
fn every_setting_is_a_flag_an_env_var_a_file_key_and_a_readme_row() {
    let command = Cli::command();
    let help = Cli::command().render_long_help().to_string();
    // serde names every key it knows when it meets one it does not.
    let keys = match parse_file("colour = 1", Path::new("<test>")) {
        Err(ConfigError::Parse { message, .. }) => message,
        other => panic!("an unknown key must be refused: {other:?}"),
    };
    let table = readme_flag_table();
    let in_table =
        |flag: &str| table.contains(&format!("`{flag} ")) || table.contains(&format!("`{flag}`"));

    for name in Settings::NAMES {
        let key = name.replace('_', "-");
        let flag = format!("--{key}");
        assert!(help.contains(&format!("{flag} <")), "{flag} in --help");
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key.as_str()))
            .unwrap_or_else(|| panic!("{flag} is a flag"));
        let env = format!("STICKY_PROXY_{}", name.to_ascii_uppercase());
        assert_eq!(arg.get_env(), Some(OsStr::new(&env)), "{flag}");
        assert!(help.contains(&format!("[env: {env}=")), "{env} in --help");
        assert!(
            keys.contains(&format!("`{key}`")),
            "`{key}` in the file: {keys}"
        );
        assert!(in_table(&flag), "{flag} in the README's flag table");
    }
    // The flags outside the table are documented too.
    for flag in ["--node", "--config"] {
        assert!(help.contains(flag) && in_table(flag), "{flag}");
    }
    assert!(keys.contains("`node`"), "[[node]] in the file: {keys}");
    // And no flag is outside the table unless it is one of those.
    let others: Vec<_> = command
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|long| !Settings::NAMES.contains(&long.replace('-', "_").as_str()))
        .collect();
    assert_eq!(others, ["node", "config"]);
}
