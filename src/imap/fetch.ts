import type { Readable } from "node:stream";
import type { FetchMessageObject, ImapFlow } from "imapflow";
import { headerCutWarning } from "../mail/header-block.ts";
import { htmlAlternativesPlan, planTextParts, readFetchedParts, type FetchedParts, type TextPartPlan } from "../mail/parts.ts";
import type { NormalizedMail } from "../mail/types.ts";
import type { DkimSignature } from "../rules/types.ts";

/** One new message as read from the server: metadata plus its header and text parts, decoded. */
export interface FetchedMessage {
  uid: number;
  /** Server arrival time (INTERNALDATE). */
  internalDate: Date;
  /** Full size on the server (RFC822.SIZE); we read only a part of it. */
  size: number;
  /** Decoded from the header and text parts only; `mail.warnings` says what could not be read. */
  mail: NormalizedMail;
  /** False when needsBody said no: `mail.text` and `mail.html` are empty because they were not read. */
  bodyRead: boolean;
  /** Its DKIM signatures, verified over the whole message, for mail WholeReading wanted. */
  dkim?: readonly DkimSignature[];
}

/**
 * Mail read whole, only where the caller asks: a DKIM signature's body hash covers every byte,
 * attachments included. The message is streamed to `read` (fetched in pieces of wholeChunkBytes),
 * never held.
 */
export interface WholeReading {
  /** Asked with the mail as decoded (its header, and its text when that was read). */
  wanted(mail: NormalizedMail, message: { uid: number; internalDate: Date; bodyRead: boolean }): boolean;
  /** Verifies the signatures; throws ReadAgainLater when it cannot decide yet (a DNS lookup failed). */
  read(source: Readable | Buffer): Promise<readonly DkimSignature[]>;
}

/** WholeReading.read cannot decide yet: the mail is left unread and read again later (then set aside). */
export class ReadAgainLater extends Error {}

/** Most bytes of text parts one FETCH may bring back, so a batch of huge mails cannot exhaust memory. */
const fetchByteBudget = 16 * 1024 * 1024;

/** Default cap on the header read per message: more than any real header, far less than an attack. */
export const defaultMaxHeaderBytes = 256 * 1024;

export interface FetchOptions {
  maxTextBytes: number;
  /** The header is read up to this many bytes (BODY.PEEK[HEADER]<0.n>); default 256 KiB. A longer one is cut, with a warning on the mail. */
  maxHeaderBytes?: number;
  /** How many messages to read per FETCH round trip. */
  batchSize?: number;
  /** How many FETCH rounds are asked for ahead of the one the caller works on; default 2. */
  readAhead?: number;
  /** Decodes a round's messages; by default here, synchronously. The daemon hands them to a worker thread. */
  decode?: DecodeParts;
  /**
   * Asked for each message with text parts, given the mail decoded from its header alone (text
   * "", no html): read the text parts too? Without it, every message's text is read. The daemon
   * asks its rules, so mail that no rule reads the body of costs one FETCH of headers and nothing more.
   */
  needsBody?: (headerOnly: NormalizedMail, message: { uid: number; internalDate: Date }) => boolean;
  /**
   * Asked for each message whose text was read and whose multipart/alternative also has HTML (not
   * fetched with the text), given the mail decoded with its plain text: read the HTML too? Those
   * said yes to have their HTML parts fetched in one more FETCH (for them alone) and are decoded
   * again with it. Without it, such HTML is never read.
   */
  needsHtml?: (withoutHtml: NormalizedMail, message: { uid: number; internalDate: Date }) => boolean;
  /** Mail to read whole as well (DKIM verification); none by default. */
  whole?: WholeReading;
  /** Told of mail asked for that the server no longer has (expunged or moved meanwhile, confirmed by a UID SEARCH), which is left out. */
  onGone?: (uids: number[]) => void;
}

