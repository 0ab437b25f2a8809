/**
 * The PROXY protocol (HAProxy, versions 1 and 2): a load balancer in front of
 * a listener prepends one header to each connection naming the client it
 * relays for, and, when it terminated TLS itself, what that TLS was.
 *
 * Only proxies on a trusted address list may speak it; on a listener that
 * expects it, every connection must start with a valid header, read with a
 * byte limit and a timeout. Bytes after the header stay in the socket (for the
 * TLS handshake on the SMTPS port, or the first SMTP command).
 *
 * Specification: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
 *
 * @example Parse a version 1 header
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseProxyHeader } from "./proxy_protocol.ts";
 *
 * const bytes = new TextEncoder().encode("PROXY TCP4 203.0.113.7 192.0.2.1 40000 465\r\nEHLO");
 * const result = parseProxyHeader(bytes);
 * if (result.status !== "complete") throw new Error(result.status);
 * strictEqual(result.header.source?.address, "203.0.113.7");
 * strictEqual(result.length, 44);
 * ```
 *
 * @module
 */
import net from "node:net";
import type { TlsInfo } from "./byte_stream.ts";
import { normalizeAddress } from "./byte_stream.ts";

/** The 12-byte signature that starts a version 2 header. */
export const V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
/** Longest version 1 header, CRLF included (the specification's limit). */
export const MAX_V1_HEADER = 107;
/** Most TLV bytes accepted after the address block of a version 2 header. */
export const MAX_V2_TLV_BYTES = 512;
/** Default time a proxy has to send the whole header. */
export const DEFAULT_HEADER_TIMEOUT_MS = 5000;

/** PP2_TYPE_* values of the TLVs this module reads. */
export const PP2_TYPE = { CRC32C: 0x03, SSL: 0x20 } as const;
/** PP2_SUBTYPE_SSL_* values inside the SSL TLV. */
export const PP2_SUBTYPE_SSL = {
  VERSION: 0x21,
  CN: 0x22,
  CIPHER: 0x23,
  SIG_ALG: 0x24,
  KEY_ALG: 0x25,
} as const;
/** Bits of the SSL TLV's `client` field. */
export const PP2_CLIENT = { SSL: 0x01, CERT_CONN: 0x02, CERT_SESS: 0x04 } as const;

/** One endpoint named by a header. */
export interface ProxyAddress {
  /** Textual IP address (IPv6 compressed as RFC 5952 says). */
  address: string;
  port: number;
}

/** The PP2_TYPE_SSL TLV: what the proxy knows about the client's TLS. */
export interface ProxySslInfo {
  /** PP2_CLIENT_* bits; {@link PP2_CLIENT}.SSL means the client connected over TLS. */
  client: number;
  /** 0 when the client certificate (if any was required) verified. */
  verify: number;
  /** PP2_SUBTYPE_SSL_VERSION, e.g. `TLSv1.3`. */
  version?: string;
  /** PP2_SUBTYPE_SSL_CIPHER, e.g. `TLS_AES_256_GCM_SHA384`. */
  cipher?: string;
  /** PP2_SUBTYPE_SSL_CN: the client certificate's common name. */
  cn?: string;
  /** PP2_SUBTYPE_SSL_SIG_ALG. */
  sigAlg?: string;
  /** PP2_SUBTYPE_SSL_KEY_ALG. */
  keyAlg?: string;
}

/** A parsed header. */
export interface ProxyHeader {
  version: 1 | 2;
  /**
   * `proxy`: the connection is relayed for `source`. `local`: the proxy's own
   * connection (v2 LOCAL, v1 `UNKNOWN`), or an address family without IP
   * addresses; the socket's own endpoints apply.
   */
  command: "proxy" | "local";
  /** The client; `null` when the socket's own peer applies. */
  source: ProxyAddress | null;
  /** The address the client connected to; `null` like `source`. */
  destination: ProxyAddress | null;
  /** The SSL TLV (version 2 only), if sent. */
  ssl: ProxySslInfo | null;
}

/** Result of {@link parseProxyHeader}. */
export type ProxyParseResult =
  | { status: "incomplete" }
  | { status: "invalid"; reason: string }
  | { status: "complete"; header: ProxyHeader; length: number };

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });
const V1_PREFIX = Uint8Array.from("PROXY ", (c) => c.charCodeAt(0));

