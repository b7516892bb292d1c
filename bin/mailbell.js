#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script), because
// Node does not strip TypeScript types inside node_modules.
import "../dist/cli/entry.js";