/** A mail that is there but could not be read this time, and why. */
export interface UnreadMail {
  uid: number;
  reason: string;
  /** The mail was read, but a check on it could not be made yet (DNS down): tried again after a longer wait. */
  checkLater?: true;
}

/** What one FETCH round brought: the mail read, in UID order, and what could not be read. */
export interface ReadRound {
  mails: FetchedMessage[];
  /** Mail the server still has but did not hand over (or broke on), in UID order. */
  unread: UnreadMail[];
  /** UIDs the server answered for without being asked: ignored, never taken as read. */
  stray: number[];
}

/** Turns a round of fetched messages into mail, in the same order. Must not reject for bad mail. */
export type DecodeParts = (round: FetchedParts[]) => Promise<NormalizedMail[]>;

const decodeHere: DecodeParts = async (round) => round.map(readFetchedParts);

/**
 * UIDs strictly above `afterUid`, oldest first. `UID SEARCH n:*` matches the highest UID even when
 * n is past it (RFC 3501 §6.4.8 ranges are unordered), so the result is filtered.
 */
export async function listNewUids(client: ImapFlow, afterUid: number): Promise<number[]> {
  const found = searchAnswer(client, await client.search({ uid: `${afterUid + 1}:*` }, { uid: true }), "new mail");
  return found.filter((uid) => uid > afterUid).sort((a, b) => a - b);
}

/** UIDs of mail that arrived on or after `since` (IMAP SEARCH SINCE is by day), up to `maxUid`, oldest first. */
export async function listUidsSince(client: ImapFlow, since: Date, maxUid: number): Promise<number[]> {
  const found = searchAnswer(client, await client.search({ since }, { uid: true }), "mail since the last checkpoint");
  return found.filter((uid) => uid <= maxUid).sort((a, b) => a - b);
}

/**
 * The UIDs a UID SEARCH found. imapflow answers `false` when the server refused the SEARCH (NO,
 * BAD) and `undefined` when the connection was gone: neither means "none", and taking it so would
 * pass over mail without a word. A refusal is the server's bug; a lost connection, the network's.
 */
function searchAnswer(client: ImapFlow, found: number[] | false | undefined, what: string): number[] {
  if (Array.isArray(found)) return found;
  if (!client.usable) throw Object.assign(new Error(`the connection closed during UID SEARCH for ${what}`), { code: "NoConnection" });
  throw Object.assign(new Error(`the server refused UID SEARCH for ${what}; mailbell cannot tell which mail is there`), { code: "ServerAnswer" });
}

/**
 * Reads messages in batches: one FETCH for headers and structure, then one FETCH per distinct set
 * of text parts. BODY.PEEK throughout, so nothing is marked \Seen; attachments are never fetched.
 * Messages expunged in between simply do not come back and are left out. The next batch is asked
 * for while the caller works on this one, so a long catch-up does not wait on a round trip per batch.
 * Mail that cannot be read is left out here; fetchBatches() says which.
 */
export async function* fetchMessages(client: ImapFlow, uids: readonly number[], options: FetchOptions): AsyncGenerator<FetchedMessage> {
  for await (const batch of fetchBatches(client, uids, options)) yield* batch.mails;
}

/** fetchMessages() a batch at a time: each round is one FETCH batch, in UID order. */
export async function* fetchBatches(client: ImapFlow, uids: readonly number[], options: FetchOptions): AsyncGenerator<ReadRound> {
  const batchSize = options.batchSize ?? 100;
  const readAhead = options.readAhead ?? 2;
  const pending: Promise<ReadRound>[] = [];
  let next = 0;
  const fill = (): void => {
    while (pending.length <= readAhead && next < uids.length) {
      const read = readBatch(client, uids.slice(next, next + batchSize), options);
      // If the connection drops, every read ahead fails before anyone awaits it; that must not
      // count as an unhandled rejection. The failure still reaches whoever awaits it.
      read.catch(() => {});
      pending.push(read);
      next += batchSize;
    }
  };
  fill();
  while (pending.length > 0) {
    const batch = await pending.shift()!;
    fill();
    yield batch;
  }
}