/**
 * Parses a PROXY header at the start of `bytes`. Returns `incomplete` while
 * more bytes are needed and `invalid` as soon as the bytes cannot become a
 * valid header (so garbage is refused without waiting for a timeout).
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParseResult {
  if (bytes.length === 0) return { status: "incomplete" };
  if (bytes[0] === V2_SIGNATURE[0]) return parseV2(bytes);
  if (bytes[0] === V1_PREFIX[0]) return parseV1(bytes);
  return invalid("not a PROXY protocol header");
}

function invalid(reason: string): ProxyParseResult {
  return { status: "invalid", reason };
}

function startsLike(bytes: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

// --- version 1 ---------------------------------------------------------------

const PORT = /^(0|[1-9][0-9]{0,4})$/;

function parseV1(bytes: Uint8Array): ProxyParseResult {
  if (!startsLike(bytes, V1_PREFIX)) return invalid("not a PROXY protocol header");
  const limit = Math.min(bytes.length, MAX_V1_HEADER);
  const lf = bytes.subarray(0, limit).indexOf(0x0a);
  if (lf === -1) {
    return bytes.length >= MAX_V1_HEADER
      ? invalid(`v1 header longer than ${MAX_V1_HEADER} bytes`)
      : { status: "incomplete" };
  }
  if (lf === 0 || bytes[lf - 1] !== 0x0d) return invalid("v1 header not ended by CRLF");
  const line = latin1.decode(bytes.subarray(0, lf - 1));
  if (!/^[\x20-\x7e]*$/.test(line)) return invalid("v1 header has control or non-ASCII bytes");
  const length = lf + 1;
  if (line === "PROXY UNKNOWN" || line.startsWith("PROXY UNKNOWN ")) {
    return { status: "complete", length, header: localHeader(1) };
  }
  const fields = line.split(" ");
  if (fields.length !== 6) return invalid("v1 header needs 6 fields");
  const [, protocol, src, dst, srcPort, dstPort] = fields;
  const family = protocol === "TCP4" ? 4 : protocol === "TCP6" ? 6 : 0;
  if (family === 0) return invalid("v1 protocol must be TCP4, TCP6 or UNKNOWN");
  const source = v1Address(src, srcPort, family);
  const destination = v1Address(dst, dstPort, family);
  if (!source || !destination) return invalid(`v1 header has a bad ${protocol} address or port`);
  return {
    status: "complete",
    length,
    header: { version: 1, command: "proxy", source, destination, ssl: null },
  };
}

function v1Address(address: string, port: string, family: 4 | 6): ProxyAddress | null {
  if (!PORT.test(port) || Number(port) > 65535) return null;
  const ok = family === 4 ? net.isIPv4(address) : net.isIPv6(address) && !address.includes("%");
  if (!ok) return null;
  // Canonical text, so one client has one spelling in limits and logs.
  const text = family === 4 ? address : formatIpv6(parseIp(address)!);
  return { address: text, port: Number(port) };
}

function localHeader(version: 1 | 2, ssl: ProxySslInfo | null = null): ProxyHeader {
  return { version, command: "local", source: null, destination: null, ssl };
}

// --- version 2 ---------------------------------------------------------------

/** Address block length per address family (high nibble of byte 13). */
const V2_ADDRESS_LENGTH: Record<number, number> = { 0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216 };

function parseV2(bytes: Uint8Array): ProxyParseResult {
  if (!startsLike(bytes, V2_SIGNATURE)) return invalid("not a PROXY protocol header");
  if (bytes.length < 16) return { status: "incomplete" };
  const versionCommand = bytes[12];
  if (versionCommand >> 4 !== 2) return invalid("v2 header has an unknown version");
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid("v2 header has an unknown command");
  const family = bytes[13] >> 4;
  const transport = bytes[13] & 0x0f;
  const addressLength = V2_ADDRESS_LENGTH[family];
  if (addressLength === undefined) return invalid("v2 header has an unknown address family");
  if (transport > 2) return invalid("v2 header has an unknown transport");
  const length = (bytes[14] << 8) | bytes[15];
  if (length > addressLength + MAX_V2_TLV_BYTES) {
    return invalid(`v2 header longer than ${addressLength + MAX_V2_TLV_BYTES} bytes`);
  }
  const total = 16 + length;
  if (bytes.length < total) return { status: "incomplete" };
  const header = bytes.subarray(0, total);
  // LOCAL (health checks from the proxy itself): the addresses are to be ignored.
  const local = command === 0;
  if (!local && transport === 2) return invalid("v2 header relays a datagram (UDP) connection");
  if (length < addressLength) return invalid("v2 address block is truncated");
  const tlvs = parseTlvs(header, 16 + addressLength);
  if (typeof tlvs === "string") return invalid(tlvs);
  const crc = tlvs.get(PP2_TYPE.CRC32C);
  if (crc && !crcMatches(header, crc)) return invalid("v2 header fails its CRC32C");
  let ssl: ProxySslInfo | null = null;
  const sslValue = tlvs.get(PP2_TYPE.SSL);
  if (sslValue) {
    const parsed = parseSsl(sslValue.value);
    if (typeof parsed === "string") return invalid(parsed);
    ssl = parsed;
  }
  if (local || family === 0 || family === 3) {
    return { status: "complete", length: total, header: localHeader(2, ssl) };
  }
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const size = family === 1 ? 4 : 16;
  const address = (offset: number) =>
    size === 4
      ? Array.from(header.subarray(offset, offset + 4)).join(".")
      : formatIpv6(header.subarray(offset, offset + 16));
  const ports = 16 + 2 * size;
  return {
    status: "complete",
    length: total,
    header: {
      version: 2,
      command: "proxy",
      source: { address: address(16), port: view.getUint16(ports) },
      destination: { address: address(16 + size), port: view.getUint16(ports + 2) },
      ssl,
    },
  };
}

