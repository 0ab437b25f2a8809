/**
 * The per-connection floor of Deno's TLS servers, for bench/memory_bench.ts
 * `--floor`: a server that does the TLS handshake, sends one greeting line and
 * holds the connection, nothing else. `node` wraps accepted `node:net` sockets
 * in `node:tls` TLSSocket as the relay does; `deno` uses `Deno.listenTls`.
 *
 *     deno run -A bench/tls_floor_server.ts node|deno PORT CERT KEY
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";

const [mode, port, certPath, keyPath] = Deno.args;
const cert = await Deno.readTextFile(certPath);
const key = await Deno.readTextFile(keyPath);
const greeting = "220 floor ready\r\n";
const held = new Set<unknown>();

if (mode === "node") {
  const context = tls.createSecureContext({ cert, key });
  net.createServer((sock) => {
    sock.pause();
    const secure = new tls.TLSSocket(sock, { isServer: true, secureContext: context });
    secure.on("secure", () => secure.write(greeting));
    secure.on("data", () => {});
    secure.on("error", () => secure.destroy());
    secure.on("close", () => held.delete(secure));
    secure.resume();
    held.add(secure);
  }).listen(Number(port), "127.0.0.1");
} else {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: Number(port), cert, key });
  for await (const conn of listener) {
    held.add(conn);
    (async () => {
      await conn.write(new TextEncoder().encode(greeting));
      const buffer = new Uint8Array(1024);
      while ((await conn.read(buffer)) !== null) { /* hold */ }
    })().catch(() => {}).finally(() => held.delete(conn));
  }
}
