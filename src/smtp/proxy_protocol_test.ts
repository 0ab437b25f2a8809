import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import net from "node:net";
import fc from "fast-check";
import {
  acceptProxyConnection,
  crc32c,
  encodeProxyHeaderV2,
  formatIpv6,
  isCidr,
  MAX_V1_HEADER,
  parseIp,
  parseProxyHeader,
  type ProxyHeader,
  ProxyProtocolError,
  type ProxySslInfo,
  proxyTlsInfo,
  readProxyHeader,
  TrustedProxies,
} from "./proxy_protocol.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function hex(text: string): Uint8Array {
  return Uint8Array.fromHex(text.replace(/\s+/g, ""));
}

function complete(bytes: Uint8Array): { header: ProxyHeader; length: number } {
  const result = parseProxyHeader(bytes);
  if (result.status !== "complete") {
    throw new Error(`expected a complete header, got ${JSON.stringify(result)}`);
  }
  return result;
}

function invalidReason(bytes: Uint8Array | string): string {
  const result = parseProxyHeader(typeof bytes === "string" ? encoder.encode(bytes) : bytes);
  if (result.status !== "invalid") throw new Error(`expected invalid, got ${result.status}`);
  return result.reason;
}

/**
 * Captured from HAProxy 2.6 (`bind ... ssl`, `send-proxy-v2-ssl proxy-v2-options
 * ssl-cipher,crc32c`) for a client at 127.0.0.1:52106 that connected to port 19465
 * with TLS 1.3.
 */
const HAPROXY_SSL_V2 = hex(`
  0d0a0d0a000d0a515549540a 21 11 003e 7f000001 7f000001 cb8a 4c09
  03 0004 0002a54d
  20 0028 01 00000000
    21 0007 544c5376312e33
    23 0016 544c535f4145535f3235365f47434d5f534841333834`);

Deno.test("parseProxyHeader: a real HAProxy v2 header with SSL and CRC32C TLVs", () => {
  const { header, length } = complete(HAPROXY_SSL_V2);
  strictEqual(length, HAPROXY_SSL_V2.length);
  deepStrictEqual(header, {
    version: 2,
    command: "proxy",
    source: { address: "127.0.0.1", port: 52106 },
    destination: { address: "127.0.0.1", port: 19465 },
    ssl: { client: 1, verify: 0, version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" },
  });
  deepStrictEqual(proxyTlsInfo(header), {
    protocol: "TLSv1.3",
    cipher: "TLS_AES_256_GCM_SHA384",
  });
  // One changed source address byte: the checksum no longer matches.
  const forged = HAPROXY_SSL_V2.slice();
  forged[19] = 2;
  strictEqual(invalidReason(forged), "v2 header fails its CRC32C");
});

Deno.test("parseProxyHeader: v1 TCP4, TCP6 and UNKNOWN", () => {
  const tcp4 = complete(encoder.encode("PROXY TCP4 203.0.113.7 192.0.2.1 40000 465\r\nEHLO x\r\n"));
  strictEqual(tcp4.length, 44);
  deepStrictEqual(tcp4.header, {
    version: 1,
    command: "proxy",
    source: { address: "203.0.113.7", port: 40000 },
    destination: { address: "192.0.2.1", port: 465 },
    ssl: null,
  });
  const tcp6 = complete(encoder.encode("PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::1 0 65535\r\n"));
  deepStrictEqual(tcp6.header.source, { address: "2001:db8::7", port: 0 });
  deepStrictEqual(tcp6.header.destination, { address: "::1", port: 65535 });
  for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"]) {
    const unknown = complete(encoder.encode(line));
    strictEqual(unknown.length, line.length);
    deepStrictEqual(unknown.header, {
      version: 1,
      command: "local",
      source: null,
      destination: null,
      ssl: null,
    });
  }
  // The longest possible header (107 bytes with CRLF) is accepted.
  const longest = `PROXY UNKNOWN ${"x".repeat(MAX_V1_HEADER - 16)}\r\n`;
  strictEqual(longest.length, MAX_V1_HEADER);
  strictEqual(complete(encoder.encode(longest)).length, MAX_V1_HEADER);
});