interface Tlv {
  /** Offset of the value inside the header (the CRC check zeroes it there). */
  offset: number;
  value: Uint8Array;
}

/** Reads type-length-value records from `start` to the end of `bytes`; an error text when malformed. */
function parseTlvs(bytes: Uint8Array, start: number): Map<number, Tlv> | string {
  const found = new Map<number, Tlv>();
  let i = start;
  while (i < bytes.length) {
    if (bytes.length - i < 3) return "v2 TLV is truncated";
    const type = bytes[i];
    const length = (bytes[i + 1] << 8) | bytes[i + 2];
    const end = i + 3 + length;
    if (end > bytes.length) return "v2 TLV is longer than the header";
    if (!found.has(type)) found.set(type, { offset: i + 3, value: bytes.subarray(i + 3, end) });
    i = end;
  }
  return found;
}

/** Text in an SSL sub-TLV: printable ASCII without parentheses (it reaches Received:). */
const SSL_TEXT = /^[\x21-\x27\x2a-\x7e]{1,64}$/;

function parseSsl(value: Uint8Array): ProxySslInfo | string {
  if (value.length < 5) return "v2 SSL TLV is truncated";
  const ssl: ProxySslInfo = {
    client: value[0],
    verify: new DataView(value.buffer, value.byteOffset, 5).getUint32(1),
  };
  const subs = parseTlvs(value, 5);
  if (typeof subs === "string") return subs.replace("TLV", "SSL sub-TLV");
  const text = (type: number): string | undefined => {
    const sub = subs.get(type);
    if (!sub) return undefined;
    let decoded: string;
    try {
      decoded = utf8.decode(sub.value);
    } catch {
      return undefined;
    }
    return SSL_TEXT.test(decoded) ? decoded : undefined;
  };
  const fields = {
    version: text(PP2_SUBTYPE_SSL.VERSION),
    cipher: text(PP2_SUBTYPE_SSL.CIPHER),
    cn: text(PP2_SUBTYPE_SSL.CN),
    sigAlg: text(PP2_SUBTYPE_SSL.SIG_ALG),
    keyAlg: text(PP2_SUBTYPE_SSL.KEY_ALG),
  };
  for (const [key, v] of Object.entries(fields)) {
    if (v !== undefined) (ssl as unknown as Record<string, string>)[key] = v;
  }
  return ssl;
}

/**
 * The TLS a trusted proxy terminated for this connection, as the session
 * sees TLS: only for a relayed (`proxy`) connection whose SSL TLV says the
 * client connected over TLS and verification did not fail; else `null`.
 */
export function proxyTlsInfo(header: ProxyHeader): TlsInfo | null {
  const ssl = header.ssl;
  if (header.command !== "proxy" || !ssl) return null;
  if ((ssl.client & PP2_CLIENT.SSL) === 0 || ssl.verify !== 0) return null;
  return { protocol: ssl.version ?? "TLS", cipher: ssl.cipher ?? "unknown" };
}

