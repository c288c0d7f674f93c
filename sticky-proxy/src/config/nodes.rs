//! The nodes: `--node NAME=URL` flags and the file's `[[node]]` entries,
//! validated into [`NodeSpec`]s and merged (a flag replaces the file node of
//! the same name).

use http::uri::Authority;
use serde::Deserialize;

use super::ConfigError;

/// A configured node: its name (the value of the `gcbSessionServer` cookie)
/// and its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    /// Normalised `http://host:port`.
    pub url: String,
    pub authority: Authority,
}

impl NodeSpec {
    /// Parses `NAME=http://host:port`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let (name, url) = text
            .split_once('=')
            .ok_or_else(|| ConfigError::Invalid(format!("--node `{text}` is not NAME=URL")))?;
        NodeSpec::new(name.trim(), url.trim())
    }

    /// Validates a name and a URL: the name must be usable as a cookie value
    /// and a query value without escaping; the URL must be `http://host:port`
    /// with no path, query or credentials.
    pub fn new(name: &str, url: &str) -> Result<Self, ConfigError> {
        let name_ok = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'"' | b',' | b';' | b'\\' | b'&' | b'=' | b'%' | b'+')
            });
        if !name_ok {
            return Err(ConfigError::Invalid(format!(
                "node name `{name}` must be 1-128 visible ASCII characters without \" , ; \\ & = % +"
            )));
        }
        let bad = |why: &str| ConfigError::Invalid(format!("node {name}: url `{url}` {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad("must use http://"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(
                "must have no path, query or fragment (http://host:port)",
            ));
        }
        let host = parsed.host_str().ok_or_else(|| bad("has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let authority_text = format!("{host}:{port}");
        let authority =
            Authority::try_from(authority_text.as_str()).map_err(|e| bad(&e.to_string()))?;
        Ok(NodeSpec {
            name: name.to_owned(),
            url: format!("http://{authority_text}"),
            authority,
        })
    }
}

/// A `[[node]]` entry of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileNode {
    name: String,
    url: String,
}

pub(super) fn parse_flags(flags: &[String]) -> Result<Vec<NodeSpec>, ConfigError> {
    flags.iter().map(|text| NodeSpec::parse(text)).collect()
}

pub(super) fn parse_file_nodes(nodes: &[FileNode]) -> Result<Vec<NodeSpec>, ConfigError> {
    nodes
        .iter()
        .map(|node| NodeSpec::new(node.name.trim(), node.url.trim()))
        .collect()
}

/// File nodes in file order, then flag nodes; a flag node replaces the file
/// node of the same name.
pub(super) fn merge_nodes(
    file_nodes: Vec<NodeSpec>,
    flags: &[NodeSpec],
) -> Result<Vec<NodeSpec>, ConfigError> {
    check_unique(&file_nodes)?;
    check_unique(flags)?;
    let mut nodes: Vec<NodeSpec> = file_nodes
        .into_iter()
        .filter(|node| !flags.iter().any(|flag| flag.name == node.name))
        .collect();
    nodes.extend(flags.iter().cloned());
    Ok(nodes)
}

pub(super) fn check_unique(nodes: &[NodeSpec]) -> Result<(), ConfigError> {
    for (i, node) in nodes.iter().enumerate() {
        if nodes[..i].iter().any(|other| other.name == node.name) {
            return Err(ConfigError::Invalid(format!(
                "node name `{}` is configured twice",
                node.name
            )));
        }
    }
    Ok(())
}
