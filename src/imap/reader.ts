/** The second connection of readerConnection: opened when mail is to be read, closed when unused a while. */
import type { ImapFlow } from "imapflow";
import { closeQuietly, createImapClient } from "./client.ts";
import type { Watch } from "./context.ts";

/** Opens the reader connection on the mailbox; it must see the same UIDVALIDITY as the watching one. */
export async function openReader(w: Watch, uidValidity: number): Promise<ImapFlow> {
  const credentials = w.options.account.credentials ? await w.options.account.credentials(false) : { pass: w.options.account.pass ?? "" };
  const client = createImapClient(w.options.account, { logger: w.log, socketTimeoutMs: w.keepaliveMs + w.keepaliveTimeoutMs, limits: w.limits }, credentials);
  // A reader that drops between uses is simply opened again; its errors must not crash the process.
  client.on("error", () => {});
  try {
    await client.connect();
    const opened = await client.mailboxOpen(w.mailbox, { readOnly: true });
    if (Number(opened.uidValidity) !== uidValidity) throw new Error(`UIDVALIDITY ${opened.uidValidity} on the second connection, ${uidValidity} on the first`);
    return client;
  } catch (err) {
    client.close();
    throw err;
  }
}

/** The second connection of readerConnection: opened on demand, closed when unused for a while. */
export class ReaderConnection {
  readonly #open: () => Promise<ImapFlow>;
  readonly #idleCloseMs: number;
  #client: ImapFlow | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(open: () => Promise<ImapFlow>, idleCloseMs: number) {
    this.#open = open;
    this.#idleCloseMs = idleCloseMs;
  }

  async get(): Promise<ImapFlow> {
    clearTimeout(this.#timer);
    if (this.#client?.usable) return this.#client;
    this.#drop();
    this.#client = await this.#open();
    return this.#client;
  }

  /** Done reading for now: close it unless it is needed again soon (a quiet connection may be cut by the server or a NAT). */
  release(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#drop(), this.#idleCloseMs);
    this.#timer.unref();
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#drop();
  }

  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    if (client) void closeQuietly(client, true);
  }
}