// --- CRC32C (Castagnoli), for PP2_TYPE_CRC32C ----------------------------------

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC32C of `bytes` (the checksum PP2_TYPE_CRC32C carries). */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC32C_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function crcMatches(header: Uint8Array, tlv: Tlv): boolean {
  if (tlv.value.length !== 4) return false;
  const expected = new DataView(tlv.value.buffer, tlv.value.byteOffset, 4).getUint32(0);
  // The checksum is computed over the whole header with its own field zeroed.
  const copy = header.slice();
  copy.fill(0, tlv.offset, tlv.offset + 4);
  return crc32c(copy) === expected;
}

// --- addresses -------------------------------------------------------------------

/** Parses an IPv4 or IPv6 address to 4 or 16 bytes; `null` when it is neither. */
export function parseIp(text: string): Uint8Array | null {
  if (net.isIPv4(text)) return Uint8Array.from(text.split("."), Number);
  if (!net.isIPv6(text) || text.includes("%")) return null;
  const groups = (part: string): number[] => {
    if (part === "") return [];
    const out: number[] = [];
    for (const group of part.split(":")) {
      if (group.includes(".")) {
        const [a, b, c, d] = group.split(".").map(Number);
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        out.push(parseInt(group, 16));
      }
    }
    return out;
  };
  const gap = text.indexOf("::");
  const head = groups(gap === -1 ? text : text.slice(0, gap));
  const tail = gap === -1 ? [] : groups(text.slice(gap + 2));
  const all = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  if (all.length !== 8) return null;
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** Formats 16 bytes as RFC 5952 text (`2001:db8::1`, `::ffff:192.0.2.1`). */
export function formatIpv6(bytes: Uint8Array): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${Array.from(bytes.subarray(12, 16)).join(".")}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero groups (the first of equals) becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (best === -1) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLength))}`;
}

/** Maps `::ffff:a.b.c.d` (as bytes) to its 4 IPv4 bytes; other addresses unchanged. */
function unmapped(bytes: Uint8Array): Uint8Array {
  if (
    bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff
  ) {
    return bytes.subarray(12);
  }
  return bytes;
}

interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

/** Parses `address/prefix` (or a bare address: one host); `null` when malformed. */
function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const bytes = parseIp(address);
  if (!bytes) return null;
  const max = bytes.length * 8;
  if (slash === -1) return { bytes, prefix: max };
  const prefixText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) return null;
  return { bytes, prefix: Number(prefixText) };
}

/** Whether `text` is an IPv4/IPv6 address or CIDR range that {@link TrustedProxies} accepts. */
export function isCidr(text: string): boolean {
  return parseCidr(text) !== null;
}

/**
 * A list of CIDR ranges (IPv4 and IPv6) the PROXY header may come from.
 * IPv4-mapped IPv6 peers (`::ffff:127.0.0.1`) match IPv4 ranges.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { TrustedProxies } from "./proxy_protocol.ts";
 *
 * const trusted = new TrustedProxies(["10.0.0.0/8", "::1/128"]);
 * ok(trusted.has("10.1.2.3") && trusted.has("::1") && !trusted.has("192.0.2.1"));
 * ```
 */
export class TrustedProxies {
  readonly #ranges: Cidr[];
  /** The addresses and ranges as configured. */
  readonly sources: readonly string[];

  /** @throws {RangeError} naming the first entry that is not an address or CIDR range */
  constructor(cidrs: readonly string[]) {
    this.sources = [...cidrs];
    this.#ranges = cidrs.map((text) => {
      const cidr = parseCidr(text);
      if (!cidr) throw new RangeError(`not an IP address or CIDR range: ${JSON.stringify(text)}`);
      // `::ffff:10.0.0.0/104` is the IPv4 range 10.0.0.0/8; peers are compared unmapped too.
      const bytes = unmapped(cidr.bytes);
      if (bytes.length === cidr.bytes.length || cidr.prefix < 96) return cidr;
      return { bytes, prefix: cidr.prefix - 96 };
    });
  }

  /** Whether `address` lies in one of the ranges. */
  has(address: string): boolean {
    const parsed = parseIp(address);
    if (!parsed) return false;
    const bytes = unmapped(parsed);
    return this.#ranges.some((range) => inRange(bytes, range));
  }
}

function inRange(bytes: Uint8Array, range: Cidr): boolean {
  if (bytes.length !== range.bytes.length) return false;
  const full = range.prefix >> 3;
  for (let i = 0; i < full; i++) if (bytes[i] !== range.bytes[i]) return false;
  const rest = range.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[full] & mask) === (range.bytes[full] & mask);
}

// --- reading from a socket ---------------------------------------------------------

