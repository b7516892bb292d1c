import type { FetchMessageObject, ImapFlow } from "imapflow";
import { planTextParts, readFetchedParts, type FetchedParts, type TextPartPlan } from "../mail/parts.ts";
import type { NormalizedMail } from "../mail/types.ts";

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
}

/** Most bytes of text parts one FETCH may bring back, so a batch of huge mails cannot exhaust memory. */
const fetchByteBudget = 16 * 1024 * 1024;

export interface FetchOptions {
  maxTextBytes: number;
  /** How many messages to read per FETCH round trip. */
  batchSize?: number;
  /** Decodes a round's messages; by default here, synchronously. The daemon hands them to a worker thread. */
  decode?: DecodeParts;
  /**
   * Asked for each message with text parts, given the mail decoded from its header alone (text
   * "", no html): read the text parts too? Without it, every message's text is read. The daemon
   * asks its rules, so mail that no rule reads the body of costs one FETCH of headers and nothing more.
   */
  needsBody?: (headerOnly: NormalizedMail, message: { uid: number; internalDate: Date }) => boolean;
  /** Told of mail asked for that the server no longer has (expunged or moved meanwhile), which is left out. */
  onGone?: (uids: number[]) => void;
}

/** Turns a round of fetched messages into mail, in the same order. Must not reject for bad mail. */
export type DecodeParts = (round: FetchedParts[]) => Promise<NormalizedMail[]>;

const decodeHere: DecodeParts = async (round) => round.map(readFetchedParts);

/**
 * UIDs strictly above `afterUid`, oldest first. `UID SEARCH n:*` matches the highest UID even when
 * n is past it (RFC 3501 §6.4.8 ranges are unordered), so the result is filtered.
 */
export async function listNewUids(client: ImapFlow, afterUid: number): Promise<number[]> {
  const found = await client.search({ uid: `${afterUid + 1}:*` }, { uid: true });
  if (!found) return [];
  return (found as number[]).filter((uid) => uid > afterUid).sort((a, b) => a - b);
}

/** UIDs of mail that arrived on or after `since` (IMAP SEARCH SINCE is by day), up to `maxUid`, oldest first. */
export async function listUidsSince(client: ImapFlow, since: Date, maxUid: number): Promise<number[]> {
  const found = await client.search({ since }, { uid: true });
  if (!found) return [];
  return (found as number[]).filter((uid) => uid <= maxUid).sort((a, b) => a - b);
}

/**
 * Reads messages in batches: one FETCH for headers and structure, then one FETCH per distinct set
 * of text parts. BODY.PEEK throughout, so nothing is marked \Seen; attachments are never fetched.
 * Messages expunged in between simply do not come back and are left out. The next batch is asked
 * for while the caller works on this one, so a long catch-up does not wait on a round trip per batch.
 */
export async function* fetchMessages(client: ImapFlow, uids: readonly number[], options: FetchOptions): AsyncGenerator<FetchedMessage> {
  for await (const batch of fetchBatches(client, uids, options)) yield* batch;
}

/** How many FETCH rounds are asked for ahead of the one the caller works on. */
const readAhead = 2;

