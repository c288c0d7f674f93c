//! The browser side the nodes serve: the customer widget (`<ctx>/widget.js`)
//! and the agent console (`<ctx>/agent/`), built from `web/` by `make web`,
//! and the demo shop ([`demo`], `session-node demo-site`).
//!
//! The bundle is embedded in the binary at build time (`build.rs`), or read
//! once at start from `--web-dir` (for working on the JavaScript without
//! rebuilding the node). Either way only the files of [`FILES`] are ever
//! served, from memory: no request path reaches the file system.

pub mod demo;

use std::collections::HashMap;
use std::path::Path;

use axum::body::Bytes;
use axum::http::HeaderValue;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The files of a bundle, as `web/build.mjs` writes them.
pub const FILES: &[&str] = &[
    "widget.js",
    "agent/index.html",
    "agent/console.js",
    "agent/console.css",
];

/// One file, ready to answer with.
#[derive(Debug, Clone)]
pub struct Asset {
    pub body: Bytes,
    pub content_type: &'static str,
    /// A strong validator: a hash of the content, the same on every node
    /// that serves the same bundle.
    pub etag: HeaderValue,
}

/// The bundle a node serves; empty when the binary was built without one.
#[derive(Debug, Clone, Default)]
pub struct WebAssets {
    files: HashMap<&'static str, Asset>,
}

impl WebAssets {
    /// The bundle embedded at build time.
    pub fn embedded() -> WebAssets {
        let mut assets = WebAssets::default();
        for (name, bytes) in EMBEDDED {
            if let Some(known) = FILES.iter().find(|f| *f == name) {
                assets.insert(known, Bytes::from_static(bytes));
            }
        }
        assets
    }

    /// The bundle in `dir` (a `web/dist`), read once; every file must be there.
    pub fn from_dir(dir: &Path) -> Result<WebAssets, String> {
        let mut assets = WebAssets::default();
        for name in FILES {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| {
                format!(
                    "--web-dir: cannot read {}: {e} (run `make web`)",
                    path.display()
                )
            })?;
            assets.insert(name, Bytes::from(bytes));
        }
        Ok(assets)
    }

    fn insert(&mut self, name: &'static str, body: Bytes) {
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(&body)))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        self.files.insert(
            name,
            Asset {
                content_type: content_type(name),
                etag,
                body,
            },
        );
    }

    /// The file `name` (one of [`FILES`]), if the bundle has it.
    pub fn get(&self, name: &str) -> Option<&Asset> {
        self.files.get(name)
    }

    /// Whether this node has a bundle to serve.
    pub fn is_built(&self) -> bool {
        !self.files.is_empty()
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (unlike std's
/// hasher), so every node of a cluster names one bundle with one ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_follow_the_content() {
        let mut a = WebAssets::default();
        a.insert("widget.js", Bytes::from_static(b"one"));
        let first = a.get("widget.js").unwrap().etag.clone();
        a.insert("widget.js", Bytes::from_static(b"two"));
        assert_ne!(a.get("widget.js").unwrap().etag, first);
        a.insert("widget.js", Bytes::from_static(b"one"));
        assert_eq!(a.get("widget.js").unwrap().etag, first);
    }

    #[test]
    fn a_directory_must_hold_the_whole_bundle() {
        let dir = std::env::temp_dir().join(format!("web-assets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("agent")).unwrap();
        std::fs::write(dir.join("widget.js"), "w").unwrap();
        let err = WebAssets::from_dir(&dir).unwrap_err();
        assert!(err.contains("agent/index.html"), "{err}");
        for f in FILES {
            std::fs::write(dir.join(f), f.as_bytes()).unwrap();
        }
        let assets = WebAssets::from_dir(&dir).unwrap();
        assert_eq!(
            assets.get("agent/console.css").unwrap().content_type,
            "text/css; charset=utf-8"
        );
        assert!(assets.get("../Cargo.toml").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
