/**
 * Reads the mail already in the watched mailboxes in a range, as the daemon's watcher reads new
 * mail (src/imap/fetch.ts: header first, text only where a rule needs it, whole only for
 * verify.dkim), for `mailbell backfill` and `mailbell totals rebuild`. Every mailbox is searched
 * first, so progress knows the total; then each is read in FETCH batches, handed over a batch at a
 * time. Mailboxes are opened read-only (EXAMINE): reading changes nothing on the server, and no
 * checkpoint is read or moved.
 */
import type { ImapFlow } from "imapflow";
import type { LoadedConfig } from "../config/load.ts";
import type { AccountConfig } from "../imap/config.ts";
import { classifyImapError, closeQuietly, createImapClient, endpointOf, type ImapAccount } from "../imap/client.ts";
import { watchContext } from "../imap/context.ts";
import { fetchBatches, type FetchOptions } from "../imap/fetch.ts";
import type { Logger } from "../log.ts";
import type { MailAt } from "../plan/plan.ts";
import { appliesIn, type CompiledRule } from "../rules/rules.ts";
import type { DkimVerifier } from "../verify/dkim.ts";
import { mailReading } from "../daemon/run.ts";
import { inRange, searchDates, type ArrivalRange } from "./range.ts";
import { searchFor, type Narrowing } from "./search.ts";

export interface ReadSource {
  loaded: LoadedConfig;
  /** The accounts as they log in (secrets resolved), by name. */
  accounts: ReadonlyMap<string, ImapAccount>;
  /** The rules in play: only mailboxes where one can match are read. */
  rules: readonly CompiledRule[];
  dkim: DkimVerifier | undefined;
  logger: Logger;
  signal: AbortSignal;
  /** Mails per FETCH; default 100. */
  batchSize?: number;
  /** Search by dates only (--search dates): for a server whose SEARCH does not match substrings. */
  searchDatesOnly?: boolean;
  /** Mailboxes read besides the watched ones where a rule applies (a rule's move destination), with the rules in play there. */
  alsoRead?: readonly { account: string; mailbox: string; rules: readonly CompiledRule[] }[];
}

/** One mailbox's search: what it asked and how many UIDs it found. */
export interface MailboxSearch {
  account: string;
  mailbox: string;
  uidValidity: number;
  uids: number[];
  narrowing: Narrowing;
}

/** What reading found besides the mail handed over. */
export interface ReadTally {
  /** Mails the searches found (a superset: a day wider, and FROM/SUBJECT as substrings). */
  found: number;
  /** Mails read from the server. */
  read: number;
  /** Of those, in the range by arrival time: handed over. */
  inRange: number;
  /** Mail the server has but did not hand over, or whose DKIM key lookup failed (DNS down), with why. */
  unread: { account: string; mailbox: string; uid: number; reason: string }[];
  searches: MailboxSearch[];
}

export interface ReadHooks {
  /** A batch of mail in range, in UID order: commit it before returning. */
  onBatch(batch: MailAt[]): void;
  /** Once the searches are done: how many mails will be read. */
  onFound?(total: number): void;
  /** After each batch: mails read so far (in range or not). */
  onRead?(done: number): void;
}

/** Reads every watched mailbox where a rule in play can match, in the range; stops between batches when signal aborts. */
export async function readRange(source: ReadSource, range: ArrivalRange, hooks: ReadHooks): Promise<ReadTally> {
  const tally: ReadTally = { found: 0, read: 0, inRange: 0, unread: [], searches: [] };
  const { config } = source.loaded;
  const accounts: { account: AccountConfig; searches: MailboxSearch[] }[] = [];
  // A session per account to search, closed after, and one to read when the account's turn comes:
  // a session left idle while other accounts are read would outlast the server's autologout.
  for (const account of config.accounts) {
    const also = (source.alsoRead ?? []).filter((a) => a.account === account.name).map((a) => a.mailbox);
    const mailboxes = [...new Set([...account.mailboxes.filter((mailbox) => rulesIn(source, account.name, mailbox).length > 0), ...also])];
    if (mailboxes.length === 0) continue;
    const searches = await withSession(source, account, async (client) => {
      const found: MailboxSearch[] = [];
      // A move destination the rule never moved mail to may not exist yet: nothing there to read.
      const existing = also.length > 0 ? new Set((await client.list()).map((m) => m.path)) : undefined;
      for (const mailbox of mailboxes) {
        if (also.includes(mailbox) && !account.mailboxes.includes(mailbox) && !existing!.has(mailbox)) continue;
        found.push(await searchMailbox(client, source, account.name, mailbox, range));
      }
      return found;
    });
    accounts.push({ account, searches });
    tally.searches.push(...searches);
    tally.found += searches.reduce((n, search) => n + search.uids.length, 0);
  }
  hooks.onFound?.(tally.found);
  for (const { account, searches } of accounts) {
    if (source.signal.aborted || searches.every((search) => search.uids.length === 0)) continue;
    await withSession(source, account, async (client) => {
      for (const search of searches) {
        if (source.signal.aborted) return;
        await readMailbox(client, source, account, search, range, hooks, tally);
      }
    });
  }
  return tally;
}

async function withSession<T>(source: ReadSource, account: AccountConfig, fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = await connect(source, account);
  try {
    return await fn(client);
  } finally {
    await closeQuietly(client, true);
  }
}