Deno.test("parseProxyHeader: malformed v1 headers are refused with a reason", () => {
  const cases: [string, string][] = [
    ["EHLO client.example\r\n", "not a PROXY protocol header"],
    ["PROXI TCP4", "not a PROXY protocol header"],
    ["PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "v1 protocol must be TCP4, TCP6 or UNKNOWN"],
    ["PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "v1 header needs 6 fields"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1 header needs 6 fields"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "v1 header needs 6 fields"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "v1 header has a bad TCP4 address or port"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "v1 header has a bad TCP4 address or port"],
    ["PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "v1 header has a bad TCP4 address or port"],
    ["PROXY TCP4 ::1 ::1 1 2\r\n", "v1 header has a bad TCP4 address or port"],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "v1 header has a bad TCP6 address or port"],
    ["PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "v1 header has a bad TCP6 address or port"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1 header not ended by CRLF"],
    ["PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", "v1 header has control or non-ASCII bytes"],
    [`PROXY UNKNOWN ${"x".repeat(MAX_V1_HEADER - 15)}\r\n`, "v1 header longer than 107 bytes"],
  ];
  for (const [input, reason] of cases) strictEqual(invalidReason(input), reason, input);
  strictEqual(
    invalidReason(encoder.encode("PROXY TCP4 1.2.3.4 5.6.7.8 1 \u00e92\r\n")),
    "v1 header has control or non-ASCII bytes",
  );
  // 106 bytes without a line end may still become a header; 107 cannot.
  strictEqual(parseProxyHeader(encoder.encode(`PROXY ${"x".repeat(100)}`)).status, "incomplete");
  strictEqual(
    invalidReason(`PROXY ${"x".repeat(101)}`),
    "v1 header longer than 107 bytes",
  );
});

Deno.test("parseProxyHeader: every proper prefix of a header is incomplete", () => {
  const headers = [
    encoder.encode("PROXY TCP6 2001:db8::7 2001:db8::1 40000 587\r\n"),
    HAPROXY_SSL_V2,
  ];
  for (const bytes of headers) {
    for (let n = 0; n < bytes.length; n++) {
      strictEqual(parseProxyHeader(bytes.subarray(0, n)).status, "incomplete", `prefix ${n}`);
    }
    strictEqual(complete(bytes).length, bytes.length);
  }
});

Deno.test("parseProxyHeader: v2 families and commands", () => {
  const v6 = complete(encodeProxyHeaderV2({
    source: { address: "2001:db8::7", port: 1234 },
    destination: { address: "2001:db8::1", port: 465 },
  }));
  deepStrictEqual(v6.header.source, { address: "2001:db8::7", port: 1234 });
  const mapped = complete(encodeProxyHeaderV2({
    source: { address: "::ffff:203.0.113.7", port: 1 },
    destination: { address: "::1", port: 2 },
  }));
  strictEqual(mapped.header.source?.address, "::ffff:203.0.113.7");
  // LOCAL: a health check from the proxy itself; addresses, if any, are ignored.
  const local = hex("0d0a0d0a000d0a515549540a 20 11 000c 01020304 05060708 0001 0002");
  deepStrictEqual(complete(local).header, {
    version: 2,
    command: "local",
    source: null,
    destination: null,
    ssl: null,
  });
  // PROXY over UNSPEC or UNIX: no IP address to take, the socket's own applies.
  const unspec = hex("0d0a0d0a000d0a515549540a 21 00 0000");
  strictEqual(complete(unspec).header.command, "local");
  const unix = concat(hex("0d0a0d0a000d0a515549540a 21 31 00d8"), new Uint8Array(216));
  strictEqual(complete(unix).header.command, "local");
});

Deno.test("parseProxyHeader: malformed v2 headers are refused with a reason", () => {
  const sig = "0d0a0d0a000d0a515549540a";
  const cases: [string, string][] = [
    ["0d0a0d0a000d0a51555954", "not a PROXY protocol header"],
    [`${sig} 11 11 000c`, "v2 header has an unknown version"],
    [`${sig} 22 11 000c`, "v2 header has an unknown command"],
    [`${sig} 21 41 000c`, "v2 header has an unknown address family"],
    [`${sig} 21 13 000c`, "v2 header has an unknown transport"],
    [
      `${sig} 21 12 000c 01020304 05060708 0001 0002`,
      "v2 header relays a datagram (UDP) connection",
    ],
    [`${sig} 21 11 0008 01020304 05060708`, "v2 address block is truncated"],
    [`${sig} 21 11 000e 01020304 05060708 0001 0002 2000`, "v2 TLV is truncated"],
    [`${sig} 21 11 0010 01020304 05060708 0001 0002 200005 00`, "v2 TLV is longer than the header"],
    [`${sig} 21 11 0010 01020304 05060708 0001 0002 200001 01`, "v2 SSL TLV is truncated"],
    [
      `${sig} 21 11 0016 01020304 05060708 0001 0002 200007 0100000000 2100`,
      "v2 SSL sub-TLV is truncated",
    ],
    [`${sig} 21 11 0013 01020304 05060708 0001 0002 030004 00000000`, "v2 header fails its CRC32C"],
  ];
  for (const [input, reason] of cases) strictEqual(invalidReason(hex(input)), reason, input);
  // The length cap is enforced from the fixed part alone, before any TLV byte arrives.
  strictEqual(invalidReason(hex(`${sig} 21 11 020d`)), "v2 header longer than 524 bytes");
  strictEqual(parseProxyHeader(hex(`${sig} 21 11 020c`)).status, "incomplete");
  strictEqual(invalidReason(hex(`${sig} 21 21 0225`)), "v2 header longer than 548 bytes");
});

Deno.test("proxyTlsInfo: TLS only for a relayed client that used TLS and verified", () => {
  const header = (ssl: ProxySslInfo | undefined, command: "proxy" | "local" = "proxy") =>
    complete(encodeProxyHeaderV2({
      command,
      source: { address: "203.0.113.7", port: 1 },
      destination: { address: "192.0.2.1", port: 587 },
      ssl,
    })).header;
  const good = { client: 1, verify: 0, version: "TLSv1.2", cipher: "ECDHE-RSA-AES128-GCM-SHA256" };
  deepStrictEqual(proxyTlsInfo(header(good)), {
    protocol: "TLSv1.2",
    cipher: "ECDHE-RSA-AES128-GCM-SHA256",
  });
  strictEqual(proxyTlsInfo(header(undefined)), null);
  strictEqual(proxyTlsInfo(header({ ...good, client: 0 })), null);
  strictEqual(proxyTlsInfo(header({ ...good, client: 6 })), null);
  strictEqual(proxyTlsInfo(header({ ...good, verify: 1 })), null);
  strictEqual(proxyTlsInfo(header(good, "local")), null);
  deepStrictEqual(proxyTlsInfo(header({ client: 1, verify: 0 })), {
    protocol: "TLS",
    cipher: "unknown",
  });
  // Text that would break the Received: comment is dropped, not copied.
  deepStrictEqual(
    proxyTlsInfo(header({ ...good, version: "TLSv1.3 (x)", cipher: "A\r\nB: c" })),
    { protocol: "TLS", cipher: "unknown" },
  );
  // Client-certificate details are kept for whoever wants them.
  const cn = complete(encodeProxyHeaderV2({
    source: { address: "203.0.113.7", port: 1 },
    destination: { address: "192.0.2.1", port: 587 },
    ssl: { ...good, client: 7, cn: "client.example", sigAlg: "SHA256", keyAlg: "EC256" },
  })).header.ssl;
  deepStrictEqual(cn, {
    ...good,
    client: 7,
    cn: "client.example",
    sigAlg: "SHA256",
    keyAlg: "EC256",
  });
});

Deno.test("encodeProxyHeaderV2 and parseProxyHeader agree (property)", () => {
  const v4 = fc.ipV4().map((a) => a);
  const v6 = fc.ipV6().filter((a) => !a.includes("."));
  const port = fc.integer({ min: 0, max: 65535 });
  fc.assert(
    fc.property(
      fc.oneof(fc.tuple(v4, v4), fc.tuple(v6, v6)),
      port,
      port,
      fc.boolean(),
      fc.uint8Array({ maxLength: 40 }),
      ([src, dst], sport, dport, crc, extra) => {
        const bytes = encodeProxyHeaderV2({
          source: { address: src, port: sport },
          destination: { address: dst, port: dport },
          tlvs: [{ type: 0x04, value: extra }],
          crc32c: crc,
        });
        const { header, length } = complete(concat(bytes, encoder.encode("EHLO x\r\n")));
        strictEqual(length, bytes.length);
        strictEqual(header.source?.address, formatIpv6OrV4(src));
        strictEqual(header.destination?.port, dport);
        strictEqual(header.source?.port, sport);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("parseProxyHeader never throws on arbitrary bytes (property)", () => {
  const signature = hex("0d0a0d0a000d0a515549540a");
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 700 }),
        fc.uint8Array({ maxLength: 700 }).map((b) => concat(signature, b)),
        fc.string({ maxLength: 120 }).map((s) => encoder.encode(`PROXY ${s}`)),
      ),
      (bytes) => {
        const result = parseProxyHeader(bytes);
        ok(["incomplete", "invalid", "complete"].includes(result.status));
        if (result.status === "complete") ok(result.length <= bytes.length);
      },
    ),
    { numRuns: 2000 },
  );
});

function formatIpv6OrV4(address: string): string {
  const bytes = parseIp(address)!;
  return bytes.length === 4 ? address : formatIpv6(bytes);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

Deno.test("formatIpv6 and parseIp follow RFC 5952", () => {
  const cases: [string, string][] = [
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["::ffff:7f00:1", "::ffff:127.0.0.1"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
  ];
  for (const [input, expected] of cases) strictEqual(formatIpv6(parseIp(input)!), expected);
  deepStrictEqual(parseIp("192.0.2.1"), Uint8Array.of(192, 0, 2, 1));
  strictEqual(parseIp("256.0.0.1"), null);
  strictEqual(parseIp("fe80::1%eth0"), null);
  strictEqual(parseIp("example.com"), null);
});

Deno.test("crc32c matches the Castagnoli check value", () => {
  strictEqual(crc32c(encoder.encode("123456789")), 0xe3069283);
});

Deno.test("TrustedProxies: IPv4 and IPv6 ranges, mapped peers, bare addresses", () => {
  const trusted = new TrustedProxies([
    "127.0.0.1/32",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "2001:db8:ab00::/40",
    "192.0.2.9",
  ]);
  for (const yes of ["127.0.0.1", "::ffff:127.0.0.1", "::1", "10.255.0.1", "172.31.255.255"]) {
    ok(trusted.has(yes), yes);
  }
  for (const yes of ["2001:db8:abff::1", "192.0.2.9", "::ffff:a00:1"]) ok(trusted.has(yes), yes);
  for (const no of ["127.0.0.2", "::2", "11.0.0.1", "172.32.0.0", "2001:db8:ac00::1", "x"]) {
    ok(!trusted.has(no), no);
  }
  ok(new TrustedProxies(["0.0.0.0/0"]).has("198.51.100.1"));
  ok(!new TrustedProxies(["0.0.0.0/0"]).has("2001:db8::1"));
  ok(new TrustedProxies(["::ffff:10.0.0.0/104"]).has("10.9.9.9"));
  ok(!new TrustedProxies([]).has("127.0.0.1"));
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/08", "host/8", ""]) {
    ok(!isCidr(bad), bad);
    throws(() => new TrustedProxies([bad]), RangeError);
  }
  ok(isCidr("::1/128") && isCidr("127.0.0.1") && isCidr("0.0.0.0/0"));
});

/** A server socket and a connected client for reading headers off a real socket. */
async function socketPair(): Promise<
  { socket: net.Socket; client: Deno.TcpConn; close(): Promise<void> }
> {
  const accepted = Promise.withResolvers<net.Socket>();
  const server = net.createServer((socket) => accepted.resolve(socket));
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  const socket = await accepted.promise;
  socket.on("error", () => {});
  return {
    socket,
    client,
    async close() {
      const closed = new Promise((resolve) => socket.once("close", resolve));
      socket.destroy();
      try {
        client.close();
      } catch { /* already closed */ }
      await closed;
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The next chunk the socket yields; fails after 2 s. */
function nextData(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off("data", onData);
      reject(new Error("no data within 2 s"));
    }, 2000);
    const onData = (chunk: Uint8Array) => {
      clearTimeout(timer);
      resolve(decoder.decode(chunk));
    };
    socket.once("data", onData);
    socket.resume();
  });
}

Deno.test("readProxyHeader: bytes after the header stay in the socket", async () => {
  const p = await socketPair();
  try {
    const header = "PROXY TCP4 203.0.113.7 192.0.2.1 40000 587\r\n";
    // Split mid-header, then header end and payload together in one chunk.
    await p.client.write(encoder.encode(header.slice(0, 10)));
    const reading = readProxyHeader(p.socket, { headerTimeoutMs: 2000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await p.client.write(encoder.encode(`${header.slice(10)}EHLO client.example\r\n`));
    const { header: parsed, length } = await reading;
    strictEqual(length, header.length);
    strictEqual(parsed.source?.address, "203.0.113.7");
    strictEqual(await nextData(p.socket), "EHLO client.example\r\n");
  } finally {
    await p.close();
  }
});

Deno.test("readProxyHeader: garbage is refused at once, silence after the timeout", async () => {
  const p = await socketPair();
  try {
    await p.client.write(encoder.encode("EHLO client.example\r\n"));
    const error = await readProxyHeader(p.socket, { headerTimeoutMs: 5000 }).catch((e) => e);
    ok(error instanceof ProxyProtocolError);
    strictEqual(error.reason, "malformed");
    strictEqual(error.message, "not a PROXY protocol header");
  } finally {
    await p.close();
  }
  const q = await socketPair();
  try {
    await q.client.write(encoder.encode("PROXY TCP4 "));
    const started = performance.now();
    await rejects(readProxyHeader(q.socket, { headerTimeoutMs: 150 }), (e) => {
      ok(e instanceof ProxyProtocolError);
      strictEqual(e.reason, "timeout");
      strictEqual(e.received, 11);
      return true;
    });
    ok(performance.now() - started >= 140);
  } finally {
    await q.close();
  }
});

Deno.test("readProxyHeader: a peer that hangs up, and an abort", async () => {
  const p = await socketPair();
  try {
    const reading = readProxyHeader(p.socket, { headerTimeoutMs: 2000 });
    p.client.close();
    await rejects(reading, (e) => {
      ok(e instanceof ProxyProtocolError);
      strictEqual(e.reason, "closed");
      strictEqual(e.received, 0);
      return true;
    });
  } finally {
    await p.close();
  }
  const q = await socketPair();
  try {
    const controller = new AbortController();
    const reading = readProxyHeader(q.socket, { headerTimeoutMs: 2000, signal: controller.signal });
    controller.abort();
    await rejects(reading, { name: "ProxyProtocolError", message: "PROXY header read aborted" });
  } finally {
    await q.close();
  }
});

Deno.test("acceptProxyConnection: trust, LOCAL and the SSL TLV", async () => {
  const trusted = new TrustedProxies(["127.0.0.1/32"]);
  const untrusted = new TrustedProxies(["10.0.0.0/8"]);
  const ssl = { client: 1, verify: 0, version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" };
  const relayed = encodeProxyHeaderV2({
    source: { address: "2001:db8::7", port: 4000 },
    destination: { address: "2001:db8::1", port: 587 },
    ssl,
  });
  const run = async (bytes: Uint8Array, options: Parameters<typeof acceptProxyConnection>[1]) => {
    const p = await socketPair();
    try {
      await p.client.write(bytes);
      return await acceptProxyConnection(p.socket, options);
    } finally {
      await p.close();
    }
  };
  const terminated = await run(relayed, { trusted, tlsTerminated: true });
  strictEqual(terminated.address, "2001:db8::7");
  strictEqual(terminated.port, 4000);
  deepStrictEqual(terminated.tls, { protocol: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" });
  // Without tls_terminated the TLV is ignored: the proxy's word on TLS is not taken.
  strictEqual((await run(relayed, { trusted })).tls, null);
  const local = await run(encodeProxyHeaderV2({ command: "local", ssl }), {
    trusted,
    tlsTerminated: true,
  });
  strictEqual(local.address, "127.0.0.1");
  strictEqual(local.header.command, "local");
  strictEqual(local.tls, null);
  const mapped = await run(
    encoder.encode("PROXY TCP6 ::ffff:203.0.113.9 ::ffff:192.0.2.1 5 587\r\n"),
    { trusted },
  );
  strictEqual(mapped.address, "203.0.113.9");
  await rejects(run(relayed, { trusted: untrusted }), (e) => {
    ok(e instanceof ProxyProtocolError);
    strictEqual(e.reason, "untrusted_proxy");
    strictEqual(e.message, "PROXY header from untrusted address 127.0.0.1");
    return true;
  });
});
