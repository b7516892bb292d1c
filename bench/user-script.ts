// The baseline: what a user would write instead of mailbell. Plain imapflow + mailparser: on
// `exists`, fetch the whole new message(s), parse, POST {messageId, subject}. IDLE by calling
// client.idle() in a loop (imapflow's auto-IDLE would only start after 15 s of quiet).
//   node bench/user-script.ts --host H --port P --ca CA.pem --user U --pass PW --url URL [--mailbox M] [--all]
// (or IMAP_HOST IMAP_PORT IMAP_CA IMAP_USER IMAP_PASS POST_URL IMAP_MAILBOX in the environment)
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ImapFlow } from "imapflow";
import { simpleParser } from "mailparser";

const e = process.env;
const str = (d?: string) => ({ type: "string" as const, ...(d === undefined ? {} : { default: d }) });
const { values: o } = parseArgs({
  options: { host: str(e.IMAP_HOST ?? "127.0.0.1"), port: str(e.IMAP_PORT ?? "993"), ca: str(e.IMAP_CA), user: str(e.IMAP_USER), pass: str(e.IMAP_PASS), url: str(e.POST_URL), mailbox: str(e.IMAP_MAILBOX ?? "INBOX"), all: { type: "boolean", default: false } },
});

const client = new ImapFlow({ host: o.host!, port: Number(o.port), secure: true, tls: o.ca ? { ca: readFileSync(o.ca) } : {}, auth: { user: o.user!, pass: o.pass! }, logger: false });
client.on("error", (err) => console.error("imap error:", err));
client.on("close", () => process.exit(1));
await client.connect();
const box = await client.mailboxOpen(o.mailbox!);
let lastUid = o.all ? 0 : box.uidNext - 1; // only mail that arrives from now on (--all: everything)

async function fetchNew(): Promise<void> {
  const messages = await client.fetchAll(`${lastUid + 1}:*`, { uid: true, source: true }, { uid: true });
  for (const msg of messages) {
    if (msg.uid <= lastUid || !msg.source) continue; // "n:*" also returns the last mail when n is past it
    lastUid = msg.uid;
    const mail = await simpleParser(msg.source);
    const res = await fetch(o.url!, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messageId: mail.messageId, subject: mail.subject }) });
    if (!res.ok) console.error(`POST ${res.status} for UID ${msg.uid}`);
  }
}

// One fetch at a time, in order: each run picks up everything above lastUid.
let queue = Promise.resolve();
client.on("exists", () => (queue = queue.then(fetchNew).catch((err) => console.error("fetch failed:", err))));
console.log("idling");
for (;;) await client.idle(); // a FETCH breaks IDLE; idle() then returns and we go straight back in
