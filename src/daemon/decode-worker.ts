/**
 * Worker thread entry: decodes fetched rounds of mail off the main thread, which meanwhile talks
 * IMAP, writes the state file and sends. See decoder.ts.
 */
import { parentPort } from "node:worker_threads";
import { readFetchedParts, type FetchedParts } from "../mail/parts.ts";

parentPort?.on("message", (request: { id: number; round: FetchedParts[] }) => {
  parentPort!.postMessage({ id: request.id, mails: request.round.map(readFetchedParts) });
});
