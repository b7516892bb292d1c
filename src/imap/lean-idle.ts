/**
 * The lean IDLE connection: what a quiet mailbox needs and no more. Greeting, STARTTLS when asked,
 * login, EXAMINE, then IDLE until the server says the mailbox changed; a keepalive NOOP every
 * keepaliveMs, IDLE started again at least every idleRestartMs. It reads no mail: on a change the
 * watcher opens an imapflow session to read (quiet.ts). An imapflow client costs ~45 kB more per
 * connection than a bare TLS session (BENCHMARKS.md, issue 18), which at 1,000 quiet mailboxes is
 * most of the memory.
 */
import net from "node:net";
import tls from "node:tls";
import { ImapError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { defaultPort, sharedContext, type Credentials, type ImapAccount } from "./client.ts";
import { hasCapability, imapString, LineReader, mailboxName, parseLine, type LeanResponse } from "./lean-lines.ts";
import { greetingTimeoutFor } from "./transport-errors.ts";

/** What the last imapflow session saw: the lean connection reports any mail beyond it. */
export interface LeanBaseline {
  /** The mailbox path as the session opened it (namespace prefix included), or as configured. */
  path: string;
  /** Undefined on a first start: nothing to compare with, the mailbox's end is where watching starts. */
  uidValidity: number | undefined;
  /** Every mail below this UID was seen by the session. */
  uidNext: number;
}

export interface LeanSettings {
  account: ImapAccount;
  /** The account's name and the mailbox, for error messages. */
  where: { account: string; mailbox: string };
  log: Logger;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  idleRestartMs: number;
  signal: AbortSignal;
}

/** The server gave the lean connection no UIDNEXT (neither on EXAMINE nor STATUS), or has no IDLE: the lean connection cannot work there. */
export class LeanUnsupported extends Error {}

/** EXAMINE was refused: a name as configured may need the namespace prefix a session adds. */
export class LeanExamineRefused extends Error {}

const greetingTimeoutMs = 16_000;
/** imapflow's connectionTimeout. */
const connectTimeoutMs = 90_000;

/** An error shaped as imapflow's, so classifyImapError words it the same. */
function refusal(command: string, r: Extract<LeanResponse, { kind: "tagged" }>, extra: object = {}): Error {
  return Object.assign(new Error(`${command} failed: ${r.text}`), { responseStatus: r.status, responseText: r.text, serverResponseCode: r.code, ...extra });
}

function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

export class LeanIdle {
  readonly #s: LeanSettings;
  #socket: net.Socket;
  readonly #reader = new LineReader();
  #capabilities = "";
  #tag = 0;
  #failure: Error | undefined;
  #closed = false;
  /** The one command in flight: its tag and what to do with its lines. */
  #pending: { tag: string; resolve(r: Extract<LeanResponse, { kind: "tagged" }>): void; reject(err: Error): void; onContinue?(text: string): void } | undefined;
  #greeted: ((r: LeanResponse) => void) | undefined;
  #wake: (() => void) | undefined;
  /** IDLE was sent and DONE not yet. */
  #idling = false;
  #exists = -1;
  #changed = false;
  #examine: { uidValidity?: number; uidNext?: number } | undefined;
  #statusUidNext: number | undefined;
  #uidNext: number | undefined;
  #uidValidity: number | undefined;

  private constructor(s: LeanSettings, socket: net.Socket) {
    this.#s = s;
    this.#socket = socket;
    this.#attach(socket);
  }

  /** The mailbox changed since the baseline (mail came, or it was renumbered): the watcher should read. */
  get changed(): boolean {
    return this.#changed;
  }

  /** UIDVALIDITY as EXAMINE told it. */
  get uidValidity(): number | undefined {
    return this.#uidValidity;
  }

  /** UIDNEXT as EXAMINE (or STATUS) told it. */
  get uidNext(): number | undefined {
    return this.#uidNext;
  }

  /**
   * Connects, logs in and EXAMINEs the baseline's path. Throws the transport's or the server's error
   * (for classifyImapError), or LeanUnsupported.
   */
  static async open(s: LeanSettings, baseline: LeanBaseline, credentials: Credentials): Promise<LeanIdle> {
    const tlsMode = s.account.tls ?? "implicit";
    const port = s.account.port ?? defaultPort(tlsMode);
    const socket = tlsMode === "implicit" ? tls.connect({ host: s.account.host, port, ...tlsOptions(s.account) }) : net.connect({ host: s.account.host, port });
    const lean = new LeanIdle(s, socket);
    const onAbort = () => lean.#destroy(coded("stopped", "ABORTED"));
    s.signal.addEventListener("abort", onAbort);
    socket.setTimeout(connectTimeoutMs);
    try {
      await lean.#login(tlsMode, credentials);
      await lean.#examineAt(baseline);
      // While idle only the keepalive speaks; a connection silent past two of them is dead.
      lean.#socket.setTimeout(2 * s.keepaliveMs + s.keepaliveTimeoutMs);
      return lean;
    } catch (err) {
      lean.#destroy(err as Error);
      throw lean.#failure ?? err;
    } finally {
      s.signal.removeEventListener("abort", onAbort);
    }
  }

  async #login(tlsMode: "implicit" | "starttls" | "none", credentials: Credentials): Promise<void> {
    const greeting = await this.#greeting();
    if (greeting.kind === "bye") throw coded(`the server closed the connection at once: ${greeting.text}`, "ServerBye");
    if (greeting.kind === "status" && greeting.code === "CAPABILITY") this.#capabilities = greeting.args;
    if (tlsMode === "starttls") await this.#startTls();
    if (!this.#capabilities) await this.#command("CAPABILITY");
    if (greeting.kind === "status" && greeting.status === "PREAUTH") return;
    if (hasCapability(this.#capabilities, "ID")) await this.#command('ID ("name" "mailbell")').catch(() => undefined);
    await this.#authenticate(credentials);
  }

  #greeting(): Promise<LeanResponse> {
    const at = { host: this.#s.account.host, port: this.#s.account.port ?? defaultPort(this.#s.account.tls ?? "implicit"), tls: this.#s.account.tls ?? "implicit" };
    const ms = greetingTimeoutFor(at) ?? greetingTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#destroy(coded("Failed to receive greeting from server in required time", "GREETING_TIMEOUT")), ms);
      this.#greeted = (r) => {
        clearTimeout(timer);
        this.#greeted = undefined;
        this.#pending = undefined;
        resolve(r);
      };
      this.#pending = { tag: "", resolve: () => {}, reject: (err) => (clearTimeout(timer), reject(err)) };
    });
  }

  async #startTls(): Promise<void> {
    if (!this.#capabilities) await this.#command("CAPABILITY");
    // Never go on in plain text when the offer is missing (or was stripped on the way).
    if (!hasCapability(this.#capabilities, "STARTTLS")) throw new Error("Server does not support STARTTLS");
    await this.#command("STARTTLS");
    const plain = this.#socket;
    plain.removeAllListeners("data");
    // From here the TLS socket is the connection: its timeout is the one that counts.
    plain.setTimeout(0);
    plain.removeAllListeners("timeout");
    const secure = tls.connect({ socket: plain, ...tlsOptions(this.#s.account) });
    secure.setTimeout(connectTimeoutMs);
    this.#socket = secure;
    this.#attach(secure);
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      this.#pending = { tag: "", resolve: () => {}, reject };
    });
    this.#pending = undefined;
    this.#capabilities = "";
  }

  async #authenticate(credentials: Credentials): Promise<void> {
    const user = this.#s.account.user;
    const caps = this.#capabilities;
    const saslIr = hasCapability(caps, "SASL-IR");
    if ("accessToken" in credentials) {
      const oauthbearer = hasCapability(caps, "AUTH=OAUTHBEARER");
      if (!oauthbearer && !hasCapability(caps, "AUTH=XOAUTH2") && !hasCapability(caps, "AUTH=XOAUTH")) throw new Error("Unsupported authentication mechanism");
      // SASL's \x01 framing: a control character would end a field early (as imapflow refuses it).
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x1f\x7f]/.test(user + credentials.accessToken)) throw new Error("The username or access token contains control characters");
      const host = this.#s.account.host;
      const port = this.#s.account.port ?? defaultPort(this.#s.account.tls ?? "implicit");
      const payload = oauthbearer ? [`n,a=${user.replace(/=/g, "=3D").replace(/,/g, "=2C")},`, `host=${host}`, `port=${port}`, `auth=Bearer ${credentials.accessToken}`, "", ""].join("\x01") : [`user=${user}`, `auth=Bearer ${credentials.accessToken}`, "", ""].join("\x01");
      // After the payload, a continuation carries the server's error: answered so it sends its NO.
      return this.#sasl(oauthbearer ? "OAUTHBEARER" : "XOAUTH2", Buffer.from(payload).toString("base64"), saslIr, oauthbearer ? "AQ==" : "");
    }
    // As imapflow: a user naming another (Exchange's domain\user, user/mailbox) logs in with LOGIN.
    if (hasCapability(caps, "AUTH=PLAIN") && !/[\\/]/.test(user)) return this.#sasl("PLAIN", Buffer.from(`\x00${user}\x00${credentials.pass}`).toString("base64"), saslIr, "*");
    if (hasCapability(caps, "LOGINDISABLED")) throw Object.assign(new Error("Login is disabled"), { authenticationFailed: true });
    await this.#loginCommand(user, credentials.pass);
  }

  async #sasl(mechanism: string, payload: string, inline: boolean, breaker: string): Promise<void> {
    let sent = inline;
    const r = await this.#command(inline ? `AUTHENTICATE ${mechanism} ${payload}` : `AUTHENTICATE ${mechanism}`, {
      onContinue: () => {
        this.#socket.write(`${sent ? breaker : payload}\r\n`);
        sent = true;
      },
      ok: false,
    });
    if (r.status !== "OK") throw refusal("AUTHENTICATE", r, { authenticationFailed: r.status === "NO" });
  }

  /** LOGIN with quoted strings, or literals for what a quoted string cannot hold (LITERAL+ where offered). */
  async #loginCommand(user: string, pass: string): Promise<void> {
    const nonSync = hasCapability(this.#capabilities, "LITERAL+");
    const parts = [imapString(user), imapString(pass)];
    let text = "LOGIN";
    const literals: Buffer[] = [];
    for (const part of parts) {
      if ("quoted" in part) text += ` ${part.quoted}`;
      else {
        // A literal ends the line; what follows it goes on after its bytes.
        literals.push(part.literal);
        text += ` {${part.literal.length}${nonSync ? "+" : ""}}\x00`;
      }
    }
    const chunks = text.split("\x00");
    const tag = this.#nextTag();
    const r = await new Promise<Extract<LeanResponse, { kind: "tagged" }>>((resolve, reject) => {
      let next = 1;
      const sendNext = () => {
        this.#socket.write(literals[next - 1]!);
        this.#socket.write(`${chunks[next]}\r\n`);
        next++;
      };
      this.#pending = { tag, resolve, reject, onContinue: () => (next < chunks.length ? sendNext() : undefined) };
      this.#socket.write(`${tag} ${chunks[0]}\r\n`);
      if (nonSync) while (next < chunks.length) sendNext();
    });
    if (r.status !== "OK") throw refusal("LOGIN", r, { authenticationFailed: r.status === "NO" });
  }

  async #examineAt(baseline: LeanBaseline): Promise<void> {
    const name = imapString(mailboxName(baseline.path));
    if (!("quoted" in name)) throw new LeanUnsupported("mailbox name");
    // Capabilities may change with the login (Dovecot tells them in its OK); IDLE is what we need.
    if (!hasCapability(this.#capabilities, "IDLE")) await this.#command("CAPABILITY");
    if (!hasCapability(this.#capabilities, "IDLE")) throw new LeanUnsupported("no IDLE");
    this.#examine = {};
    const examined = await this.#command(`EXAMINE ${name.quoted}`, { ok: false });
    if (examined.status !== "OK") throw Object.assign(new LeanExamineRefused(`EXAMINE failed: ${examined.text}`), { responseText: examined.text, serverResponseCode: examined.code });
    const uidValidity = this.#examine.uidValidity;
    let uidNext = this.#examine.uidNext;
    this.#examine = undefined;
    // Courier leaves UIDNEXT out of EXAMINE (RFC 3501 allows it); STATUS tells it.
    if (uidNext === undefined) {
      this.#statusUidNext = undefined;
      await this.#command(`STATUS ${name.quoted} (UIDNEXT)`);
      uidNext = this.#statusUidNext;
    }
    if (uidValidity === undefined || uidNext === undefined) throw new LeanUnsupported(`no ${uidValidity === undefined ? "UIDVALIDITY" : "UIDNEXT"} on EXAMINE`);
    this.#uidNext = uidNext;
    this.#uidValidity = uidValidity;
    // Mail that came between the session's last look and this EXAMINE shows here.
    if (baseline.uidValidity !== undefined && (uidValidity !== baseline.uidValidity || uidNext > baseline.uidNext)) this.#changed = true;
  }

  /**
   * IDLE until the mailbox changes ("changed"), keepaliveMs passes and the NOOP after it was
   * answered ("timeout": the watcher says alive and looks for retries), or we stop ("stopped").
   * Throws when the connection fails or a NOOP goes unanswered within keepaliveTimeoutMs.
   */
  async waitForChange(): Promise<"changed" | "timeout" | "stopped"> {
    const deadline = Date.now() + this.#s.keepaliveMs;
    while (!this.#changed) {
      if (this.#s.signal.aborted) return "stopped";
      this.#check();
      const idle = this.#nextTag();
      const ended = new Promise<Extract<LeanResponse, { kind: "tagged" }>>((resolve, reject) => {
        const done = (r: Extract<LeanResponse, { kind: "tagged" }>) => (r.status === "OK" ? resolve(r) : reject(refusal("IDLE", r)));
        this.#pending = { tag: idle, resolve: done, reject, onContinue: () => {} };
      });
      // Left behind when the mailbox changes: close() ends IDLE, and a failure after must not go unhandled.
      ended.catch(() => {});
      this.#socket.write(`${idle} IDLE\r\n`);
      this.#idling = true;
      const slept = await this.#sleep(Math.min(deadline - Date.now(), this.#s.idleRestartMs), ended);
      if (this.#s.signal.aborted) return "stopped";
      if (this.#changed) return "changed";
      this.#check();
      // The server ended IDLE itself (some do after their own timeout): IDLE again.
      this.#idling = slept !== "ended";
      if (slept === "ended") continue;
      this.#idling = false;
      if (Date.now() < deadline) {
        this.#socket.write("DONE\r\n");
        await this.#answered(ended, "DONE");
        continue;
      }
      // The keepalive: DONE and NOOP in one write (one TLS record and one wake-up fewer per mailbox
      // and keepalive); IDLE's own tagged answer comes first and is passed over. The NOOP must be
      // answered within keepaliveTimeoutMs (said as imapflow's NOOP is).
      const noop = this.#nextTag();
      const answered = new Promise<unknown>((resolve, reject) => (this.#pending = { tag: noop, resolve, reject }));
      this.#socket.write(`DONE\r\n${noop} NOOP\r\n`);
      await this.#answered(answered, "NOOP");
      return this.#changed ? "changed" : "timeout";
    }
    return "changed";
  }

  /** Sleeps ms, or less when the mailbox changes, the connection fails, IDLE ends on its own, or we stop. */
  async #sleep(ms: number, idleEnded: Promise<unknown>): Promise<"slept" | "woken" | "ended"> {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => this.#wake?.();
    this.#s.signal.addEventListener("abort", onAbort);
    try {
      return await Promise.race([
        new Promise<"slept">((resolve) => (timer = setTimeout(() => resolve("slept"), Math.max(0, ms)))),
        new Promise<"woken">((resolve) => (this.#wake = () => resolve("woken"))),
        idleEnded.then(() => "ended" as const),
      ]);
    } finally {
      clearTimeout(timer);
      this.#wake = undefined;
      this.#s.signal.removeEventListener("abort", onAbort);
    }
  }

  /** A command's answer within keepaliveTimeoutMs, or the connection is taken for dead. */
  async #answered<T>(answer: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const ms = this.#s.keepaliveTimeoutMs;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const { account, mailbox } = this.#s.where;
        const err = new ImapError("IMAP_CONNECT", account, mailbox, `account "${account}": the server did not answer a ${what} within ${ms} ms; treating the connection as dead`);
        this.#destroy(err);
        reject(err);
      }, ms);
    });
    try {
      return await Promise.race([answer, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** LOGOUT and close, without waiting for the server; never throws. */
  close(): void {
    if (this.#closed) return;
    try {
      if (this.#idling) this.#socket.write("DONE\r\n");
      this.#socket.end(`${this.#nextTag()} LOGOUT\r\n`);
    } catch {
      // already gone
    }
    this.#pending = undefined;
    this.#closed = true;
    // A server that never closes its side must not keep the socket.
    setTimeout(() => this.#socket.destroy(), 2000).unref();
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw coded("Connection closed", "NoConnection");
  }

  #nextTag(): string {
    return `L${++this.#tag}`;
  }

  /** Sends a command and waits for its tagged answer; a NO or BAD throws unless ok is false. */
  async #command(text: string, o: { onContinue?(text: string): void; ok?: boolean } = {}): Promise<Extract<LeanResponse, { kind: "tagged" }>> {
    this.#check();
    const tag = this.#nextTag();
    const r = await new Promise<Extract<LeanResponse, { kind: "tagged" }>>((resolve, reject) => {
      this.#pending = { tag, resolve, reject, ...(o.onContinue ? { onContinue: o.onContinue } : {}) };
      this.#socket.write(`${tag} ${text}\r\n`);
    });
    if (o.ok !== false && r.status !== "OK") throw refusal(text.split(" ")[0]!, r);
    return r;
  }

  #attach(socket: net.Socket): void {
    socket.setKeepAlive(true, 5000);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (err) => this.#destroy(err));
    socket.on("close", () => this.#destroy(coded("Connection closed", "NoConnection")));
    socket.on("timeout", () => this.#destroy(coded("Socket timeout", "ETIMEOUT")));
  }

  #onData(chunk: Buffer): void {
    let lines: string[];
    try {
      lines = this.#reader.push(chunk);
    } catch (err) {
      this.#destroy(err as Error);
      return;
    }
    for (const line of lines) this.#onLine(parseLine(line));
  }

  #onLine(r: LeanResponse): void {
    if (this.#greeted) return this.#greeted(r);
    switch (r.kind) {
      case "tagged": {
        if (r.code === "CAPABILITY" && r.status === "OK") this.#capabilities = r.args;
        const pending = this.#pending;
        if (pending?.tag !== r.tag) return;
        this.#pending = undefined;
        return pending.resolve(r);
      }
      case "continue":
        return this.#pending?.onContinue?.(r.text);
      case "exists":
        // More mail than EXAMINE counted: something came (EXPUNGE lowers the count first).
        if (this.#exists >= 0 && r.count > this.#exists && !this.#examine) this.#changed = true;
        this.#exists = r.count;
        if (this.#changed) this.#wake?.();
        return;
      case "expunge":
        if (this.#exists > 0) this.#exists--;
        return;
      case "bye":
        this.#failure ??= Object.assign(new Error(`the server closed the connection: ${r.text}`), { code: "ServerBye" });
        return;
      case "capability":
        this.#capabilities = r.names;
        return;
      case "status":
        if (r.code === "CAPABILITY") this.#capabilities = r.args;
        else if (this.#examine && (r.code === "UIDVALIDITY" || r.code === "UIDNEXT")) {
          const n = Number(r.args);
          if (Number.isInteger(n) && n > 0) this.#examine[r.code === "UIDVALIDITY" ? "uidValidity" : "uidNext"] = n;
        }
        return;
      case "uidnext":
        this.#statusUidNext = r.uidNext;
        return;
      default:
        return;
    }
  }

  #destroy(err: Error): void {
    if (!this.#closed) this.#failure ??= err;
    this.#closed = true;
    this.#socket.destroy();
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(this.#failure ?? err);
    this.#wake?.();
  }
}

function tlsOptions(account: ImapAccount): tls.ConnectionOptions {
  return {
    secureContext: sharedContext(account.ca || undefined),
    rejectUnauthorized: account.tlsVerify ?? true,
    ...(/^[\d.]+$/.test(account.host) || account.host.includes(":") ? {} : { servername: account.host }),
  };
}
