/**
 * A line-aware IMAP proxy for tests: it sits on 127.0.0.1 in front of the real Dovecot (its plain
 * port, no TLS) and lets a test break exactly one reply, the way a broken server would. It stands
 * in for a broken server, never for Dovecot in other tests.
 *
 *   const proxy = await startImapProxy({ port: dovecot.imapPort, rules: [dropUidNext()] });
 *   const client = new ImapFlow({ ...dovecot.clientOptions("alice", "plain"), port: proxy.port });
 *   // mailbell: an account with host 127.0.0.1, port: proxy.port, tls: none
 *   proxy.setRules([closeAtIdle({ sessions: 2 })]); // for open sessions and later ones
 *   proxy.applied;  // which rule did what, to assert that it fired at all
 *   proxy.commands; // the client's commands (LOGIN and AUTHENTICATE arguments redacted)
 *   await proxy.close();
 *
 * Both directions are framed: the server's stream into replies (a line plus the `{n}` / `~{n}`
 * literals and continuation lines that belong to it; a reply ends at the CRLF that announces no
 * literal), the client's into commands (tag, name, arguments; literal sizes for APPEND). Each rule
 * sees every reply and command and may pass it, drop it, replace it (with bytes, or with a
 * generator that is never buffered), inject bytes before it, delay it, and afterwards close the
 * session (FIN), reset it (RST) or stall it (a hung server). Rules run in order; a rule sees what
 * the rules before it made of the reply. Rules keyed to a UID match FETCH replies by their `UID n`
 * item while a FETCH command is open, never by the command's text, and pass unilateral FETCHes.
 *
 * Replies up to `maxBufferedReply` are held whole; a bigger one is shown to the rules as its head
 * (`complete: false`) and then streamed through, so the proxy's memory stays small whatever passes.
 * After STARTTLS or COMPRESS succeed the session is forwarded untouched.
 */
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { listenOnLoopback } from "./loopback.ts";

// ---------------------------------------------------------------------------------------------
// Public types

export interface ImapProxyOptions {
  /** The server's plain IMAP port, e.g. `dovecot.imapPort`. */
  port: number;
  host?: string;
  rules?: readonly ImapRule[];
  /** Largest reply held whole for the rules; bigger ones stream through. Default 8 MiB. */
  maxBufferedReply?: number;
}

export interface ImapProxy {
  /** Port on 127.0.0.1 to point the client at (plain IMAP, `tls: none`). */
  readonly port: number;
  /** Sessions (client connections) accepted so far; the first one is session 1. */
  readonly sessions: number;
  /** Sessions open now. */
  readonly connections: number;
  /** Client commands seen, oldest first (the newest 10 000). */
  readonly commands: readonly ClientCommand[];
  /** What the rules did, oldest first (the newest 10 000), and any session the proxy had to reset. */
  readonly applied: readonly AppliedRule[];
  /** Replaces the rules, for open sessions as for later ones. */
  setRules(rules: readonly ImapRule[]): void;
  /** Resets every open session (RST to the client, the server's side closed). */
  dropAll(): void;
  /** Stops accepting and closes every session. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface ClientCommand {
  readonly session: number;
  /** "" for the DONE that ends an IDLE. */
  readonly tag: string;
  /** Upper case; "UID FETCH" for UID commands; "DONE" ends an IDLE. */
  readonly name: string;
  /** The rest of the command, literals shown by their `{n}` marker; "<redacted>" for credentials. */
  readonly args: string;
  /** Sizes of the literals the command carried (an APPEND's message), in order. */
  readonly literals: readonly number[];
}

export interface ServerReply {
  readonly session: number;
  /** "*" untagged, "+" a continuation request, else the tag of the command it completes. */
  readonly tag: string;
  /** The first line, without CRLF. */
  readonly line: string;
  /** The reply as latin1 (one char per byte), literal bytes inline; only its head when not complete. */
  readonly text: string;
  /** False for a reply larger than maxBufferedReply: it can be passed, dropped or replaced, not edited. */
  readonly complete: boolean;
  /** The command it answers: by tag when tagged, else the newest open command. */
  readonly command: ClientCommand | undefined;
  /** An untagged FETCH reply's items; undefined for any other reply. */
  readonly fetch: FetchReply | undefined;
}

export interface FetchReply {
  readonly seq: number;
  readonly uid: number | undefined;
  readonly items: readonly FetchItem[];
}

/** One `name value` pair of a FETCH reply; offsets index ServerReply.text. */
export interface FetchItem {
  /** Upper case with section and origin: "UID", "BODYSTRUCTURE", "BODY[HEADER]", "BODY[1]<0>". */
  readonly name: string;
  /** The value as sent: "5", "NIL", "(...)", "{36}\r\n<bytes>". */
  readonly value: string;
  readonly start: number;
  readonly valueStart: number;
  readonly end: number;
}

/** What a session offers the rules. */
export interface ImapSession {
  /** 1 for the first connection the proxy accepted, 2 for the next... */
  readonly id: number;
  /** Commands sent whose tagged reply has not come yet, oldest first. */
  readonly open: readonly ClientCommand[];
  /** Room for a rule's own state in this session. */
  readonly state: Map<unknown, unknown>;
}

