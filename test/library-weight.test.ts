/**
 * The library entry (dist/index.js, what `import "mailbell"` loads) must not load what only the
 * daemon needs: its config file's zod and yaml, its pino, mailauth for its rules (issue 16, Weight).
 * A child node logs every package the import resolves; imapflow's own pino, nested under it, is
 * imapflow's business and not counted.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";

const entry = path.resolve(import.meta.dirname, "..", "dist", "index.js");
const daemonOnly = ["zod", "yaml", "pino", "mailauth"];

const logPackages = (entry: string) => `
import { registerHooks } from "node:module";
const loaded = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    const parts = resolved.url.split("/node_modules/");
    if (parts.length === 2) loaded.add(parts[1].split("/").slice(0, parts[1].startsWith("@") ? 2 : 1).join("/"));
    return resolved;
  },
});
await import(${JSON.stringify(pathToFileURL(entry).href)});
console.log(JSON.stringify([...loaded].sort()));
`;

describe("the library entry", () => {
  it("loads none of the daemon's packages (zod, yaml, pino, mailauth)", () => {
    assert.ok(existsSync(entry), `${entry} is missing: build it first with \`npx tsc -p tsconfig.build.json\` (npm test does)`);
    const loaded = JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", logPackages(entry)], { encoding: "utf8" })) as string[];
    assert.ok(loaded.includes("imapflow"), `the hook sees packages: ${loaded.join(", ")}`);
    assert.deepEqual(loaded.filter((p) => daemonOnly.includes(p)), [], `import "mailbell" loaded ${loaded.join(", ")}`);
  });
});

describe("the command's start", () => {
  it("does not load mailauth's tools (joi, the public suffix list: ~130 ms) before a verify rule needs them", () => {
    const cli = path.resolve(import.meta.dirname, "..", "dist", "cli", "main.js");
    assert.ok(existsSync(cli), `${cli} is missing: build it first with \`npx tsc -p tsconfig.build.json\` (npm test does)`);
    const loaded = JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", logPackages(cli)], { encoding: "utf8" })) as string[];
    assert.ok(loaded.includes("zod"), `the hook sees packages: ${loaded.join(", ")}`);
    assert.deepEqual(loaded.filter((p) => p === "joi" || p === "tldts"), [], `mailbell's CLI loaded ${loaded.join(", ")}`);
  });
});
