/**
 * A real Courier IMAP 5.0 for interop tests, changing nothing outside its temp dir. Courier's
 * login (imaplogin + authdaemond) reads fixed paths in /etc/courier and /run/courier, so the
 * harness skips it: couriertcpd starts Courier's own `imapd` on a pre-authenticated session
 * (AUTHENTICATED set, greeting `* PREAUTH`), behind couriertls for implicit TLS. Everything after
 * the login is the real server: SELECT without UIDNEXT, IDLE, its UID database. Clients must not
 * insist on STARTTLS (impossible after PREAUTH); the password is accepted and never checked.
 * imapd is Debian's courier-imap unpacked by scripts/preflight.js (installing it would remove
 * Dovecot); couriertcpd and couriertls come from the installed courier-base.
 */
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { selfSignedCertificate } from "./certificate.ts";
import { HOST } from "./dovecot.ts";
import { groupLifecycle, serverOf, spawnGroup, tailOf, unpackedPackage, untilNextSecond, waitForGreeting, type ImapServer } from "./imap-server.ts";

const USER = "alice";
const PASS = "alicepw";
const COURIERTCPD = "/usr/sbin/couriertcpd";
const COURIERTLS = "/usr/bin/couriertls";

export interface CourierOptions {
  /**
   * IMAP_ENHANCEDIDLE: true (default) pushes new mail through FAM (gamin); false is Debian's
   * default, where IDLE only polls every IMAP_IDLE_TIMEOUT (60 s).
   */
  enhancedIdle?: boolean;
  /** How long to wait for the greeting; default 10 000 ms. */
  startTimeoutMs?: number;
}

function imapdImage(): string {
  return path.join(unpackedPackage("courier-imap"), "usr/bin/imapd");
}

function checkInstalled(): void {
  const missing = [imapdImage(), COURIERTCPD, COURIERTLS].filter((f) => !existsSync(f));
  if (missing.length > 0) throw new Error(`Courier is not ready (${missing.join(", ")} missing): run \`node scripts/preflight.js\` as root first`);
}

/** Debian's /etc/courier/imapd and imapd-ssl defaults, with every path inside `dir`. */
function environment(dir: string, maildir: string, enhancedIdle: boolean): NodeJS.ProcessEnv {
  return {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: path.dirname(maildir),
    AUTHENTICATED: USER,
    MAILDIR: maildir,
    IMAP_CAPABILITY: "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE",
    IMAP_KEYWORDS: "1",
    IMAP_ACL: "1",
    IMAP_IDLE_TIMEOUT: "60",
    IMAP_MAILBOX_SANITY_CHECK: "1",
    IMAP_DISABLETHREADSORT: "0",
    IMAP_CHECK_ALL_FOLDERS: "0",
    IMAP_OBSOLETE_CLIENT: "0",
    IMAP_UMASK: "022",
    IMAP_ULIMITD: "131072",
    IMAP_USELOCKS: "1",
    IMAP_SHAREDINDEXFILE: path.join(dir, "shared", "index"),
    IMAP_ENHANCEDIDLE: enhancedIdle ? "1" : "0",
    IMAP_TRASHFOLDERNAME: "Trash",
    IMAP_EMPTYTRASH: "Trash:7",
    IMAP_MOVE_EXPUNGE_TO_TRASH: "0",
    TLS_CERTFILE: path.join(dir, "tls", "server+key.pem"),
    TLS_VERIFYPEER: "NONE",
    // no session cache file: Debian's lies in /var/lib/courier
    TLS_CACHEFILE: "",
  };
}

/** couriertls reads the certificate and its key from one file. */
async function makeCertificate(dir: string): Promise<string> {
  const tlsDir = path.join(dir, "tls");
  await mkdir(tlsDir);
  const cert = path.join(tlsDir, "server.pem");
  const key = path.join(tlsDir, "server.key");
  await selfSignedCertificate(key, cert);
  const both = path.join(tlsDir, "server+key.pem");
  await writeFile(both, `${await readFile(cert, "utf8")}${await readFile(key, "utf8")}`);
  await chmod(both, 0o600);
  return cert;
}

/** One imapd session over a pipe (it speaks IMAP on stdin/stdout): SELECT INBOX, LOGOUT. */
async function selectOffline(env: NodeJS.ProcessEnv, maildir: string): Promise<void> {
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    const child = execFile(imapdImage(), [maildir], { env, cwd: path.dirname(maildir), timeout: 10_000 }, (err, out) => (err ? reject(err) : resolve({ stdout: out })));
    child.stdin?.end("a SELECT INBOX\r\nb LOGOUT\r\n");
  });
  if (!/^a OK/m.test(stdout)) throw new Error(`Courier imapd could not SELECT INBOX offline:\n${stdout}`);
}

export async function startCourier(options: CourierOptions = {}): Promise<ImapServer> {
  checkInstalled();
  const dir = await mkdtemp(path.join(os.tmpdir(), "mailbell-courier-"));
  const maildir = path.join(dir, "home", USER, "Maildir");
  const logFile = path.join(dir, "couriertcpd.log");
  const env = environment(dir, maildir, options.enhancedIdle ?? true);
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  let port = 0;
  let ca = "";

  const life = groupLifecycle(
    () => {
      const args = ["-address=" + HOST, "-maxprocs=40", "-maxperip=40", "-nodnslookup", "-noidentlookup", String(port), COURIERTLS, "-server", "-tcpd", imapdImage(), maildir];
      // cwd the home folder: imapd refuses to run in one with the sticky bit (such as /tmp)
      return spawnGroup(COURIERTCPD, args, { env, cwd: path.dirname(maildir), logFile });
    },
    async (g) => {
      try {
        await waitForGreeting(port, ca, () => g.exited, startTimeoutMs);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${tailOf([logFile], 20)}`, { cause: err });
      }
    },
  );

  try {
    for (const sub of ["cur", "new", "tmp"]) await mkdir(path.join(maildir, sub), { recursive: true });
    await mkdir(path.join(dir, "shared"));
    const caFile = await makeCertificate(dir);
    ca = await readFile(caFile, "utf8");
    await life.firstStart((p) => void (port = p));
    return serverOf({
      kind: "courier",
      dir,
      port: () => port,
      caFile,
      ca,
      user: USER,
      pass: PASS,
      life,
      logFile,
      /**
       * Courier numbers anew when its UID database is gone: stop, remove it, start. The new
       * database is written by one session while the server is still down: sessions that open a
       * mailbox without one at the same moment each write their own, with UIDVALIDITYs a second apart.
       */
      async changeUidValidity(ops) {
        const before = await ops.uidValidity();
        await life.stop({ hard: true });
        rmSync(path.join(maildir, "courierimapuiddb"), { force: true });
        // the new UIDVALIDITY is taken from the clock
        await untilNextSecond();
        await selectOffline(env, maildir);
        await life.start();
        const after = await ops.uidValidity();
        if (after === before) throw new Error(`Courier kept UIDVALIDITY ${before} after its UID database was removed`);
      },
    });
  } catch (err) {
    await life.stop({ hard: true });
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