/** Bytes made on demand and never held: stop when the signal aborts (the client left). */
export type ByteSource = (signal: AbortSignal) => AsyncIterable<Buffer>;

/** What a rule does with one reply or command; undefined (or {}) passes it on unchanged. */
export interface RuleAction {
  /** Not forwarded. */
  drop?: boolean;
  /** Forwarded instead. A command can only be replaced by bytes, and only if it has no literal. */
  replace?: string | Buffer | ByteSource;
  /** Sent to the client before this reply, or as an answer to this command. */
  inject?: string | Buffer;
  /** Held back until this many ms after it came, keeping the order of everything after it. */
  delayMs?: number;
  /** After this and all before it reached the client: FIN ("close"), RST ("reset"), or nothing more from the server ("stall"). */
  then?: SessionEnd;
}

export type SessionEnd = "close" | "reset" | "stall";

export interface ImapRule {
  readonly name: string;
  onCommand?(command: ClientCommand, session: ImapSession): RuleAction | undefined;
  onReply?(reply: ServerReply, session: ImapSession): RuleAction | undefined;
}

export interface AppliedRule {
  readonly session: number;
  readonly rule: string;
  /** "drop", "replace", "inject", "delay 200ms", "close", "reset", "stall", or "error: ..." for rule "(proxy)". */
  readonly did: string;
  /** The first line of the reply or command it acted on, cut at 200 chars. */
  readonly line: string;
}

/** Where a rule acts. */
export interface RuleScope {
  /** The first N sessions (a number) or those a predicate picks. Default: every session. */
  sessions?: number | ((session: number) => boolean);
  /** How many times it may act in all, over every session. Default: no limit. */
  times?: number;
}

export interface FetchRuleScope extends RuleScope {
  /** Only FETCH replies with an item whose name matches, e.g. /^BODY\[1\]/ or /^BODYSTRUCTURE$/. */
  items?: RegExp;
}

// ---------------------------------------------------------------------------------------------
// Ready-made rules

/** Drops `* OK [UIDNEXT n]` (SELECT/EXAMINE), as Courier does; with `status`, also UIDNEXT from STATUS replies. */
export function dropUidNext(options: RuleScope & { status?: boolean } = {}): ImapRule {
  return scoped(options, {
    name: "dropUidNext",
    onReply(reply) {
      if (/^\* OK \[UIDNEXT \d+\]/i.test(reply.line)) return { drop: true };
      if (options.status && reply.complete && /^\* STATUS /i.test(reply.line) && /\bUIDNEXT \d+/i.test(reply.text)) {
        return { replace: withoutStatusItem(reply.text, "UIDNEXT") };
      }
      return undefined;
    },
  });
}

/**
 * Closes the session when IDLE starts: by default once the server's `+ idling` reached the client
 * (at: "idling"); at: "command" closes instead of passing the IDLE command on. how: "close" sends
 * a FIN to the client (default), "reset" an RST; the server's side is closed either way.
 */
export function closeAtIdle(options: RuleScope & { at?: "command" | "idling"; how?: "close" | "reset" } = {}): ImapRule {
  const how = options.how ?? "close";
  if (options.at === "command") {
    return scoped(options, { name: "closeAtIdle", onCommand: (command) => (command.name === "IDLE" ? { drop: true, then: how } : undefined) });
  }
  return scoped(options, {
    name: "closeAtIdle",
    onReply: (reply) => (reply.tag === "+" && reply.command?.name === "IDLE" ? { then: how } : undefined),
  });
}

/** Every server reply (the greeting too) reaches the client `ms` later than it left the server. */
export function slow(ms: number, options: RuleScope = {}): ImapRule {
  return scoped(options, { name: "slow", onReply: () => ({ delayMs: ms }) });
}

/**
 * Answers a FETCH of `uid` that asks for a body section with `* n FETCH (UID uid BODY[section]
 * {declaredBytes}` (`~{n}` for BINARY) and filler made as it is sent, never held: as fast as the
 * client reads, or `bytesPerSecond`. After all declared bytes it ends the reply and the session
 * goes on; with `sendAtMost` below `declaredBytes`, it closes the session (FIN) after that many.
 */
export function hugeLiteralFor(uid: number, declaredBytes: number, options: FetchRuleScope & { bytesPerSecond?: number; sendAtMost?: number } = {}): ImapRule {
  const sending = Math.min(declaredBytes, options.sendAtMost ?? declaredBytes);
  return forUid("hugeLiteralFor", uid, { ...options, items: options.items ?? BODY_SECTION }, (_reply, fetch) => {
    const section = fetch.items.find((item) => BODY_SECTION.test(item.name))?.name ?? "BODY[HEADER]";
    const marker = `${section.startsWith("BINARY") ? "~" : ""}{${declaredBytes}}`;
    const source = filler(`* ${fetch.seq} FETCH (UID ${uid} ${section} ${marker}\r\n`, sending, {
      tail: sending === declaredBytes ? ")\r\n" : "",
      lineBreaks: true,
      bytesPerSecond: options.bytesPerSecond,
    });
    return sending < declaredBytes ? { replace: source, then: "close" } : { replace: source };
  });
}

