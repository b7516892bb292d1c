import type { FetchMessageObject, ImapFlow } from "imapflow";
import { assembleMessage, planTextParts, type TextPartPlan } from "../mail/parts.ts";

/** One new message as read from the server: metadata plus a small MIME message of its text parts. */
export interface FetchedMessage {
  uid: number;
  /** Server arrival time (INTERNALDATE). */
  internalDate: Date;
  /** Full size on the server (RFC822.SIZE); we read only a part of it. */
  size: number;
  /** Header and text parts only, reassembled into a parseable message. */
  raw: Buffer;
  warnings: string[];
}

/** Most bytes of text parts one FETCH may bring back, so a batch of huge mails cannot exhaust memory. */
const fetchByteBudget = 16 * 1024 * 1024;

export interface FetchOptions {
  maxTextBytes: number;
  /** How many messages to read per FETCH round trip. */
  batchSize?: number;
}

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
 * Messages expunged in between simply do not come back and are left out.
 */
export async function* fetchMessages(client: ImapFlow, uids: readonly number[], options: FetchOptions): AsyncGenerator<FetchedMessage> {
  const batchSize = options.batchSize ?? 100;
  for (let start = 0; start < uids.length; start += batchSize) {
    const batch = uids.slice(start, start + batchSize);
    const metas = await client.fetchAll(batch.join(","), { uid: true, internalDate: true, size: true, bodyStructure: true, headers: true }, { uid: true });
    const planned = new Map<number, { meta: FetchMessageObject; plan: TextPartPlan | undefined }>();
    for (const meta of metas) {
      // A server may split one message's items over several untagged FETCH replies (or add
      // flags-only ones when another client changes flags): merge by UID, keep what has content.
      if (!meta.uid) continue;
      // Dovecot answers NIL for a message expunged by another session that this one has not yet
      // been told about (imapflow hands that over as a non-Buffer): the message is gone.
      if (meta.headers !== undefined && !Buffer.isBuffer(meta.headers)) continue;
      const seen = planned.get(meta.uid)?.meta;
      const merged = seen ? { ...seen, ...definedOnly(meta) } : meta;
      planned.set(meta.uid, { meta: merged, plan: merged.bodyStructure ? planTextParts(merged.bodyStructure, options.maxTextBytes) : undefined });
    }

    const bodies = new Map<number, Map<string, Buffer>>();
    for (const group of groupByParts(planned)) {
      const rows = await client.fetchAll(group.uids.join(","), { uid: true, bodyParts: group.keys }, { uid: true });
      for (const row of rows) {
        if (!row.uid || !row.bodyParts) continue;
        const into = bodies.get(row.uid) ?? new Map<string, Buffer>();
        for (const [key, value] of row.bodyParts) into.set(key, value);
        bodies.set(row.uid, into);
      }
    }

    for (const uid of batch) {
      const entry = planned.get(uid);
      // Not returned at all: expunged or moved since the SEARCH. Nothing to read.
      if (!entry) continue;
      if (!entry.plan) {
        // Unreadable structure: still announce what the header says, and say why the body is empty.
        yield {
          uid,
          internalDate: toDate(entry.meta.internalDate),
          size: entry.meta.size ?? 0,
          raw: Buffer.from(entry.meta.headers ?? ""),
          warnings: [`the server sent no usable BODYSTRUCTURE for UID ${uid}; only the header was read`],
        };
        continue;
      }
      const { raw, warnings } = assembleMessage(entry.meta.headers ?? Buffer.alloc(0), entry.plan, bodies.get(uid) ?? new Map());
      yield {
        uid,
        internalDate: toDate(entry.meta.internalDate),
        size: entry.meta.size ?? raw.length,
        raw,
        warnings,
      };
    }
  }
}

/**
 * Messages that need the same parts share one FETCH command, split so that no command brings back
 * more than the byte budget.
 */
function groupByParts(planned: Map<number, { plan: TextPartPlan | undefined }>): { keys: TextPartPlan["fetch"]; uids: number[] }[] {
  const groups = new Map<string, { keys: TextPartPlan["fetch"]; uids: number[]; bytes: number }[]>();
  for (const [uid, { plan }] of planned) {
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
