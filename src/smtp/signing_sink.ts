/**
 * DKIM signing as a message sink decorator: wraps the real sink (spool or
 * pass-through) and signs every message of a domain that has keys, once,
 * at acceptance, so the signature is in the spooled bytes and every retry
 * or recovery sends the same signed message.
 *
 * A signature goes in front of the message but is known only once its body
 * has ended. So while DATA streams in:
 *
 * - the header block (our Received: header first) is held in memory, at
 *   most 64 KiB ({@link HEADER_BLOCK_LIMIT}; a larger one is relayed
 *   unsigned, and the header_from policy refuses it anyway);
 * - the body goes through the relaxed body hash as it arrives (one pass)
 *   and into a {@link SpillBuffer}: memory up to 256 KiB, then a file in the
 *   spool's `tmp/` (cleared at start, like unfinished spool files);
 * - after the final dot (and the policy's last word), the header block is
 *   signed, and only then does the inner sink begin: it gets the
 *   signatures, the header block and the body read back once, then commits.
 *
 * Memory stays bounded for a 25 MiB message; the cost of a large one is one
 * more sequential write and read of its body (page cache). In pass-through
 * mode the backend transaction starts after the final dot instead of during
 * DATA. A domain without keys goes straight to the inner sink, unsigned.
 *
 * @module
 */
import { join } from "node:path";
import { BodyHasher, type DkimKeyring, signHeaderBlock, type SigningKey } from "../dkim/mod.ts";
import {
  type Envelope,
  HEADER_BLOCK_LIMIT,
  HeaderBlockReader,
  parseEmail,
  SpillBuffer,
} from "../mail/mod.ts";
import { log } from "../observability/logger.ts";
import { Replies } from "./replies.ts";
import type { MessageSink, SinkResult, SinkTransaction } from "./sink.ts";

const logger = log("smtp");
const encoder = new TextEncoder();

/** What became of a message the signing sink committed. */
export interface SigningOutcome {
  /** The keys that signed it; empty when it went unsigned. */
  keys: readonly SigningKey[];
  /** Why it went unsigned ("no_key", "header_too_large", "error"), when it did. */
  unsigned?: string;
}

/** Options for {@link SigningSink}. */
export interface SigningSinkOptions {
  /** The sink that queues or relays the signed message. */
  inner: MessageSink;
  /** The keys, read on every message (so a reload takes effect at once). */
  keyring: () => DkimKeyring;
  /** Where bodies past the memory threshold wait (the spool's `tmp/`). */
  tmpDir: string;
  /** Told about every message the inner sink accepted (metrics). */
  onAccepted?: (outcome: SigningOutcome) => void;
  /** Clock (signing time, key schedule). */
  now?: () => Date;
}

/** Signs messages of domains with keys; see the module documentation. */
export class SigningSink implements MessageSink {
  readonly #o: SigningSinkOptions;

  /** @param options the inner sink, the keys and where large bodies wait */
  constructor(options: SigningSinkOptions) {
    this.#o = options;
  }

  /** Starts one message: held for signing when its user's domain has keys. */
  begin(envelope: Envelope): SinkTransaction {
    const now = this.#o.now ?? (() => new Date());
    const domain = parseEmail(envelope.client.user ?? envelope.from)?.domain;
    const keys = domain ? this.#o.keyring().signingKeys(domain, now()) : [];
    if (keys.length === 0) {
      return this.#reporting(this.#o.inner.begin(envelope), { keys: [], unsigned: "no_key" });
    }
    return new SigningTransaction(
      envelope,
      keys,
      this.#o,
      now,
      (tx, outcome) => this.#reporting(tx, outcome),
    );
  }

  /** Wraps a transaction so that its accepted commit is reported. */
  #reporting(tx: SinkTransaction, outcome: SigningOutcome): SinkTransaction {
    const report = this.#o.onAccepted;
    return {
      write: (bytes) => tx.write(bytes),
      drain: () => tx.drain(),
      abort: (reason) => tx.abort(reason),
      async commit() {
        const result = await tx.commit();
        if (result.accepted) report?.(outcome);
        return result;
      },
    };
  }
}