/**
 * Answers a FETCH of `uid` with an untagged line that never ends: `* n FETCH (UID uid
 * BODY[HEADER] "xxxx...` with no CR or LF, until the client leaves, `maxBytes` (default 1.5 GiB)
 * or `maxMs` (default 30 s) is reached; then it closes the session (FIN).
 */
export function endlessLineFor(uid: number, options: FetchRuleScope & { maxBytes?: number; maxMs?: number; bytesPerSecond?: number } = {}): ImapRule {
  return forUid("endlessLineFor", uid, options, (_reply, fetch) => {
    const section = fetch.items.find((item) => BODY_SECTION.test(item.name))?.name ?? "BODY[HEADER]";
    const source = filler(`* ${fetch.seq} FETCH (UID ${uid} ${section} "`, options.maxBytes ?? 1.5 * 2 ** 30, {
      tail: "",
      lineBreaks: false,
      bytesPerSecond: options.bytesPerSecond,
      maxMs: options.maxMs ?? 30_000,
    });
    return { replace: source, then: "close" };
  });
}

/** The FETCH reply for `askedUid` says `UID answeredUid` instead; the rest of it is unchanged. */
export function wrongUidFor(askedUid: number, answeredUid: number, options: FetchRuleScope = {}): ImapRule {
  return forUid("wrongUidFor", askedUid, options, (reply, fetch) => {
    const uidItem = fetch.items.find((item) => item.name === "UID");
    return uidItem ? edit(reply, [[uidItem, String(answeredUid)]]) : undefined;
  });
}

/**
 * A nested list closed by `]`: a complete line, but imapflow's parser rejects it (ParserError11),
 * and imapflow then leaves the whole FETCH row out of its answer.
 */
export const UNPARSABLE_BODYSTRUCTURE = '("text" "plain" ("charset" "us-ascii"] NIL NIL "7bit" 10 1)';

/** Replaces the BODYSTRUCTURE of `uid` with `garbage` (default UNPARSABLE_BODYSTRUCTURE); replies without one pass. */
export function unparsableBodystructureFor(uid: number, options: FetchRuleScope & { garbage?: string } = {}): ImapRule {
  const garbage = options.garbage ?? UNPARSABLE_BODYSTRUCTURE;
  return forUid("unparsableBodystructureFor", uid, { ...options, items: options.items ?? /^BODYSTRUCTURE$/ }, (reply, fetch) =>
    edit(reply, fetch.items.filter((item) => item.name === "BODYSTRUCTURE").map((item) => [item, garbage])),
  );
}

/** Body parts of `uid` come back NIL: `section` ("1", "2.1", "HEADER", "TEXT") or by default every numbered part. */
export function nilPartFor(uid: number, options: FetchRuleScope & { section?: string } = {}): ImapRule {
  const parts = options.section === undefined ? NUMBERED_PART : new RegExp(`^(BODY|BINARY)\\[${escapeRegExp(options.section.toUpperCase())}\\](<\\d+>)?$`);
  return forUid("nilPartFor", uid, { ...options, items: options.items ?? parts }, (reply, fetch) =>
    edit(reply, fetch.items.filter((item) => parts.test(item.name)).map((item) => [item, "NIL"])),
  );
}

/** Leaves `uid` out of FETCH answers (every one, or those with an item matching `items`). */
export function missingFromFetch(uid: number, options: FetchRuleScope = {}): ImapRule {
  return forUid("missingFromFetch", uid, options, () => ({ drop: true }));
}

/**
 * Session k sees UIDVALIDITY v + k·step (wrapping within 1..2³²−1) instead of v, with the same
 * UIDs: in SELECT/EXAMINE's `[UIDVALIDITY v]`, STATUS replies, and APPENDUID/COPYUID codes.
 * Commands that quote a UIDVALIDITY (QRESYNC) are not translated back.
 */