type Planned = { uid: number; meta: FetchMessageObject; plan: TextPartPlan | undefined; structureWarning?: string };

/**
 * Reads the mail of `asked` (UIDs the server listed): header and structure, then the text parts the
 * mail needs. Each step is its own function below; this one only says in which order they run.
 * Only UIDs that were asked for are ever taken as read.
 */
async function readBatch(client: ImapFlow, asked: readonly number[], options: FetchOptions): Promise<ReadRound> {
  const headers = await readHeaders(client, asked, options);
  const { planned, unread } = headers;
  const { mails, gone } = await readMails(client, planned, options);
  if (gone.length > 0) options.onGone?.(gone);
  const whole = options.whole ? await readWholeMails(client, mails, options.whole, wholeChunkBytes(options), options.onGone) : { mails, unread: [] };
  return { mails: whole.mails, unread: [...unread, ...whole.unread].sort((a, b) => a.uid - b.uid), stray: headers.stray };
}

function headerWasCut(mail: NormalizedMail): boolean {
  return mail.warnings.some((w) => w.startsWith(headerCutWarning));
}

/**
 * Bytes of a whole message asked for per partial FETCH: as much as one reply may carry (the
 * connection refuses a literal over max(maxHeaderBytes, maxTextBytes) and a margin, see
 * replyLimits), so a 50 MB mail is ~200 round trips at the default 256 KiB, not ~800 at imapflow's 64 KiB.
 */
function wholeChunkBytes(options: Pick<FetchOptions, "maxTextBytes" | "maxHeaderBytes">): number {
  return Math.max(64 * 1024, options.maxTextBytes, options.maxHeaderBytes ?? defaultMaxHeaderBytes);
}

/**
 * Most bytes of whole mail one FETCH may bring back, whatever sizes the server states: each mail of
 * a group is asked for up to the group's `partial` bytes, and a group holds at most this many of
 * them. With the group after it asked for ahead, at most twice this is held per round.
 */
export const wholeGroupBytes = 2 * 1024 * 1024;

/** Small whole mails fetched in one FETCH: their UIDs, and the bytes asked of each (BODY.PEEK[]<0.partial>). */
export interface WholeGroup {
  uids: number[];
  partial: number;
}

/**
 * Groups the mail under one piece (chunkSize) by its RFC822.SIZE, but bounds each group by what is
 * asked for, not by what the server says: every mail of a group is asked for up to `partial` bytes
 * (its stated size, an eighth more and 1 KiB, for servers that count a line end as one byte and
 * send two), and uids × partial stays within `budget`. A mail bigger than stated comes back cut at `partial` and
 * is streamed instead; mail at or over chunkSize, asked for over `budget`, or without a size, is streamed.
 */
export function planWholeGroups(mails: readonly { uid: number; size: number }[], chunkSize: number, budget = wholeGroupBytes): WholeGroup[] {
  const groups: WholeGroup[] = [];
  let open: WholeGroup | undefined;
  for (const m of mails) {
    const partial = Math.min(chunkSize, m.size + Math.ceil(m.size / 8) + 1024);
    // chunkSize can be up to 16 MiB (maxTextBytes): a mail asked for over the budget is streamed, even alone.
    if (m.size <= 0 || m.size >= chunkSize || partial > budget) continue;
    const widened = Math.max(open?.partial ?? 0, partial);
    if (open && (open.uids.length + 1) * widened <= budget) open.partial = widened;
    else groups.push((open = { uids: [], partial }));
    open.uids.push(m.uid);
  }
  return groups;
}

/**
 * The mail `whole` wants, through its read(), in UID order; mail it cannot decide on yet is unread.
 * Mail under one piece (nearly all) comes whole in FETCHes of many at once, the next group asked
 * for while this one is verified, so a catch-up does not wait a round trip per mail; bigger mail is
 * streamed piece by piece (never held whole).
 */
