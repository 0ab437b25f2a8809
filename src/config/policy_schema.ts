/**
 * The `[policy]` and `[dkim]` sections: how the `From:` header is bound to
 * the authenticated user, and where the DKIM signing keys live.
 *
 * ```toml
 * [policy]
 * header_from = "domain"   # "address" | "any"
 *
 * [dkim]
 * enabled = true           # sign mail of every domain that has keys
 * dir = "config/dkim"      # <domain>/keys.json and <domain>/<selector>.pem
 * ```
 *
 * @module
 */
import { z } from "zod";

/** `[policy]`: rules on the message itself. */
export const policySchema = z.strictObject({
  /**
   * The `From:` header must name one address in the user's domain
   * (`domain`), be the user's own address (`address`), or is not checked
   * (`any`).
   */
  header_from: z.enum(["domain", "address", "any"]).default("domain"),
}).prefault({});

/** `[dkim]`: signing keys (managed with `relay dkim`). */
export const dkimSchema = z.strictObject({
  /** Sign the mail of every domain that has keys; false relays everything unsigned. */
  enabled: z.boolean().default(true),
  /** The keys folder: one folder per domain with `keys.json` and `<selector>.pem` files. */
  dir: z.string().min(1).default("config/dkim"),
}).prefault({});

/** A validated `[policy]` section. */
export type PolicyConfig = z.infer<typeof policySchema>;
/** A validated `[dkim]` section. */
export type DkimConfig = z.infer<typeof dkimSchema>;