export function renumberEachSession(options: RuleScope & { step?: number } = {}): ImapRule {
  const step = options.step ?? 1;
  return scoped(options, {
    name: "renumberEachSession",
    onReply(reply, session) {
      if (!reply.complete || reply.fetch || !/UIDVALIDITY|APPENDUID|COPYUID/i.test(reply.text)) return undefined;
      const shift = (v: string): string => String(((Number(v) - 1 + session.id * step) % 0xffffffff) + 1);
      let text = reply.text.replace(/\[(UIDVALIDITY|APPENDUID|COPYUID) (\d+)/gi, (_m, code: string, v: string) => `[${code} ${shift(v)}`);
      if (/^\* STATUS /i.test(reply.line)) text = text.replace(/\bUIDVALIDITY (\d+)/gi, (_m, v: string) => `UIDVALIDITY ${shift(v)}`);
      return text === reply.text ? undefined : { replace: text };
    },
  });
}

/** Forwards the first reply whose first line matches (or the predicate accepts), then nothing more from the server. */
export function stallAfter(pattern: RegExp | ((reply: ServerReply) => boolean), options: RuleScope = {}): ImapRule {
  const matches = typeof pattern === "function" ? pattern : (reply: ServerReply) => pattern.test(reply.line);
  return scoped(options, { name: "stallAfter", onReply: (reply) => (matches(reply) ? { then: "stall" } : undefined) });
}

// ---------------------------------------------------------------------------------------------
// Rule building blocks

const BODY_SECTION = /^(BODY|BINARY)\[/;
const NUMBERED_PART = /^(BODY|BINARY)\[\d+(\.\d+)*\](<\d+>)?$/;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Limits a rule to some sessions and a number of actions. */
export function scoped(scope: RuleScope, rule: ImapRule): ImapRule {
  let left = scope.times ?? Infinity;
  const sessions = scope.sessions;
  const inScope = (id: number): boolean => (sessions === undefined ? true : typeof sessions === "number" ? id <= sessions : sessions(id));
  const wrap = <T>(fn: ((x: T, s: ImapSession) => RuleAction | undefined) | undefined) =>
    fn &&
    ((x: T, s: ImapSession): RuleAction | undefined => {
      if (left <= 0 || !inScope(s.id)) return undefined;
      const action = fn(x, s);
      if (action) left--;
      return action;
    });
  return { name: rule.name, onCommand: wrap(rule.onCommand?.bind(rule)), onReply: wrap(rule.onReply?.bind(rule)) };
}

/** A rule for the FETCH replies of one UID, while a FETCH command is open. */
export function forUid(name: string, uid: number, scope: FetchRuleScope, act: (reply: ServerReply, fetch: FetchReply) => RuleAction | undefined): ImapRule {
  return scoped(scope, {
    name,
    onReply(reply) {
      const fetch = reply.fetch;
      if (!fetch || fetch.uid !== uid || !/^(UID )?FETCH$/.test(reply.command?.name ?? "")) return undefined;
      if (scope.items && !fetch.items.some((item) => scope.items!.test(item.name))) return undefined;
      return act(reply, fetch);
    },
  });
}

/** The reply with some FETCH item values replaced; nothing for a reply too big to hold. */
export function edit(reply: ServerReply, edits: readonly (readonly [FetchItem, string])[]): RuleAction | undefined {
  if (!reply.complete || edits.length === 0) return undefined;
  let text = reply.text;
  for (const [item, value] of [...edits].sort((a, b) => b[0].valueStart - a[0].valueStart)) {
    text = text.slice(0, item.valueStart) + value + text.slice(item.end);
  }
  return { replace: text };
}

function withoutStatusItem(text: string, name: string): string {
  const open = text.lastIndexOf("(");
  const close = text.indexOf(")", open);
  const words = text.slice(open + 1, close).trim().split(/\s+/);
  const kept: string[] = [];
  for (let i = 0; i + 1 < words.length; i += 2) if (words[i]!.toUpperCase() !== name) kept.push(words[i]!, words[i + 1]!);
  return `${text.slice(0, open + 1)}${kept.join(" ")}${text.slice(close)}`;
}

/** One 64 KiB block reused for every write: a 2 GB literal costs the proxy these bytes and no more. */
const fillers = {
  withBreaks: Buffer.from(`${"X-Filler: ".padEnd(1022, "x")}\r\n`.repeat(64), "latin1"),
  noBreaks: Buffer.alloc(65_536, "x"),
};

interface FillerOptions {
  tail: string;
  lineBreaks: boolean;
  bytesPerSecond?: number | undefined;
  maxMs?: number | undefined;
}

/** `head`, then `total` filler bytes (fewer if maxMs passes or the client leaves), then `tail` if all were sent. */
function filler(head: string, total: number, options: FillerOptions): ByteSource {
  const block = options.lineBreaks ? fillers.withBreaks : fillers.noBreaks;
  const rate = options.bytesPerSecond;
  const chunkSize = rate ? Math.max(1, Math.min(block.length, Math.floor(rate / 20))) : block.length;
  return async function* (signal) {
    yield Buffer.from(head, "latin1");
    const started = performance.now();
    let sent = 0;
    while (sent < total && !signal.aborted) {
      if (options.maxMs !== undefined && performance.now() - started >= options.maxMs) return;
      const n = Math.min(chunkSize, total - sent);
      yield n === block.length ? block : block.subarray(0, n);
      sent += n;
      if (rate) await pace(started + (sent / rate) * 1000, signal);
    }
    if (sent === total && options.tail) yield Buffer.from(options.tail, "latin1");
  };
}

async function pace(until: number, signal: AbortSignal): Promise<void> {
  const wait = until - performance.now();
  if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Framing (both directions) and reading FETCH replies

const LF = 0x0a;

interface FrameSink {
  /** A whole line with its CRLF, and the size of the literal it announces. */
  line(line: Buffer, literal: number | undefined): void;
  /** Some bytes of the literal announced last. */
  literal(chunk: Buffer): void;
}

/** The size in a trailing `{n}`, `{n+}` (client) or `~{n}` (literal8), if the line ends with one. */
export function announcedLiteral(line: Buffer): number | undefined {
  const tail = line.toString("latin1", Math.max(0, line.length - 32));
  const match = /~?\{(\d{1,19})\+?\}\r?\n$/.exec(tail);
  return match ? Number(match[1]) : undefined;
}

/** Splits a byte stream into lines and the literals they announce; literal bytes are never held. */
export class Framer {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private literalLeft = 0;
  private readonly sink: FrameSink;
  private readonly maxLine: number;
  /** Once set, every byte from here on goes there unframed (after STARTTLS or COMPRESS). */
  raw: ((bytes: Buffer) => void) | undefined;

  constructor(sink: FrameSink, maxLine = 64 * 1024 * 1024) {
    this.sink = sink;
    this.maxLine = maxLine;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.raw) return this.raw(chunk.subarray(pos));
      pos = this.literalLeft > 0 ? this.takeLiteral(chunk, pos) : this.takeLine(chunk, pos);
    }
  }

  private takeLiteral(chunk: Buffer, pos: number): number {
    const n = Math.min(this.literalLeft, chunk.length - pos);
    this.literalLeft -= n;
    this.sink.literal(chunk.subarray(pos, pos + n));
    return pos + n;
  }

  private takeLine(chunk: Buffer, pos: number): number {
    const lf = chunk.indexOf(LF, pos);
    if (lf < 0) {
      this.partial.push(chunk.subarray(pos));
      this.partialBytes += chunk.length - pos;
      if (this.partialBytes > this.maxLine) throw new Error(`a line longer than ${this.maxLine} bytes`);
      return chunk.length;
    }
    const end = lf + 1;
    const line = this.partial.length === 0 ? chunk.subarray(pos, end) : Buffer.concat([...this.partial, chunk.subarray(pos, end)]);
    this.partial = [];
    this.partialBytes = 0;
    const literal = announcedLiteral(line);
    this.literalLeft = literal ?? 0;
    this.sink.line(line, literal);
    return end;
  }
}

/** The items of an untagged FETCH reply, as far as `text` holds whole ones; undefined for other replies. */
export function parseFetch(text: string): FetchReply | undefined {
  const head = /^\* (\d+) FETCH \(/i.exec(text);
  if (!head) return undefined;
  const items: FetchItem[] = [];
  let pos = head[0].length;
  for (;;) {
    while (text[pos] === " ") pos++;
    if (pos >= text.length || text[pos] === ")") break;
    const start = pos;
    pos = skipItemName(text, pos);
    if (text[pos] !== " ") break;
    const valueStart = pos + 1;
    const end = skipValue(text, valueStart);
    if (end < 0) break;
    items.push({ name: text.slice(start, valueStart - 1).toUpperCase(), value: text.slice(valueStart, end), start, valueStart, end });
    pos = end;
  }
  const uid = items.find((item) => item.name === "UID");
  return { seq: Number(head[1]), uid: uid && /^\d+$/.test(uid.value) ? Number(uid.value) : undefined, items };
}

function skipItemName(text: string, pos: number): number {
  while (pos < text.length && !" )\r\n".includes(text[pos]!)) {
    if (text[pos] === "[") {
      const close = text.indexOf("]", pos);
      if (close < 0) return text.length;
      pos = close;
    }
    pos++;
  }
  return pos;
}

/** Index just past the value at `pos`, or -1 when it is cut off or malformed. */
function skipValue(text: string, pos: number): number {
  const c = text[pos];
  if (c === "(") return skipList(text, pos);
  if (c === '"') return skipQuoted(text, pos);
  if (c === "{" || (c === "~" && text[pos + 1] === "{")) return skipLiteral(text, pos);
  let end = pos;
  while (end < text.length && !" ()\r\n".includes(text[end]!)) end++;
  return end === pos ? -1 : end;
}

function skipList(text: string, pos: number): number {
  let depth = 0;
  for (let i = pos; i < text.length; ) {
    const c = text[i];
    if (c === "(") depth++;
    if (c === ")" && --depth === 0) return i + 1;
    if (c === '"' || c === "{" || (c === "~" && text[i + 1] === "{")) {
      i = skipValue(text, i);
      if (i < 0) return -1;
    } else i++;
  }
  return -1;
}

function skipQuoted(text: string, pos: number): number {
  for (let i = pos + 1; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') return i + 1;
  }
  return -1;
}

function skipLiteral(text: string, pos: number): number {
  const marker = /~?\{(\d+)\}\r\n/y;
  marker.lastIndex = pos;
  const match = marker.exec(text);
  if (!match) return -1;
  const end = marker.lastIndex + Number(match[1]);
  return end <= text.length ? end : -1;
}

// ---------------------------------------------------------------------------------------------
// Sessions

const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const LOG_LIMIT = 10_000;

interface Core {
  rules: readonly ImapRule[];
  readonly maxBufferedReply: number;
  readonly target: { host: string; port: number };
  logCommand(command: ClientCommand): void;
  logApplied(entry: AppliedRule): void;
}

interface Command extends ClientCommand {
  args: string;
  literals: number[];
}

class Reply implements ServerReply {
  readonly session: number;
  readonly raw: Buffer;
  readonly complete: boolean;
  readonly command: ClientCommand | undefined;
  readonly line: string;
  readonly tag: string;
  #text: string | undefined;
  #fetch: FetchReply | null | undefined;

  constructor(session: number, raw: Buffer, complete: boolean, command: ClientCommand | undefined) {
    this.session = session;
    this.raw = raw;
    this.complete = complete;
    this.command = command;
    const lf = raw.indexOf(LF);
    this.line = raw.toString("latin1", 0, lf < 0 ? raw.length : lf).replace(/\r$/, "");
    this.tag = tagOf(raw);
  }

  get text(): string {
    return (this.#text ??= this.raw.toString("latin1"));
  }

  get fetch(): FetchReply | undefined {
    if (this.#fetch === undefined) this.#fetch = parseFetch(this.text) ?? null;
    return this.#fetch ?? undefined;
  }
}

type OutItem =
  | { kind: "bytes"; data: Buffer; notBefore: number }
  | { kind: "source"; source: ByteSource; notBefore: number }
  | { kind: "end"; how: SessionEnd; notBefore: number };

interface Verdict {
  send: Buffer | ByteSource | undefined;
  inject: Buffer[];
  delayMs: number;
  then: SessionEnd | undefined;
}

function tagOf(raw: Buffer): string {
  return raw.toString("latin1", 0, Math.min(raw.length, 64)).split(/[ \r\n]/, 1)[0] ?? "";
}

function bytesOf(value: string | Buffer): Buffer {
  return typeof value === "string" ? Buffer.from(value, "latin1") : value;
}

function describe(action: RuleAction): string {
  const did: string[] = [];
  if (action.drop) did.push("drop");
  if (action.replace !== undefined) did.push("replace");
  if (action.inject !== undefined) did.push("inject");
  if (action.delayMs) did.push(`delay ${action.delayMs}ms`);
  if (action.then) did.push(action.then);
  return did.join(", ") || "pass";
}

class Session implements ImapSession {
  readonly id: number;
  readonly open: Command[] = [];
  readonly state = new Map<unknown, unknown>();
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  private readonly core: Core;
  private readonly left = new AbortController();
  private readonly serverFramer: Framer;
  private readonly clientFramer: Framer;
  private readonly idleDone = new WeakSet<Command>();
  private head: Buffer[] = [];
  private headBytes = 0;
  /** Set while the rest of an over-size reply goes by: forwarded or dropped. */
  private streaming: "pass" | "drop" | undefined;
  /** The command whose continuation lines and literals are still coming, and whether they go on. */
  private current: { command: Command | undefined; forward: boolean } | undefined;
  private queue: OutItem[] = [];
  private queuedBytes = 0;
  private pumping = false;
  private stalled = false;
  private finished = false;

  constructor(id: number, client: net.Socket, core: Core) {
    this.id = id;
    this.client = client;
    this.core = core;
    this.serverFramer = new Framer({ line: (l, n) => this.onServerLine(l, n), literal: (c) => this.onServerLiteral(c) });
    this.clientFramer = new Framer({ line: (l, n) => this.onClientLine(l, n), literal: (c) => this.onClientLiteral(c) });
    this.upstream = net.connect({ ...core.target, allowHalfOpen: true, noDelay: true });
    // Replies are written one by one: with Nagle each small one after the first would wait for
    // the peer's delayed ACK (~40 ms), a latency the server never had.
    client.setNoDelay(true);
    this.wireClient();
    this.wireUpstream();
  }

  /** Closes both sides at once: RST to the client. */
  reset(): void {
    this.finished = true;
    this.left.abort();
    this.client.resetAndDestroy();
    this.upstream.destroy();
  }

  private wireClient(): void {
    const { client, upstream } = this;
    client.on("error", () => {});
    client.on("data", (chunk: Buffer) => this.guard(() => this.clientFramer.push(chunk)));
    client.on("end", () => upstream.end());
    client.on("close", () => {
      this.finished = true;
      this.left.abort();
      upstream.destroy();
    });
  }

  private wireUpstream(): void {
    const { client, upstream } = this;
    upstream.on("error", () => {});
    upstream.on("data", (chunk: Buffer) => {
      if (!this.stalled && !this.finished) this.guard(() => this.serverFramer.push(chunk));
    });
    upstream.on("end", () => {
      if (!this.stalled) this.enqueue({ kind: "end", how: "close", notBefore: 0 });
    });
    upstream.on("close", (hadError) => {
      // The server refused or reset us; a reset is the closest thing the client can be shown.
      if (hadError && !this.stalled && !this.finished) client.resetAndDestroy();
    });
  }

  /** A framing error or a throwing rule ends the session loudly, never quietly corrupts it. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.core.logApplied({ session: this.id, rule: "(proxy)", did: `error: ${(err as Error).message}`, line: "" });
      this.reset();
    }
  }

  // --- server to client ---

  private onServerLine(line: Buffer, literal: number | undefined): void {
    if (this.streaming) {
      if (this.streaming === "pass") this.enqueueBytes(line, 0);
      if (literal === undefined) this.streaming = undefined;
      return;
    }
    this.head.push(line);
    this.headBytes += line.length;
    if (literal === undefined) this.finishReply();
    else if (this.headBytes + literal > this.core.maxBufferedReply) this.startStreaming();
  }

  private onServerLiteral(chunk: Buffer): void {
    if (this.streaming === "pass") this.enqueueBytes(chunk, 0);
    else if (!this.streaming) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
    }
  }

  private takeHead(complete: boolean): Reply {
    const raw = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
    this.head = [];
    this.headBytes = 0;
    const tag = tagOf(raw);
    const command = tag === "*" || tag === "+" ? this.open.at(-1) : this.open.find((c) => c.tag === tag);
    const reply = new Reply(this.id, raw, complete, command);
    this.settle(reply);
    return reply;
  }

  /** A tagged reply closes its command; after STARTTLS or COMPRESS the bytes are no longer IMAP to us. */
  private settle(reply: Reply): void {
    if (reply.tag === "*" || reply.tag === "+") return;
    const at = this.open.findIndex((c) => c.tag === reply.tag);
    if (at < 0) return;
    const [command] = this.open.splice(at, 1);
    if (/^\S+ OK\b/i.test(reply.line) && (command!.name === "STARTTLS" || command!.name === "COMPRESS")) {
      this.serverFramer.raw = (bytes) => this.enqueueBytes(bytes, 0);
      this.clientFramer.raw = (bytes) => this.toServer(bytes);
    }
  }

  private finishReply(): void {
    const reply = this.takeHead(true);
    this.deliverVerdict(this.judgeReply(reply));
  }

  /** Rules see the head of an over-size reply; its rest follows them without being held. */
  private startStreaming(): void {
    const reply = this.takeHead(false);
    const verdict = this.judgeReply(reply);
    this.deliverVerdict(verdict);
    this.streaming = verdict.send === reply.raw ? "pass" : "drop";
  }

  private judgeReply(reply: Reply): Verdict {
    const verdict: Verdict = { send: reply.raw, inject: [], delayMs: 0, then: undefined };
    let current: Reply = reply;
    for (const rule of this.core.rules) {
      const action = rule.onReply?.(current, this);
      if (!action) continue;
      this.core.logApplied({ session: this.id, rule: rule.name, did: describe(action), line: current.line.slice(0, 200) });
      if (action.inject !== undefined) verdict.inject.push(bytesOf(action.inject));
      verdict.delayMs = Math.max(verdict.delayMs, action.delayMs ?? 0);
      verdict.then ??= action.then;
      if (action.drop) return { ...verdict, send: undefined };
      if (typeof action.replace === "function") return { ...verdict, send: action.replace };
      if (action.replace !== undefined) {
        current = new Reply(this.id, bytesOf(action.replace), true, reply.command);
        verdict.send = current.raw;
      }
    }
    return verdict;
  }

  private deliverVerdict(verdict: Verdict): void {
    const notBefore = performance.now() + verdict.delayMs;
    for (const data of verdict.inject) this.enqueueBytes(data, notBefore);
    if (Buffer.isBuffer(verdict.send)) this.enqueueBytes(verdict.send, notBefore);
    else if (verdict.send) this.enqueue({ kind: "source", source: verdict.send, notBefore });
    if (verdict.then) this.enqueue({ kind: "end", how: verdict.then, notBefore });
  }

  // --- client to server ---

  private onClientLine(line: Buffer, literal: number | undefined): void {
    this.current ??= this.beginCommand(line);
    const command = this.current.command;
    if (command && literal !== undefined) command.literals.push(literal);
    if (this.current.forward) this.toServer(line);
    if (literal === undefined) this.current = undefined;
  }

  private onClientLiteral(chunk: Buffer): void {
    if (this.current?.forward) this.toServer(chunk);
  }

  private beginCommand(line: Buffer): { command: Command | undefined; forward: boolean } {
    const text = line.toString("latin1").replace(/\r?\n$/, "");
    const last = this.open.at(-1);
    // Lines inside an AUTHENTICATE exchange are credentials, not commands.
    if (last?.name === "AUTHENTICATE") return { command: undefined, forward: true };
    let command: Command;
    if (last?.name === "IDLE" && !this.idleDone.has(last)) {
      this.idleDone.add(last);
      command = { session: this.id, tag: "", name: text.trim().toUpperCase(), args: "", literals: [] };
    } else {
      command = parseCommand(this.id, text);
      this.open.push(command);
    }
    this.core.logCommand(command);
    return { command, forward: this.judgeCommand(command, line) };
  }

  /** Runs the command rules; true when the command's own bytes are to be forwarded. */
  private judgeCommand(command: Command, line: Buffer): boolean {
    for (const rule of this.core.rules) {
      const action = rule.onCommand?.(command, this);
      if (!action) continue;
      this.core.logApplied({ session: this.id, rule: rule.name, did: describe(action), line: `${command.tag} ${command.name} ${command.args}`.slice(0, 200) });
      const notBefore = performance.now() + (action.delayMs ?? 0);
      if (action.inject !== undefined) this.enqueueBytes(bytesOf(action.inject), notBefore);
      if (action.then) this.enqueue({ kind: "end", how: action.then, notBefore });
      if (typeof action.replace === "function") throw new Error(`rule ${rule.name}: a command can only be replaced by bytes`);
      if (action.replace !== undefined) {
        if (announcedLiteral(line) !== undefined) throw new Error(`rule ${rule.name}: a command with a literal cannot be replaced`);
        this.toServer(bytesOf(action.replace));
        return false;
      }
      if (action.drop) return false;
    }
    return true;
  }

  private toServer(bytes: Buffer): void {
    if (this.upstream.destroyed) return;
    if (!this.upstream.write(bytes)) {
      this.client.pause();
      this.upstream.once("drain", () => this.client.resume());
    }
  }

  // --- the queue to the client, in order, with delays and backpressure ---

  private enqueueBytes(data: Buffer, notBefore: number): void {
    this.enqueue({ kind: "bytes", data, notBefore });
  }

  private enqueue(item: OutItem): void {
    if (this.finished || this.stalled) return;
    this.queue.push(item);
    if (item.kind === "bytes") {
      this.queuedBytes += item.data.length;
      if (this.queuedBytes > HIGH_WATER) this.upstream.pause();
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let item = this.queue.shift(); item && !this.finished && !this.stalled; item = this.queue.shift()) await this.deliver(item);
    } catch (err) {
      this.core.logApplied({ session: this.id, rule: "(proxy)", did: `error: ${(err as Error).message}`, line: "" });
      this.reset();
    } finally {
      this.pumping = false;
    }
  }

  private async deliver(item: OutItem): Promise<void> {
    const wait = item.notBefore - performance.now();
    if (wait > 0) await sleep(wait, undefined, { signal: this.left.signal }).catch(() => {});
    if (item.kind === "bytes") {
      await this.write(item.data);
      this.queuedBytes -= item.data.length;
      if (this.queuedBytes < LOW_WATER && this.upstream.isPaused()) this.upstream.resume();
    } else if (item.kind === "source") {
      for await (const chunk of item.source(this.left.signal)) {
        if (this.finished) break;
        await this.write(chunk);
      }
    } else this.end(item.how);
  }

  private write(data: Buffer): Promise<void> {
    const client = this.client;
    if (client.destroyed || client.write(data)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        client.off("drain", done);
        client.off("close", done);
        resolve();
      };
      client.on("drain", done);
      client.on("close", done);
    });
  }

  private end(how: SessionEnd): void {
    if (how === "reset") return this.reset();
    if (how === "stall") {
      // A hung server: it reads what it is sent and answers nothing, and nothing piles up here.
      this.stalled = true;
      this.queue = [];
      this.queuedBytes = 0;
      this.upstream.resume();
      return;
    }
    this.finished = true;
    this.left.abort();
    this.client.end();
    this.upstream.destroy();
    // A client that never closes its side must not keep the socket (and the test) alive.
    setTimeout(() => this.client.destroy(), 2000).unref();
  }
}

function parseCommand(session: number, text: string): Command {
  const [tag = "", first = "", ...rest] = text.split(" ");
  let name = first.toUpperCase();
  let args = rest.join(" ");
  if (name === "UID" && rest.length > 0) {
    name = `UID ${rest[0]!.toUpperCase()}`;
    args = rest.slice(1).join(" ");
  }
  if (name === "LOGIN") args = "<redacted>";
  if (name === "AUTHENTICATE") args = rest.length > 1 ? `${rest[0]} <redacted>` : args;
  return { session, tag, name, args, literals: [] };
}

// ---------------------------------------------------------------------------------------------
// The proxy

export async function startImapProxy(options: ImapProxyOptions): Promise<ImapProxy> {
  const open = new Set<Session>();
  const commands: ClientCommand[] = [];
  const applied: AppliedRule[] = [];
  let accepted = 0;
  const keep = <T>(log: T[], entry: T): void => {
    log.push(entry);
    if (log.length > LOG_LIMIT) log.splice(0, log.length - LOG_LIMIT);
  };
  const core: Core = {
    rules: [...(options.rules ?? [])],
    maxBufferedReply: options.maxBufferedReply ?? 8 * 1024 * 1024,
    target: { host: options.host ?? "127.0.0.1", port: options.port },
    logCommand: (command) => keep(commands, command),
    logApplied: (entry) => keep(applied, entry),
  };

  // allowHalfOpen: the client's FIN is passed on as a FIN, and what is queued still reaches it.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const session = new Session(++accepted, client, core);
    open.add(session);
    client.on("close", () => open.delete(session));
  });
  const port = await listenOnLoopback(server);

  const proxy: ImapProxy = {
    port,
    get sessions() {
      return accepted;
    },
    get connections() {
      return open.size;
    },
    commands,
    applied,
    setRules(rules) {
      core.rules = [...rules];
    },
    dropAll() {
      for (const session of open) session.reset();
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of open) {
          session.client.destroy();
          session.upstream.destroy();
        }
      });
    },
    [Symbol.asyncDispose]() {
      return proxy.close();
    },
  };
  return proxy;
}
