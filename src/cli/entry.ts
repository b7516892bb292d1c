import { main } from "./main.ts";

const code = await main(process.argv.slice(2));
// Everything is closed by now; exiting explicitly guarantees that a stray timer or socket in a
// dependency can never keep a stopped daemon alive (systemd would have to SIGKILL it).
process.exit(code);
