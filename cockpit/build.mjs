// Builds the Cockpit package into dist/ (or the directory given as the
// first argument): index.html and manifest.json as they are, index.js and
// index.css bundled by esbuild with PatternFly's CSS and the fonts it uses.
// cockpit.js is not bundled: Cockpit serves it as ../base1/cockpit.js.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "dist"));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
    entryPoints: [join(here, "src", "index.js")],
    bundle: true,
    outdir: out,
    format: "iife",
    target: ["es2020"],
    minify: false,
    sourcemap: false,
    loader: { ".woff": "file", ".woff2": "file" },
    assetNames: "fonts/[name]",
    logLevel: "warning",
});
for (const f of ["index.html", "manifest.json"]) copyFileSync(join(here, f), join(out, f));
console.log(`apctl cockpit package built in ${out}`);