/** Why a PROXY connection was refused. */
export type ProxyRefusal = "untrusted_proxy" | "timeout" | "malformed" | "closed" | "aborted";

/** A connection that did not deliver a valid PROXY header from a trusted proxy. */
export class ProxyProtocolError extends Error {
  /** What went wrong. */
  readonly reason: ProxyRefusal;
  /** Bytes received before the refusal (0: the peer sent nothing, e.g. a TCP health check). */
  readonly received: number;

  /**
   * @param reason what went wrong
   * @param message detail for logs (never the received bytes)
   * @param received bytes received before the refusal
   */
  constructor(reason: ProxyRefusal, message: string, received = 0) {
    super(message);
    this.name = "ProxyProtocolError";
    this.reason = reason;
    this.received = received;
  }
}

/** PROXY protocol settings of one listener. */
export interface ProxyListenerOptions {
  /** Addresses allowed to send a header; anything else is closed at once. */
  trusted: TrustedProxies;
  /**
   * The proxy terminates TLS (HAProxy `send-proxy-v2-ssl`): the header's SSL
   * TLV, when it says the client used TLS, makes the session treat the
   * connection as TLS.
   */
  tlsTerminated?: boolean;
  /** Milliseconds the proxy has to send the whole header; default {@link DEFAULT_HEADER_TIMEOUT_MS}. */
  headerTimeoutMs?: number;
}

/** A connection whose PROXY header was accepted. */
export interface ProxiedConnection {
  header: ProxyHeader;
  /** The client's address: the header's source, or the socket's own peer for LOCAL/UNKNOWN. */
  address: string;
  /** The client's port, likewise. */
  port: number;
  /** TLS the proxy terminated (only with `tlsTerminated` and an SSL TLV that says so). */
  tls: TlsInfo | null;
}

/** Options for {@link acceptProxyConnection}. */
export interface AcceptProxyOptions extends ProxyListenerOptions {
  /** Aborts a pending header read (server shutdown). */
  signal?: AbortSignal;
}

/**
 * Checks the peer against the trusted proxies and reads the PROXY header
 * from an accepted socket. On success the socket is paused with every byte
 * after the header put back (`unshift`), so a TLS handshake or the session
 * reads them next. On failure it rejects with {@link ProxyProtocolError};
 * the caller closes the socket.
 */
export function acceptProxyConnection(
  socket: net.Socket,
  options: AcceptProxyOptions,
): Promise<ProxiedConnection> {
  const peer = normalizeAddress(socket.remoteAddress ?? "");
  if (!options.trusted.has(peer)) {
    return Promise.reject(
      new ProxyProtocolError("untrusted_proxy", `PROXY header from untrusted address ${peer}`),
    );
  }
  return readProxyHeader(socket, options).then(({ header }) => {
    const own = header.source === null;
    return {
      header,
      address: own ? peer : normalizeAddress(header.source!.address),
      port: own ? socket.remotePort ?? 0 : header.source!.port,
      tls: options.tlsTerminated ? proxyTlsInfo(header) : null,
    };
  });
}

/** Options for {@link readProxyHeader}. */
export interface ReadProxyHeaderOptions {
  /** Milliseconds the whole header may take; default {@link DEFAULT_HEADER_TIMEOUT_MS}. */
  headerTimeoutMs?: number;
  /** Aborts the read. */
  signal?: AbortSignal;
}

/**
 * Reads one PROXY header from `socket` (nothing else may be reading it).
 * Resolves once the header is complete, with the socket paused and the bytes
 * after the header unshifted back into it; rejects with
 * {@link ProxyProtocolError} on garbage, timeout, end of stream or abort.
 */