async function readWholeMails(client: ImapFlow, mails: FetchedMessage[], whole: WholeReading, chunkSize: number, onGone: FetchOptions["onGone"]): Promise<{ mails: FetchedMessage[]; unread: UnreadMail[] }> {
  const kept: FetchedMessage[] = [];
  const unread: UnreadMail[] = [];
  // A mail whose header was cut is not read whole: the verifier would hold its endless header.
  const wanted = new Set(mails.filter((m) => !headerWasCut(m.mail) && whole.wanted(m.mail, m)).map((m) => m.uid));
  const groups = new WholeGroups(client, mails.filter((m) => wanted.has(m.uid)), chunkSize);
  try {
    for (const m of mails) {
      if (!wanted.has(m.uid)) {
        kept.push(m);
        continue;
      }
      const content = (await groups.contentOf(m.uid)) ?? (await client.download(String(m.uid), undefined, { uid: true, chunkSize })).content;
      if (!content) {
        // Expunged or moved since its header was read: left out like other mail gone meanwhile.
        if ((await goneOf(client, [m.uid])).length > 0) {
          onGone?.([m.uid]);
          continue;
        }
        unread.push({ uid: m.uid, reason: "the server did not return the whole message, which is needed to check its DKIM signature" });
        continue;
      }
      try {
        kept.push({ ...m, dkim: await whole.read(content) });
      } catch (err) {
        if (!Buffer.isBuffer(content)) content.destroy();
        if (!(err instanceof ReadAgainLater)) throw err;
        unread.push({ uid: m.uid, reason: err.message, checkLater: true });
        // The round stops at this mail anyway (the mail after it is handed over only after it): read no more whole.
        break;
      }
    }
  } finally {
    groups.forget();
  }
  return { mails: kept, unread };
}

/**
 * Small whole mails fetched in groups (planWholeGroups: at most wholeGroupBytes asked for a FETCH),
 * each group asked for when the one before it is first needed. A mail the group did not bring back
 * whole (bigger than stated, NIL, left out) is for the caller to stream.
 */
class WholeGroups {
  private readonly groupOf = new Map<number, number>();
  private readonly groups: WholeGroup[];
  private readonly fetched = new Map<number, Promise<Map<number, Buffer>>>();
  private readonly client: ImapFlow;

  constructor(client: ImapFlow, mails: readonly FetchedMessage[], chunkSize: number) {
    this.client = client;
    this.groups = planWholeGroups(mails, chunkSize);
    this.groups.forEach((g, i) => g.uids.forEach((uid) => this.groupOf.set(uid, i)));
  }

  /** The mail whole, or undefined when it is to be streamed. */
  async contentOf(uid: number): Promise<Buffer | undefined> {
    const group = this.groupOf.get(uid);
    if (group === undefined) return undefined;
    const found = this.fetch(group);
    this.fetch(group + 1);
    // Done with the groups before it: let them go.
    this.fetched.delete(group - 1);
    const source = (await found).get(uid);
    // As long as asked for: the mail may go on past it (it is bigger than the server said).
    return source && source.length < this.groups[group]!.partial ? source : undefined;
  }

  /** Drops what was fetched ahead and not used (a round that stopped early). */
  forget(): void {
    this.fetched.clear();
  }

  private fetch(group: number): Promise<Map<number, Buffer>> {
    const planned = this.groups[group];
    if (!planned) return Promise.resolve(new Map());
    let found = this.fetched.get(group);
    if (!found) {
      const wanted = new Set(planned.uids);
      found = this.client.fetchAll(planned.uids.join(","), { uid: true, source: { maxLength: planned.partial } }, { uid: true }).then((rows) => new Map(rows.filter((r) => wanted.has(r.uid) && Buffer.isBuffer(r.source)).map((r) => [r.uid, r.source!])));
      // Asked for ahead: if the connection drops first, the failure still reaches whoever awaits it.
      found.catch(() => {});
      this.fetched.set(group, found);
    }
    return found;
  }
}

