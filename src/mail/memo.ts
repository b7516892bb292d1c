/**
 * Remembers the last results of a pure function of a short string. In a mailbox the same header
 * values come again and again (To: is nearly always the owner, From: a few senders), and parsing an
 * address list or decoding encoded words costs tens of microseconds each time: in the 10,000-mail
 * catch-up both together were a quarter of the header decoding. Bounded twice: keys longer than
 * `maxKeyLength` are not remembered, and past `maxEntries` the oldest entry is forgotten, so a
 * sender of endless distinct values costs at most maxEntries × maxKeyLength of memory.
 */
export class StringMemo<V> {
  readonly #compute: (key: string) => V;
  readonly #maxEntries: number;
  readonly #maxKeyLength: number;
  readonly #entries = new Map<string, V>();

  constructor(compute: (key: string) => V, options: { maxEntries?: number; maxKeyLength?: number } = {}) {
    this.#compute = compute;
    this.#maxEntries = options.maxEntries ?? 512;
    this.#maxKeyLength = options.maxKeyLength ?? 512;
  }

  get(key: string): V {
    if (key.length > this.#maxKeyLength) return this.#compute(key);
    const found = this.#entries.get(key);
    if (found !== undefined) return found;
    const value = this.#compute(key);
    if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, value);
    return value;
  }

  get size(): number {
    return this.#entries.size;
  }
}
