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
    const planned = new Map<number, { meta: FetchMessageObject; plan: TextPartPlan }>();
    for (const meta of metas) {
      if (!meta.bodyStructure || !meta.headers) continue;
      planned.set(meta.uid, { meta, plan: planTextParts(meta.bodyStructure, options.maxTextBytes) });
    }

    const bodies = new Map<number, Map<string, Buffer>>();
    for (const [, group] of groupByParts(planned)) {
      const { keys, uids: groupUids } = group;
      if (keys.length === 0) continue;
      const rows = await client.fetchAll(groupUids.join(","), { uid: true, bodyParts: keys }, { uid: true });
      for (const row of rows) bodies.set(row.uid, row.bodyParts ?? new Map());
    }

    for (const uid of batch) {
      const entry = planned.get(uid);
      if (!entry) continue;
      const { raw, warnings } = assembleMessage(entry.meta.headers!, entry.plan, bodies.get(uid) ?? new Map());
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

/** Messages that need the same parts can share one FETCH command. */
function groupByParts(planned: Map<number, { plan: TextPartPlan }>): Map<string, { keys: TextPartPlan["fetch"]; uids: number[] }> {
  const groups = new Map<string, { keys: TextPartPlan["fetch"]; uids: number[] }>();
  for (const [uid, { plan }] of planned) {
    const signature = JSON.stringify(plan.fetch);
    const group = groups.get(signature);
    if (group) group.uids.push(uid);
    else groups.set(signature, { keys: plan.fetch, uids: [uid] });
  }
  return groups;
}

function toDate(value: Date | string | undefined): Date {
  if (value instanceof Date) return value;
  const parsed = value ? new Date(value) : new Date();
  return Number.isNaN(parsed.getTime()) ? new Date() : parsed;
}
