/**
 * Installing mailbell as a user would, into fresh projects, offline from the npm cache `npm ci`
 * filled (no test leaves loopback): a fresh clone installed as a folder (its prepare script has no
 * tsc and no dependencies there), and the tarball `npm pack` makes of it; each used from ESM,
 * from CommonJS and as the `mailbell` command. A copy of the repository stands in for the clone,
 * so the repository's own dist/ and node_modules are never touched while other tests use them.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, describe, it } from "node:test";

const root = path.resolve(import.meta.dirname, "..");
const work = mkdtempSync(path.join(tmpdir(), "mailbell-install-"));
const clone = path.join(work, "mailbell");
const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version;

/**
 * npm as run from a shell in a fresh project: none of the npm_* settings `npm test` hands its
 * scripts (npm_config_local_prefix would point npm at this repository), offline, and any request
 * that slips through goes to a closed loopback port instead of the registry.
 */
const env: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
  npm_config_offline: "true",
  npm_config_proxy: "http://127.0.0.1:9",
  npm_config_https_proxy: "http://127.0.0.1:9",
  npm_config_audit: "false",
  npm_config_fund: "false",
  npm_config_update_notifier: "false",
};

async function run(cwd: string, command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(command, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    throw new Error(`\`${command} ${args.join(" ")}\` failed in ${cwd}:\n${stdout ?? ""}\n${stderr ?? ""}`, { cause: e });
  }
}

function freshProject(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name, version: "1.0.0", private: true }));
  return dir;
}

interface LockEntry {
  dev?: boolean;
  devOptional?: boolean;
}

/**
 * `npm ci` caches the tarballs its lockfile names, not the registry's package documents that
 * `npm install <tarball>` reads to pick versions, so offline that install would fail on the first
 * dependency (ENOTCACHED). The project starts from our lockfile's runtime entries instead, as if
 * it had resolved them before: npm then takes them from the cache as they are. Online, a user's
 * `npm install <tarball>` resolves them from the registry.
 */
function seedLockfile(project: string, name: string): void {
  const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
  const runtime = Object.entries(lock.packages).filter(([where, entry]) => where !== "" && !entry.dev && !entry.devOptional);
  const packages = { "": { name, version: "1.0.0" }, ...Object.fromEntries(runtime) };
  writeFileSync(path.join(project, "package-lock.json"), JSON.stringify({ name, version: "1.0.0", lockfileVersion: 3, requires: true, packages }));
}

/** The README's library example in miniature, from ESM and from CommonJS, and the command. */
async function useInstalled(project: string): Promise<void> {
  writeFileSync(path.join(project, "esm.mjs"), 'import { watchMailbox, normalizeMail } from "mailbell";\nconsole.log(`esm ${typeof watchMailbox} ${typeof normalizeMail}`);\n');
  writeFileSync(path.join(project, "cjs.cjs"), 'const { watchMailbox, normalizeMail } = require("mailbell");\nconsole.log(`cjs ${typeof watchMailbox} ${typeof normalizeMail}`);\n');
  assert.equal((await run(project, process.execPath, ["esm.mjs"])).trim(), "esm function function");
  assert.equal((await run(project, process.execPath, ["cjs.cjs"])).trim(), "cjs function function");
  assert.equal((await run(project, "npx", ["--no-install", "mailbell", "--version"])).trim(), `mailbell ${version}`);
}

after(() => rmSync(work, { recursive: true, force: true }));

describe("installing mailbell into a fresh project", () => {
  it("from a fresh clone (npm install <folder>), then from the tarball npm pack makes of it", async () => {
    const skip = new Set(["node_modules", "dist", ".git", ".ci", ".scratch"]);
    cpSync(root, clone, { recursive: true, filter: (src) => !skip.has(path.relative(root, src)) });

    const fromFolder = freshProject("from-folder");
    await run(fromFolder, "npm", ["install", clone]);
    await useInstalled(fromFolder);

    const packed = JSON.parse(await run(clone, "npm", ["pack", "--json", "--pack-destination", work])) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    assert.ok(files.includes("dist/index.js") && files.includes("dist/index.d.ts") && files.includes("bin/mailbell.js"), `the tarball holds the build: ${files.slice(0, 10).join(", ")}…`);
    assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/")), "and no sources or tests");
    assert.ok(["presets/providers/gmail.yaml", "presets/rules/google-play.yaml"].every((f) => files.includes(f)), "and the presets mailbell init reads");
    assert.ok(!files.some((f) => f.endsWith(".map")), "nor source maps, which would point at the sources it leaves out");

    const fromTarball = freshProject("from-tarball");
    seedLockfile(fromTarball, "from-tarball");
    await run(fromTarball, "npm", ["install", path.join(work, packed[0]!.filename)]);
    await useInstalled(fromTarball);
  });
});