export function readProxyHeader(
  socket: net.Socket,
  options: ReadProxyHeaderOptions = {},
): Promise<{ header: ProxyHeader; length: number }> {
  const timeoutMs = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const signal = options.signal;
  return new Promise((resolve, reject) => {
    let buffer = new Uint8Array(0);
    let settled = false;
    const finish = (error: ProxyProtocolError | null, done?: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onEnd);
      signal?.removeEventListener("abort", onAbort);
      socket.pause();
      if (error) reject(error);
      else done!();
    };
    const onData = (chunk: Uint8Array) => {
      const next = new Uint8Array(buffer.length + chunk.length);
      next.set(buffer);
      next.set(chunk, buffer.length);
      buffer = next;
      const result = parseProxyHeader(buffer);
      if (result.status === "incomplete") return;
      if (result.status === "invalid") {
        finish(new ProxyProtocolError("malformed", result.reason, buffer.length));
        return;
      }
      finish(null, () => {
        const rest = buffer.subarray(result.length);
        if (rest.length > 0) socket.unshift(rest);
        resolve({ header: result.header, length: result.length });
      });
    };
    const onEnd = () =>
      finish(
        new ProxyProtocolError(
          "closed",
          `connection closed after ${buffer.length} bytes of the PROXY header`,
          buffer.length,
        ),
      );
    const onAbort = () =>
      finish(new ProxyProtocolError("aborted", "PROXY header read aborted", buffer.length));
    const timer = setTimeout(
      () =>
        finish(
          new ProxyProtocolError(
            "timeout",
            `no complete PROXY header within ${timeoutMs} ms`,
            buffer.length,
          ),
        ),
      timeoutMs,
    );
    if (signal?.aborted) {
      onAbort();
      return;
    }
    // Gone before we got to it: its close event has already passed.
    if (socket.destroyed) {
      onEnd();
      return;
    }
    signal?.addEventListener("abort", onAbort);
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("close", onEnd);
    socket.on("error", onEnd);
    socket.resume();
  });
}

/** Fields for {@link encodeProxyHeaderV2}. */
export interface EncodeProxyV2Options {
  /** Default `proxy`. */
  command?: "proxy" | "local";
  source?: ProxyAddress;
  destination?: ProxyAddress;
  /** An SSL TLV to include. */
  ssl?: ProxySslInfo;
  /** Extra raw TLVs appended after the SSL TLV. */
  tlvs?: { type: number; value: Uint8Array }[];
  /** Append a correct PP2_TYPE_CRC32C TLV. */
  crc32c?: boolean;
}

/**
 * Builds a version 2 header (what HAProxy's `send-proxy-v2` sends); for
 * tests and tools. Source and destination must be of one family.
 */
export function encodeProxyHeaderV2(options: EncodeProxyV2Options): Uint8Array {
  const local = options.command === "local" || !options.source || !options.destination;
  let family = 0;
  let addressBlock = new Uint8Array(0);
  if (!local) {
    const src = parseIp(options.source!.address);
    const dst = parseIp(options.destination!.address);
    if (!src || !dst || src.length !== dst.length) throw new RangeError("bad address pair");
    family = src.length === 4 ? 0x11 : 0x21;
    addressBlock = new Uint8Array(2 * src.length + 4);
    addressBlock.set(src);
    addressBlock.set(dst, src.length);
    const view = new DataView(addressBlock.buffer);
    view.setUint16(2 * src.length, options.source!.port);
    view.setUint16(2 * src.length + 2, options.destination!.port);
  }
  const tlvs: Uint8Array[] = [];
  const tlv = (type: number, value: Uint8Array) => {
    const out = new Uint8Array(3 + value.length);
    out[0] = type;
    out[1] = value.length >> 8;
    out[2] = value.length & 0xff;
    out.set(value, 3);
    return out;
  };
  const encoder = new TextEncoder();
  if (options.ssl) {
    const ssl = options.ssl;
    const head = new Uint8Array(5);
    head[0] = ssl.client;
    new DataView(head.buffer).setUint32(1, ssl.verify);
    const subs = [
      [PP2_SUBTYPE_SSL.VERSION, ssl.version],
      [PP2_SUBTYPE_SSL.CN, ssl.cn],
      [PP2_SUBTYPE_SSL.CIPHER, ssl.cipher],
      [PP2_SUBTYPE_SSL.SIG_ALG, ssl.sigAlg],
      [PP2_SUBTYPE_SSL.KEY_ALG, ssl.keyAlg],
    ].filter(([, v]) => v !== undefined).map(([t, v]) =>
      tlv(t as number, encoder.encode(v as string))
    );
    tlvs.push(tlv(PP2_TYPE.SSL, concat([head, ...subs])));
  }
  for (const extra of options.tlvs ?? []) tlvs.push(tlv(extra.type, extra.value));
  if (options.crc32c) tlvs.push(tlv(PP2_TYPE.CRC32C, new Uint8Array(4)));
  const body = concat([addressBlock, ...tlvs]);
  const header = concat([
    V2_SIGNATURE,
    Uint8Array.of(local ? 0x20 : 0x21, family, body.length >> 8, body.length & 0xff),
    body,
  ]);
  if (options.crc32c) {
    new DataView(header.buffer).setUint32(header.length - 4, crc32c(header));
  }
  return header;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