/** One message held until its signature is known. */
class SigningTransaction implements SinkTransaction {
  readonly #envelope: Envelope;
  readonly #keys: SigningKey[];
  readonly #o: SigningSinkOptions;
  readonly #now: () => Date;
  readonly #wrap: (tx: SinkTransaction, outcome: SigningOutcome) => SinkTransaction;
  readonly #header = new HeaderBlockReader();
  readonly #hasher = new BodyHasher();
  readonly #body: SpillBuffer;
  /** Set when the message goes unsigned after all: bytes flow straight through. */
  #direct: SinkTransaction | null = null;

  constructor(
    envelope: Envelope,
    keys: SigningKey[],
    options: SigningSinkOptions,
    now: () => Date,
    wrap: (tx: SinkTransaction, outcome: SigningOutcome) => SinkTransaction,
  ) {
    this.#envelope = envelope;
    this.#keys = keys;
    this.#o = options;
    this.#now = now;
    this.#wrap = wrap;
    this.#body = new SpillBuffer(join(options.tmpDir, `${envelope.id}.body`));
  }

  write(bytes: Uint8Array): void {
    if (this.#direct) {
      this.#direct.write(bytes);
      return;
    }
    // Near the limit, keep a copy of what is held: an overflow drops it.
    const held = this.#header.raw().length + bytes.length > HEADER_BLOCK_LIMIT
      ? this.#header.raw().slice()
      : null;
    const body = this.#header.push(bytes);
    if (body === null) {
      logger.warning("{id}: header block over {limit} bytes, relayed without DKIM signature", {
        id: this.#envelope.id,
        limit: HEADER_BLOCK_LIMIT,
      });
      // Nothing reached the inner sink yet: it gets what was held, then this chunk.
      this.#direct = this.#wrap(this.#o.inner.begin(this.#envelope), {
        keys: [],
        unsigned: "header_too_large",
      });
      if (held) this.#direct.write(held);
      this.#direct.write(bytes);
      return;
    }
    if (body.length === 0) return;
    this.#hasher.update(body);
    this.#body.write(body);
  }

  drain(): Promise<void> | undefined {
    return this.#direct ? this.#direct.drain() : this.#body.drain();
  }

  async abort(reason: string): Promise<void> {
    await this.#body.discard();
    await this.#direct?.abort(reason);
  }

  async commit(): Promise<SinkResult> {
    if (this.#direct) return await this.#direct.commit();
    const id = this.#envelope.id;
    const signatures = signHeaderBlock({
      header: this.#header.header(),
      bodyHash: this.#hasher.digest(),
      keys: this.#keys,
      now: this.#now(),
    });
    if (signatures.errors.length > 0) {
      logger.warning("{id}: DKIM signing failed for some keys: {errors}", {
        id,
        errors: signatures.errors.join("; "),
      });
    }
    const signed = signatures.signed;
    const inner = this.#wrap(
      this.#o.inner.begin(this.#envelope),
      signed.length > 0 ? { keys: signed } : { keys: [], unsigned: "error" },
    );
    try {
      if (signatures.header) inner.write(encoder.encode(signatures.header));
      inner.write(this.#header.raw());
      for await (const chunk of this.#body.read()) {
        inner.write(chunk);
        await inner.drain();
      }
    } catch (error) {
      await this.#body.discard();
      await inner.abort(String(error));
      logger.error("{id}: held message body could not be read back: {error}", {
        id,
        error: String(error),
      });
      return { reply: Replies.spoolFailure(), accepted: false };
    }
    await this.#body.discard();
    const result = await inner.commit();
    if (result.accepted && signed.length > 0) {
      logger.info("{id}: DKIM-signed d={domain} s={selectors}", {
        id,
        domain: signed[0].domain,
        selectors: signed.map((k) => `${k.selector}(${k.algorithm})`).join(","),
      });
    }
    return result;
  }
}
