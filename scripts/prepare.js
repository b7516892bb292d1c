// `prepare`: builds dist/ (the CLI and the library) with tsc. npm runs it after `npm install` in
// this folder, before `npm pack`, and for installs from a git URL or a folder. A folder install
// (`npm install ../mailbell`, `npm install -g .`) links the folder and runs this script there
// without installing its dependencies, so a fresh clone has no tsc and, when linked, no runtime
// dependencies either: install them here first, from package-lock.json, then build.
// Plain JS: it must run before anything is compiled.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tsc = path.join(root, "node_modules/typescript/bin/tsc");

// An outer `npm install -g` passes global/prefix on to scripts; the install below is this folder's own.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_(global|prefix|local_prefix|location)$/i.test(k)));

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, env, stdio: "inherit", shell: process.platform === "win32" });
  if (result.status !== 0) {
    console.error(
      `mailbell prepare: \`${[command, ...args].map((a) => path.basename(a)).join(" ")}\` failed in ${root} (${result.error?.message ?? `exit ${result.status}`}) while building dist/.\n` +
        `Build it there yourself (\`npm ci && npm run build\` in ${root}), or install the tarball \`npm pack\` makes there instead of the folder.`,
    );
    process.exit(result.status || 1);
  }
}

if (!existsSync(tsc)) {
  console.error(`mailbell prepare: ${root} has no node_modules/typescript (a fresh clone installed as a folder); installing its dependencies there to build dist/.`);
  // --include=dev: an outer `npm install --omit=dev` passes its omit on to this one.
  const ci = existsSync(path.join(root, "package-lock.json")) ? "ci" : "install";
  // The npm that runs this script (npm_execpath), else the one on PATH.
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : [process.platform === "win32" ? "npm.cmd" : "npm"];
  run(npm[0], [...npm.slice(1), ci, "--include=dev", "--ignore-scripts", "--no-audit", "--no-fund"]);
}
run(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json")]);
