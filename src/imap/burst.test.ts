import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ImapError } from "../errors.ts";
import { BurstPolicy, pollWhileFlowing, type Polled } from "./burst.ts";

const settings = { firstPollMs: 10, maxPollMs: 80, quietMs: 1000 };

describe("BurstPolicy", () => {
  it("nothing read yet: no poll, IDLE", () => {
    const p = new BurstPolicy(settings);
    assert.equal(p.flowing(0), false);
    assert.equal(p.nextPollMs(0), undefined);
  });

  it("after mail: 10 ms, doubling to 80 ms, cut to what is left of quietMs, then IDLE", () => {
    const p = new BurstPolicy(settings);
    p.mailRead(0);
    const waits: number[] = [];
    let now = 0;
    for (let wait = p.nextPollMs(now); wait !== undefined; wait = p.nextPollMs(now)) {
      waits.push(wait);
      now += wait;
    }
    assert.deepEqual(waits.slice(0, 5), [10, 20, 40, 80, 80]);
    assert.equal(now, 1000, "polls until exactly quietMs after the mail");
    assert.ok(waits.length <= 16, `a lone mail costs a few polls, not ${waits.length}`);
    assert.equal(p.flowing(now), false);
  });

  it("mail read again: back to the first, short wait", () => {
    const p = new BurstPolicy(settings);
    p.mailRead(0);
    p.nextPollMs(0);
    p.nextPollMs(10);
    p.nextPollMs(30);
    p.mailRead(70);
    assert.equal(p.nextPollMs(70), 10);
    assert.equal(p.flowing(1069), true);
    assert.equal(p.flowing(1070), false);
  });

  it("once quiet, it stays quiet until mail is read again", () => {
    const p = new BurstPolicy(settings);
    p.mailRead(0);
    assert.equal(p.nextPollMs(2000), undefined);
    assert.equal(p.nextPollMs(2001), undefined);
    assert.equal(p.flowing(2001), false);
  });
});

/** The watching connection: NOOPs sent, the mail each NOOP's reply announces, and the pauses taken. */
class Line implements Polled {
  news = false;
  open = true;
  noops = 0;
  paused: number[] = [];
  clock = 0;
  /** NOOP number (1-based) whose reply says EXISTS. */
  readonly existsAt: Set<number>;
  readonly silent: boolean;
  constructor(existsAt: number[] = [], silent = false) {
    this.existsAt = new Set(existsAt);
    this.silent = silent;
  }
  async pause(ms: number): Promise<void> {
    this.paused.push(ms);
    this.clock += ms;
  }
  async noop(): Promise<void> {
    this.noops++;
    if (this.silent) return new Promise(() => {});
    if (this.existsAt.has(this.noops)) this.news = true;
  }
}

function poll(line: Line, policy: BurstPolicy, signal = new AbortController().signal) {
  return pollWhileFlowing(line, line, policy, { keepaliveTimeoutMs: 30, where: { account: "a", mailbox: "INBOX" }, signal, now: () => line.clock });
}

describe("pollWhileFlowing", () => {
  it("a NOOP's reply announces mail: 'mail' at once", async () => {
    const line = new Line([3]);
    const policy = new BurstPolicy(settings);
    policy.mailRead(0);
    assert.equal(await poll(line, policy), "mail");
    assert.equal(line.noops, 3);
    assert.deepEqual(line.paused, [10, 20, 40]);
  });

  it("no mail for quietMs: 'quiet', and no more NOOPs after that", async () => {
    const line = new Line();
    const policy = new BurstPolicy(settings);
    policy.mailRead(0);
    assert.equal(await poll(line, policy), "quiet");
    assert.equal(line.clock, 1000);
    const sent = line.noops;
    assert.equal(await poll(line, policy), "quiet");
    assert.equal(line.noops, sent, "quiet means IDLE: no NOOP");
  });

  it("nothing read: no NOOP at all (idle cost unchanged)", async () => {
    const line = new Line();
    assert.equal(await poll(line, new BurstPolicy(settings)), "quiet");
    assert.equal(line.noops, 0);
    assert.deepEqual(line.paused, []);
  });

  it("mail announced during a pause: no NOOP needed", async () => {
    const line = new Line();
    line.pause = async (ms) => {
      line.paused.push(ms);
      line.news = true;
    };
    const policy = new BurstPolicy(settings);
    policy.mailRead(0);
    assert.equal(await poll(line, policy), "mail");
    assert.equal(line.noops, 0);
  });

  it("another folder waits for the connection: 'quiet' at the next poll, no more NOOPs", async () => {
    const line = new Line();
    const policy = new BurstPolicy(settings);
    policy.mailRead(0);
    let waiting = false;
    line.pause = async (ms) => {
      line.paused.push(ms);
      waiting = line.paused.length === 2;
    };
    const result = await pollWhileFlowing(line, line, policy, { keepaliveTimeoutMs: 30, where: { account: "a", mailbox: "INBOX" }, signal: new AbortController().signal, now: () => 0, giveWay: () => waiting });
    assert.equal(result, "quiet");
    assert.equal(line.noops, 1, "a NOOP after the first pause; after the second, another folder waits");
  });

  it("the connection closes: 'closed'", async () => {
    const line = new Line();
    line.pause = async () => void (line.open = false);
    const policy = new BurstPolicy(settings);
    policy.mailRead(0);
    assert.equal(await poll(line, policy), "closed");
  });

  it("a NOOP left unanswered: the keepalive's ImapError", async () => {
    const line = new Line([], true);
    const policy = new BurstPolicy(settings);
    policy.mailRead(0);
    await assert.rejects(poll(line, policy), (err: unknown) => err instanceof ImapError && /did not answer a NOOP within 30 ms/.test(err.message));
  });
});