/**
 * Header, structure, size and arrival time of the asked mail. What the server leaves out is looked
 * for again: gone (confirmed by UID SEARCH) is reported gone; still there is read once more without
 * its structure (a BODYSTRUCTURE the parser cannot take loses the whole reply); what still does not
 * come back is unread, for the caller to count and retry.
 */
async function readHeaders(client: ImapFlow, asked: readonly number[], options: FetchOptions): Promise<{ planned: Planned[]; unread: UnreadMail[]; stray: number[] }> {
  const maxHeaderBytes = options.maxHeaderBytes ?? defaultMaxHeaderBytes;
  const wanted = new Set(asked);
  const first = await fetchMeta(client, asked, maxHeaderBytes, true, options.maxTextBytes);
  const byUid = first.byUid;
  const stray = first.stray;
  let missing = asked.filter((uid) => !byUid.has(uid));
  if (missing.length > 0) {
    const gone = await goneOf(client, missing);
    if (gone.length > 0) options.onGone?.(gone);
    const left = new Set(gone);
    missing = missing.filter((uid) => !left.has(uid));
  }
  const unread: UnreadMail[] = [];
  if (missing.length > 0) {
    const again = await fetchMeta(client, missing, maxHeaderBytes, false, options.maxTextBytes);
    stray.push(...again.stray);
    for (const uid of missing) {
      const got = again.byUid.get(uid);
      if (got) byUid.set(uid, { ...got, structureWarning: `the server's BODYSTRUCTURE for UID ${uid} could not be read; only the header was read` });
      else unread.push({ uid, reason: "the server did not return it in its answer to FETCH, though UID SEARCH says it is still there" });
    }
  }
  const planned = [...byUid.values()].filter((p) => wanted.has(p.uid)).sort((a, b) => a.uid - b.uid);
  return { planned, unread, stray: [...new Set(stray)].sort((a, b) => a - b) };
}

/** One FETCH of metadata and the capped header; replies are merged by UID, replies for other UIDs set apart. */
async function fetchMeta(client: ImapFlow, uids: readonly number[], maxHeaderBytes: number, withStructure: boolean, maxTextBytes: number): Promise<{ byUid: Map<number, Planned>; stray: number[] }> {
  const wanted = new Set(uids);
  const query = { uid: true, internalDate: true, size: true, bodyStructure: withStructure, bodyParts: [{ key: "HEADER", maxLength: maxHeaderBytes }] };
  const metas = await client.fetchAll(uids.join(","), query, { uid: true });
  const byUid = new Map<number, Planned>();
  const stray: number[] = [];
  for (const meta of metas) {
    if (!meta.uid) continue;
    // A reply for a UID that was not asked for (a server bug) must not move anything forward. One
    // without a header is another client's flag change, told unasked (RFC 3501 §7.4.2): not a bug.
    if (!wanted.has(meta.uid)) {
      if (meta.headers !== undefined) stray.push(meta.uid);
      continue;
    }
    // Dovecot answers NIL for a message expunged by another session that this one has not yet
    // been told about (imapflow hands that over as a non-Buffer): looked for again as missing.
    if (meta.headers !== undefined && !Buffer.isBuffer(meta.headers)) continue;
    // A server may split one message's items over several untagged FETCH replies (or add
    // flags-only ones when another client changes flags): merge by UID, keep what has content.
    const seen = byUid.get(meta.uid)?.meta;
    const merged = seen ? { ...seen, ...definedOnly(meta) } : meta;
    byUid.set(meta.uid, { uid: meta.uid, meta: merged, plan: merged.bodyStructure ? planTextParts(merged.bodyStructure, maxTextBytes) : undefined });
  }
  // Flags-only replies carry no header: such a mail was not really returned.
  for (const [uid, p] of byUid) if (!Buffer.isBuffer(p.meta.headers)) byUid.delete(uid);
  return { byUid, stray };
}

