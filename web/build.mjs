// Builds the bundle the nodes serve (and embed: session-node/build.rs) into
// dist/: widget.js, agent/{index.html,console.js,console.css}. esbuild is
// pinned in package-lock.json and the output depends only on the sources,
// so two builds of one commit are byte-identical; a file is written only
// when its bytes change, so an unchanged bundle does not rebuild the node.
//
// usage: node build.mjs [--check]   (--check: fail if dist/ is not what the
// sources build to, without writing)

import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const check = process.argv.includes("--check");

const common = {
    bundle: true,
    minify: true,
    write: false,
    legalComments: "eof",
    charset: "utf8",
    target: ["es2020"],
    logLevel: "warning",
};

async function bundle(entry, options) {
    const result = await build({ ...common, entryPoints: [join(here, entry)], ...options });
    return result.outputFiles[0].contents;
}

const outputs = {
    "widget.js": await bundle("src/widget/index.js", { format: "iife", outfile: "widget.js" }),
    "agent/console.js": await bundle("src/agent/console.js", { format: "iife", outfile: "console.js" }),
    "agent/console.css": await bundle("src/agent/console.css", { outfile: "console.css" }),
    "agent/index.html": readFileSync(join(here, "src/agent/index.html")),
};

let stale = [];
for (const [name, bytes] of Object.entries(outputs)) {
    const path = join(dist, name);
    const same = existsSync(path) && Buffer.compare(readFileSync(path), Buffer.from(bytes)) === 0;
    if (!same) {
        stale.push(name);
        if (!check) {
            mkdirSync(dirname(path), { recursive: true });
            writeFileSync(path, bytes);
        }
    }
    const sha = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
    const gz = gzipSync(bytes, { level: 9 }).length;
    console.log(`${name.padEnd(20)} ${String(bytes.length).padStart(8)} B  ${String(gz).padStart(7)} B gzipped  sha256 ${sha}${same ? "" : check ? "  STALE" : "  written"}`);
}
if (check && stale.length) {
    console.error(`dist/ is not what the sources build to: ${stale.join(", ")}`);
    process.exit(1);
}
