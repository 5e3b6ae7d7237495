// Copy and bundle the panel's front-end assets (called by scripts/build-assets.sh).
//
// Output: src/stellarstack/panel/web/static/
//   vendor/   htmx, its SSE/WS extensions, xterm.js + fit addon, uPlot, a CodeMirror 6 bundle
//   css/ js/  our own assets from static_src/ (css/app.css bundled with its @imports)
//   build.json  { version, packages } read by the panel for cache-busting URLs
// The folder is built in node_modules/ and swapped in, so a running panel never serves a
// half-written tree. Any missing input fails the build with the path that is missing.
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync,
         statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const web = join(root, "src/stellarstack/panel/web");
const out = join(web, "static");
const modules = join(root, "node_modules");
// Scratch space inside node_modules: git-ignored and on the same filesystem (rename is atomic).
const scratch = join(modules, ".stellarstack-build");
const staging = join(scratch, "static");

// [package file, destination under vendor/]
const COPIES = [
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["htmx-ext-sse/dist/sse.min.js", "ext/sse.js"],
  ["htmx-ext-ws/dist/ws.min.js", "ext/ws.js"],
  ["@xterm/xterm/lib/xterm.js", "xterm/xterm.js"],
  ["@xterm/xterm/css/xterm.css", "xterm/xterm.css"],
  ["@xterm/addon-fit/lib/addon-fit.js", "xterm/addon-fit.js"],
  ["uplot/dist/uPlot.iife.min.js", "uplot/uPlot.iife.min.js"],
  ["uplot/dist/uPlot.min.css", "uplot/uPlot.min.css"],
];

// Exposed as window.StellarCodeMirror: the editor, a setup, and the languages game servers use.
const CODEMIRROR_ENTRY = `
export { EditorView, keymap, lineNumbers } from "@codemirror/view";
export { EditorState, Compartment } from "@codemirror/state";
export { basicSetup, minimalSetup } from "codemirror";
export { indentWithTab, defaultKeymap, history, historyKeymap } from "@codemirror/commands";
export { oneDark } from "@codemirror/theme-one-dark";
import { StreamLanguage } from "@codemirror/language";
import { json } from "@codemirror/lang-json";
import { yaml } from "@codemirror/lang-yaml";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { xml } from "@codemirror/lang-xml";
import { properties } from "@codemirror/legacy-modes/mode/properties";
import { toml } from "@codemirror/legacy-modes/mode/toml";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { lua } from "@codemirror/legacy-modes/mode/lua";
const legacy = (mode) => () => StreamLanguage.define(mode);
export const languages = {
  json, yaml, javascript, python, xml,
  properties: legacy(properties), toml: legacy(toml), shell: legacy(shell), lua: legacy(lua),
};
`;

function fail(message) {
  console.error(`build-assets: ${message}`);
  process.exit(1);
}

function packageVersion(name) {
  return JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8")).version;
}

function filesUnder(dir) {
  return readdirSync(dir, { recursive: true })
    .map((name) => join(dir, String(name)))
    .filter((path) => statSync(path).isFile())
    .sort();
}

async function main() {
  const started = Date.now();
  const source = join(web, "static_src");
  if (!existsSync(source)) fail(`our own assets are missing: ${relative(root, source)}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, "vendor"), { recursive: true });

  for (const [from, to] of COPIES) {
    const path = join(modules, from);
    if (!existsSync(path)) fail(`${relative(root, path)} is missing (run npm ci)`);
    mkdirSync(dirname(join(staging, "vendor", to)), { recursive: true });
    cpSync(path, join(staging, "vendor", to));
  }
  await build({
    stdin: { contents: CODEMIRROR_ENTRY, resolveDir: root, loader: "js" },
    bundle: true,
    minify: true,
    format: "iife",
    globalName: "StellarCodeMirror",
    target: ["es2020"],
    outfile: join(staging, "vendor/codemirror/codemirror.js"),
    logLevel: "error",
    legalComments: "none",
  }).catch(() => fail("bundling CodeMirror failed (see the errors above)"));

  cpSync(source, staging, { recursive: true });
  // Our stylesheet is split into partials joined by @import; ship them as one file.
  await build({
    entryPoints: [join(source, "css/app.css")],
    bundle: true,
    minify: true,
    outfile: join(staging, "css/app.css"),
    allowOverwrite: true,
    logLevel: "error",
  }).catch(() => fail("bundling css/app.css failed (see the errors above)"));

  const digest = createHash("sha256");
  for (const path of filesUnder(staging)) {
    digest.update(relative(staging, path));
    digest.update(readFileSync(path));
  }
  const packages = Object.fromEntries(
    ["htmx.org", "htmx-ext-sse", "htmx-ext-ws", "@xterm/xterm", "@xterm/addon-fit", "uplot",
     "codemirror", "@codemirror/view", "@codemirror/state"].map((n) => [n, packageVersion(n)]),
  );
  const version = digest.digest("hex").slice(0, 12);
  writeFileSync(join(staging, "build.json"), JSON.stringify({ version, packages }, null, 2) + "\n");

  const previous = join(scratch, "static.old");
  rmSync(previous, { recursive: true, force: true });
  if (existsSync(out)) renameSync(out, previous);
  renameSync(staging, out);
  rmSync(previous, { recursive: true, force: true });
  const count = filesUnder(out).length;
  console.log(`build-assets: ${count} files in ${relative(root, out)} (version ${version}, ` +
              `${Date.now() - started} ms)`);
}

await main();