/**
 * The text of the planned mail that needs it, and every mail decoded. With needsBody, every header
 * is decoded first (a mail without text parts: all of it) and only the mail it says yes to has its
 * text fetched and is decoded again, whole.
 */
async function readMails(client: ImapFlow, planned: Planned[], options: FetchOptions): Promise<{ mails: FetchedMessage[]; gone: number[] }> {
  const decode = options.decode ?? decodeHere;
  const maxHeaderBytes = options.maxHeaderBytes ?? defaultMaxHeaderBytes;
  const hasText = (p: Planned): boolean => (p.plan?.fetch.length ?? 0) > 0;
  const parts = (p: Planned, plan: TextPartPlan | undefined, bodies: ReadonlyMap<string, Buffer>): FetchedParts => ({
    uid: p.uid,
    header: p.meta.headers ?? Buffer.alloc(0),
    plan,
    bodies,
    headerLimit: maxHeaderBytes,
    ...(p.structureWarning ? { structureWarning: p.structureWarning } : {}),
  });
  // Once per mail: without INTERNALDATE it is "now", which must read the same to needsBody and after.
  const arrived = new Map(planned.map((p) => [p.uid, toDate(p.meta.internalDate)]));
  const mails = new Map<number, NormalizedMail>();
  let found = planned;
  let withText = found.filter(hasText);
  if (options.needsBody) {
    const firstPass = await decode(found.map((p) => parts(p, p.plan && hasText(p) ? headerOnly(p.plan) : p.plan, new Map())));
    found.forEach((p, i) => mails.set(p.uid, firstPass[i]!));
    withText = withText.filter((p) => options.needsBody!(mails.get(p.uid)!, { uid: p.uid, internalDate: arrived.get(p.uid)! }));
  }
  const { bodies, unsure } = await readTextBodies(client, withText);
  const gone = unsure.length > 0 ? await goneOf(client, unsure) : [];
  if (gone.length > 0) {
    const left = new Set(gone);
    found = found.filter((p) => !left.has(p.uid));
    withText = withText.filter((p) => !left.has(p.uid));
  }
  const whole = options.needsBody ? withText : found;
  const decoded = whole.length > 0 ? await decode(whole.map((p) => parts(p, p.plan, bodies.get(p.uid) ?? new Map()))) : [];
  whole.forEach((p, i) => mails.set(p.uid, decoded[i]!));
  const read = new Set(withText.map((p) => p.uid));
  if (options.needsHtml) {
    const needsHtml = options.needsHtml;
    const withHtml = withText.filter((p) => p.plan && p.plan.alternatives.length > 0 && needsHtml(mails.get(p.uid)!, { uid: p.uid, internalDate: arrived.get(p.uid)! }));
    if (withHtml.length > 0) {
      const again = await readHtmlAlternatives(client, withHtml, bodies);
      const redecoded = await decode(withHtml.map((p) => parts(p, p.plan, again.get(p.uid) ?? new Map())));
      withHtml.forEach((p, i) => mails.set(p.uid, redecoded[i]!));
    }
  }
  return {
    mails: found.map((p) => ({ uid: p.uid, internalDate: arrived.get(p.uid)!, size: p.meta.size ?? 0, mail: mails.get(p.uid)!, bodyRead: read.has(p.uid) || !hasText(p) })),
    gone,
  };
}

/**
 * The text parts, one FETCH per set of parts. A part that comes back NIL, or a message that does
 * not come back at all, may have been expunged by another session after we read its header
 * (Dovecot answers NIL then), but some servers send NIL for an empty part too: such mail is
 * `unsure`, for the caller to ask about, and NIL reads as empty meanwhile.
 */