/** fetchMessages() a batch at a time: each array is one FETCH round, in UID order. */
export async function* fetchBatches(client: ImapFlow, uids: readonly number[], options: FetchOptions): AsyncGenerator<FetchedMessage[]> {
  const batchSize = options.batchSize ?? 100;
  const pending: Promise<FetchedMessage[]>[] = [];
  let next = 0;
  const fill = (): void => {
    while (pending.length <= readAhead && next < uids.length) {
      const batch = uids.slice(next, next + batchSize);
      const read = readBatch(client, batch.join(","), inList(batch), options, batch);
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

/**
 * The mail above afterUid, read without a SEARCH first: one `UID FETCH afterUid+1:*` brings the
 * header and structure of whatever is new. For the few mails IDLE just announced; a backlog goes
 * through fetchBatches, a round at a time.
 */
export async function fetchNew(client: ImapFlow, afterUid: number, options: FetchOptions): Promise<FetchedMessage[]> {
  // `n:*` also matches the highest UID when n is past it (RFC 3501 §6.4.8), hence the filter.
  return readBatch(client, `${afterUid + 1}:*`, (uid) => uid > afterUid, options);
}

type Planned = { uid: number; meta: FetchMessageObject; plan: TextPartPlan | undefined };

async function readBatch(client: ImapFlow, range: string, wanted: (uid: number) => boolean, options: FetchOptions, asked?: readonly number[]): Promise<FetchedMessage[]> {
  const decode = options.decode ?? decodeHere;
  const metas = await client.fetchAll(range, { uid: true, internalDate: true, size: true, bodyStructure: true, headers: true }, { uid: true });
  const byUid = new Map<number, Planned>();
  for (const meta of metas) {
    // A server may split one message's items over several untagged FETCH replies (or add
    // flags-only ones when another client changes flags): merge by UID, keep what has content.
    if (!meta.uid) continue;
    // Dovecot answers NIL for a message expunged by another session that this one has not yet
    // been told about (imapflow hands that over as a non-Buffer): the message is gone.
    if (meta.headers !== undefined && !Buffer.isBuffer(meta.headers)) continue;
    const seen = byUid.get(meta.uid)?.meta;
    const merged = seen ? { ...seen, ...definedOnly(meta) } : meta;
    byUid.set(meta.uid, { uid: meta.uid, meta: merged, plan: merged.bodyStructure ? planTextParts(merged.bodyStructure, options.maxTextBytes) : undefined });
  }
  // A UID asked for but not returned was expunged or moved meanwhile: nothing to read.
  let found = [...byUid.values()].filter((p) => wanted(p.uid)).sort((a, b) => a.uid - b.uid);
  const missing = asked?.filter((uid) => !byUid.has(uid)) ?? [];
  if (missing.length > 0) options.onGone?.(missing);
  const header = (p: Planned): Buffer => p.meta.headers ?? Buffer.alloc(0);
  const hasText = (p: Planned): boolean => (p.plan?.fetch.length ?? 0) > 0;
  // Once per mail: without INTERNALDATE it is "now", which must read the same to needsBody and after.
  const arrived = new Map(found.map((p) => [p.uid, toDate(p.meta.internalDate)]));

  // With needsBody, every header is decoded first (a mail without text parts: all of it) and
  // only the mail it says yes to has its text fetched and is decoded again, whole.
  const mails = new Map<number, NormalizedMail>();
  let withText = found.filter(hasText);
  if (options.needsBody) {
    const firstPass = await decode(found.map((p) => ({ uid: p.uid, header: header(p), plan: p.plan && hasText(p) ? headerOnly(p.plan) : p.plan, bodies: new Map() })));
    found.forEach((p, i) => mails.set(p.uid, firstPass[i]!));
    withText = withText.filter((p) => options.needsBody!(mails.get(p.uid)!, { uid: p.uid, internalDate: arrived.get(p.uid)! }));
  }

  const bodies = new Map<number, Map<string, Buffer>>();
  // A part that comes back NIL, or a message that does not come back at all, may have been expunged
  // by another session after we read its header (Dovecot answers NIL then), but some servers send
  // NIL for an empty part too: which it is gets asked below, and NIL reads as empty meanwhile.
  const unsure = new Set<number>();
  for (const group of groupByParts(withText)) {
    const rows = await client.fetchAll(group.uids.join(","), { uid: true, bodyParts: group.keys }, { uid: true });
    for (const row of rows) {
      if (!row.uid || !row.bodyParts) continue;
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
  const gone = unsure.size > 0 ? await goneOf(client, [...unsure]) : [];
  if (gone.length > 0) {
    options.onGone?.(gone);
    const left = new Set(gone);
    found = found.filter((p) => !left.has(p.uid));
    withText = withText.filter((p) => !left.has(p.uid));
  }
  const whole = options.needsBody ? withText : found;
  const decoded = whole.length > 0 ? await decode(whole.map((p) => ({ uid: p.uid, header: header(p), plan: p.plan, bodies: bodies.get(p.uid) ?? new Map() }))) : [];
  whole.forEach((p, i) => mails.set(p.uid, decoded[i]!));
  const read = new Set(withText.map((p) => p.uid));
  return found.map((p) => ({ uid: p.uid, internalDate: arrived.get(p.uid)!, size: p.meta.size ?? 0, mail: mails.get(p.uid)!, bodyRead: read.has(p.uid) || !hasText(p) }));
}

/** The plan with its text parts left out: decoding it reads the header alone. */
/**
 * Which of these UIDs the server no longer has. The NOOP first: a session is told of another's
 * expunges only at a command like it, and until then the server still answers for the message.
 */
async function goneOf(client: ImapFlow, uids: number[]): Promise<number[]> {
  await client.noop();
  const still = new Set((await client.search({ uid: uids.join(",") }, { uid: true })) || []);
  return uids.filter((uid) => !still.has(uid));
}

function headerOnly(plan: TextPartPlan): TextPartPlan {
  return { ...plan, parts: [], omitted: [], fetch: [] };
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

function inList(uids: readonly number[]): (uid: number) => boolean {
  const set = new Set(uids);
  return (uid) => set.has(uid);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function toDate(value: Date | string | undefined): Date {
  if (value instanceof Date) return value;
  const parsed = value ? new Date(value) : new Date();
  return Number.isNaN(parsed.getTime()) ? new Date() : parsed;
}
