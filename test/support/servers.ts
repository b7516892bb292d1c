import { after, before } from "node:test";
import { startDovecot, type Dovecot, type DovecotOptions } from "./dovecot.ts";
import { startReceiver, type Receiver } from "./receiver.ts";

export interface DovecotAndReceiver {
  dovecot: Dovecot;
  receiver: Receiver;
}

/**
 * A Dovecot and a receiver for a whole test file: started before its first test, stopped after its
 * last. `use` hands them to the file's own variables once they are up.
 */
export function dovecotAndReceiverForFile(use: (started: DovecotAndReceiver) => void, options: DovecotOptions = {}): void {
  let started: DovecotAndReceiver | undefined;
  before(async () => {
    const [dovecot, receiver] = await Promise.all([startDovecot(options), startReceiver()]);
    started = { dovecot, receiver };
    use(started);
  });
  after(async () => {
    await Promise.all([started?.dovecot.dispose(), started?.receiver.close()]);
  });
}