async function readTextBodies(client: ImapFlow, withText: readonly Planned[]): Promise<{ bodies: Map<number, Map<string, Buffer>>; unsure: number[] }> {
  const bodies = new Map<number, Map<string, Buffer>>();
  const unsure = new Set<number>();
  const wanted = new Set(withText.map((p) => p.uid));
  for (const group of groupByParts(withText)) {
    const rows = await client.fetchAll(group.uids.join(","), { uid: true, bodyParts: group.keys }, { uid: true });
    for (const row of rows) {
      if (!row.uid || !row.bodyParts || !wanted.has(row.uid)) continue;
      const into = bodies.get(row.uid) ?? new Map<string, Buffer>();
      for (const [key, value] of row.bodyParts) {
        if (Buffer.isBuffer(value)) into.set(key, value);
        else {
          into.set(key, Buffer.alloc(0));
          unsure.add(row.uid);
        }
      }
      bodies.set(row.uid, into);
    }
  }
  for (const p of withText) if (!bodies.has(p.uid)) unsure.add(p.uid);
  return { bodies, unsure: [...unsure] };
}

/**
 * The HTML alternatives of mail a rule wants them for, added to its text bodies: one more FETCH per
 * set of parts, for this mail alone. A part that comes back NIL (the mail expunged meanwhile, or an
 * empty part) reads as no HTML: the mail stays read from its plain text.
 */
async function readHtmlAlternatives(client: ImapFlow, withHtml: readonly Planned[], bodies: ReadonlyMap<number, ReadonlyMap<string, Buffer>>): Promise<Map<number, Map<string, Buffer>>> {
  const { bodies: html } = await readTextBodies(client, withHtml.map((p) => ({ ...p, plan: htmlAlternativesPlan(p.plan!) })));
  return new Map(withHtml.map((p) => [p.uid, new Map([...(bodies.get(p.uid) ?? []), ...(html.get(p.uid) ?? [])])]));
}

/** The plan with its text parts left out: decoding it reads the header alone. */
/**
 * Which of these UIDs the server no longer has. The NOOP first: a session is told of another's
 * expunges only at a command like it, and until then the server still answers for the message.
 */
async function goneOf(client: ImapFlow, uids: number[]): Promise<number[]> {
  await client.noop();
  const still = new Set(searchAnswer(client, await client.search({ uid: uids.join(",") }, { uid: true }), "mail it did not return"));
  return uids.filter((uid) => !still.has(uid));
}

function headerOnly(plan: TextPartPlan): TextPartPlan {
  return { ...plan, parts: [], omitted: [], fetch: [], alternatives: [] };
}

/**
 * Messages that need the same parts share one FETCH command, split so that no command brings back
 * more than the byte budget.
 */
function groupByParts(planned: readonly Planned[]): { keys: TextPartPlan["fetch"]; uids: number[] }[] {
  const groups = new Map<string, { keys: TextPartPlan["fetch"]; uids: number[]; bytes: number }[]>();
  for (const { uid, plan } of planned) {
    if (!plan || plan.fetch.length === 0) continue;
    const bytes = plan.parts.reduce((n, p) => n + Math.min(p.size ?? plan.maxTextBytes, plan.maxTextBytes), 0);
    const signature = JSON.stringify(plan.fetch);
    const chunks = groups.get(signature) ?? [];
    const last = chunks.at(-1);
    if (last && last.bytes + bytes <= fetchByteBudget) {
      last.uids.push(uid);
      last.bytes += bytes;
    } else chunks.push({ keys: plan.fetch, uids: [uid], bytes });
    groups.set(signature, chunks);
  }
  return [...groups.values()].flat();
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function toDate(value: Date | string | undefined): Date {
  if (value instanceof Date) return value;
  const parsed = value ? new Date(value) : new Date();
  return Number.isNaN(parsed.getTime()) ? new Date() : parsed;
}
