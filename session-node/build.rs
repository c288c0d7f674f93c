//! Embeds the built web bundle (`web/dist`, made by `make web`) in the node:
//! the customer widget and the agent console are served from the binary, so a
//! node needs no files beside it. A clone built without the bundle still
//! compiles (plain `cargo build` needs no Node.js); its node then answers
//! `503 web_assets_missing` on those paths and says how to fix it.

use std::path::{Path, PathBuf};

/// What the bundle consists of (`web/build.mjs` writes exactly these).
const FILES: &[&str] = &[
    "widget.js",
    "agent/index.html",
    "agent/console.js",
    "agent/console.css",
];

fn main() {
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        panic!("CARGO_MANIFEST_DIR is not set");
    };
    let dist = Path::new(&manifest).join("..").join("web").join("dist");
    // A directory is scanned as a whole: any rebuilt file re-runs this.
    println!("cargo::rerun-if-changed={}", dist.display());
    let found: Vec<PathBuf> = FILES
        .iter()
        .map(|f| dist.join(f))
        .filter(|p| p.is_file())
        .collect();
    let mut code = String::from(
        "/// The files of `web/dist`, embedded at build time (empty when it was not built).\n\
         pub static EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    if found.len() == FILES.len() {
        for (name, path) in FILES.iter().zip(&found) {
            code.push_str(&format!("    ({name:?}, include_bytes!({path:?})),\n"));
        }
    } else {
        // All or nothing: half a bundle would serve a console that cannot load.
        println!(
            "cargo::warning=web/dist is not built: this session-node serves 503 web_assets_missing for widget.js and /agent/ (run `make web`, then build again)"
        );
    }
    code.push_str("];\n");
    let Some(out) = std::env::var_os("OUT_DIR") else {
        panic!("OUT_DIR is not set");
    };
    let target = Path::new(&out).join("web_assets.rs");
    if let Err(e) = std::fs::write(&target, code) {
        panic!("cannot write {}: {e}", target.display());
    }
}