async function connect(source: ReadSource, account: AccountConfig): Promise<ImapFlow> {
  const imap = source.accounts.get(account.name)!;
  const credentials = imap.credentials ? await imap.credentials(false) : { pass: imap.pass ?? "" };
  const client = createImapClient(imap, { logger: source.logger.child({ account: account.name }) }, credentials);
  client.on("error", (err: Error) => source.logger.warn({ account: account.name, err: err.message }, "IMAP connection error"));
  try {
    await client.connect();
  } catch (err) {
    client.close();
    // Worded as check and run word it: which setting fixes a wrong port, TLS mode or host.
    throw classifyImapError(err, account.name, undefined, endpointOf(imap));
  }
  return client;
}

async function searchMailbox(client: ImapFlow, source: ReadSource, account: string, mailbox: string, range: ArrivalRange): Promise<MailboxSearch> {
  try {
    const opened = await client.mailboxOpen(mailbox, { readOnly: true });
    const here = rulesIn(source, account, mailbox);
    const configs = here.map((r) => source.loaded.config.rules.find((c) => c.name === r.name)!);
    const narrowing = searchFor(configs, searchDates(range), { host: source.accounts.get(account)?.host, datesOnly: source.searchDatesOnly });
    const found = await client.search(narrowing.query, { uid: true });
    if (!Array.isArray(found)) throw Object.assign(new Error(`the server refused UID SEARCH in mailbox "${mailbox}"`), { code: "ServerAnswer" });
    return { account, mailbox, uidValidity: Number(opened.uidValidity), uids: [...found].sort((a, b) => a - b), narrowing };
  } catch (err) {
    throw classifyImapError(err, account, mailbox);
  }
}

async function readMailbox(client: ImapFlow, source: ReadSource, account: AccountConfig, search: MailboxSearch, range: ArrivalRange, hooks: ReadHooks, tally: ReadTally): Promise<void> {
  const { mailbox } = search;
  const opened = await client.mailboxOpen(mailbox, { readOnly: true }).catch((err: unknown) => {
    throw classifyImapError(err, account.name, mailbox);
  });
  // Renumbered between the search and now: the UIDs name other mail. Said, and left for a rerun.
  if (Number(opened.uidValidity) !== search.uidValidity) {
    tally.unread.push({ account: account.name, mailbox, uid: 0, reason: "the mailbox was renumbered (UIDVALIDITY changed) while backfill ran; run it again" });
    return;
  }
  const options = fetchOptionsFor(source, account, mailbox);
  let left = search.uids;
  // A mail whose DKIM key lookup failed ends its FETCH batch's whole reading (fetch.ts): the mail
  // after it in that batch is read in a next pass. Each pass reads at least one mail more or stops.
  for (let pass = 0; left.length > 0 && pass < maxPasses && !source.signal.aborted; pass++) left = await readPass(client, source, account.name, search, left, range, options, hooks, tally);
  if (source.signal.aborted) return;
  // Still behind a failed key lookup after the last pass: said, so the summary counts it and a rerun reads it.
  for (const uid of left) tally.unread.push({ account: account.name, mailbox, uid, reason: `not read: a DKIM key lookup before it failed in each of ${maxPasses} passes` });
}

const maxPasses = 5;

async function readPass(client: ImapFlow, source: ReadSource, account: string, search: MailboxSearch, uids: number[], range: ArrivalRange, options: FetchOptions, hooks: ReadHooks, tally: ReadTally): Promise<number[]> {
  const accounted = new Set<number>();
  const gone = options.onGone;
  const passOptions: FetchOptions = { ...options, onGone: (g) => (g.forEach((uid) => accounted.add(uid)), gone?.(g)) };
  for await (const round of fetchBatches(client, uids, passOptions)) {
    for (const m of round.mails) accounted.add(m.uid);
    for (const u of round.unread) {
      accounted.add(u.uid);
      tally.unread.push({ account, mailbox: search.mailbox, uid: u.uid, reason: u.reason });
    }
    tally.read += round.mails.length;
    const batch = round.mails
      .filter((m) => inRange(m.internalDate, range))
      .map((m): MailAt => ({ account, mailbox: search.mailbox, uidValidity: search.uidValidity, uid: m.uid, receivedAt: m.internalDate, size: m.size, mail: m.mail, dkim: m.dkim }));
    tally.inRange += batch.length;
    if (batch.length > 0) hooks.onBatch(batch);
    hooks.onRead?.(tally.read + tally.unread.length);
    if (source.signal.aborted) return [];
  }
  return uids.filter((uid) => !accounted.has(uid));
}

/** The rules in play in a mailbox: those that apply there, or those alsoRead names for it. */
function rulesIn(source: ReadSource, account: string, mailbox: string): readonly CompiledRule[] {
  const also = source.alsoRead?.find((a) => a.account === account && a.mailbox === mailbox);
  return also ? also.rules : source.rules.filter((r) => appliesIn(r, { account, mailbox }));
}

/** The daemon's fetch options for this mailbox: the same limits, and the same reading of text and whole mail. */
function fetchOptionsFor(source: ReadSource, account: AccountConfig, mailbox: string): FetchOptions {
  const context = watchContext({
    account: source.accounts.get(account.name)!,
    mailbox,
    maxTextBytes: account.maxTextBytes,
    maxHeaderBytes: account.maxHeaderBytes,
    logger: source.logger,
    ...mailReading(rulesIn(source, account.name, mailbox), account.name, mailbox, source.dkim),
  });
  return { ...context.fetchOptions, batchSize: source.batchSize ?? 100 };
}
