import { setFlagsFromString } from "node:v8";
import { main } from "./main.ts";

// A rule's regex that backtracks catastrophically (/(a+)+$/ against "aaaa…a!") would hold the one
// JS thread for hours: no IDLE, no keepalive, no /healthz. With this V8 flag such a match moves to
// V8's linear-time engine after 50,000 backtracks. That engine takes no i, u, v or d flag,
// lookaround, backreference or count above ~16; the README asks rule authors to keep those simple.
setFlagsFromString("--enable-experimental-regexp-engine-on-excessive-backtracks");

const code = await main(process.argv.slice(2));
// Everything is closed by now; exiting explicitly guarantees that a stray timer or socket in a
// dependency can never keep a stopped daemon alive (systemd would have to SIGKILL it).
process.exit(code);
