/**
 * Test support for the SMTP client: a scripted SMTP server (each test writes
 * the dialogue it wants, byte for byte) and a throw-away CA with a leaf
 * certificate made by `openssl`. Not part of the public face.
 *
 * Plain servers use `Deno.listen`; TLS servers use `node:net` + `node:tls`
 * (`Deno.startTls` is client-only, so server-side STARTTLS needs
 * `new tls.TLSSocket(sock, {isServer: true})`).
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";

/** Files and PEM texts of a test CA and a `localhost`/`127.0.0.1` leaf signed by it. */
export interface TestCertificates {
  /** The CA certificate (PEM): give it to clients as `caCerts`. */
  caCert: string;
  caCertPath: string;
  /** The leaf certificate (PEM), CA:FALSE, SAN DNS:localhost, IP:127.0.0.1. */
  cert: string;
  certPath: string;
  /** The leaf's private key (PEM). */
  key: string;
  keyPath: string;
}

/**
 * Makes a P-256 CA and a leaf signed by it in `dir`. A self-signed leaf with
 * CA:TRUE would be refused by rustls (CaUsedAsEndEntity), hence two certificates.
 */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const p = (name: string) => `${dir}/${name}`;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
    "-days",
    "2",
    "-subj",
    "/CN=relay test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await openssl([
    "req",
    ...ec,
    "-keyout",
    p("server.key"),
    "-out",
    p("server.csr"),
    "-subj",
    "/CN=localhost",
  ]);
  await Deno.writeTextFile(
    p("server.ext"),
    "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n" +
      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    p("server.csr"),
    "-CA",
    p("ca.crt"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-out",
    p("server.crt"),
    "-days",
    "2",
    "-extfile",
    p("server.ext"),
  ]);
  return {
    caCert: await Deno.readTextFile(p("ca.crt")),
    caCertPath: p("ca.crt"),
    cert: await Deno.readTextFile(p("server.crt")),
    certPath: p("server.crt"),
    key: await Deno.readTextFile(p("server.key")),
    keyPath: p("server.key"),
  };
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The server's side of one scripted connection. */
export interface ScriptConn {
  /** Reads one line (without its CRLF); null at end of stream. */
  readLine(): Promise<string | null>;
  /** Returns whatever bytes one read delivered (buffered ones first), as text; null at EOF. */
  readChunk(): Promise<string | null>;
  /** Reads until `marker` has been seen and returns all bytes up to and including it. */
  readUntil(marker: string): Promise<Uint8Array>;
  /** Writes text as is (the script adds CRLFs). */
  write(text: string): Promise<void>;
  /** How many received chunks are waiting to be read. */
  buffered(): number;
  /** Waits until the client closes (EOF) and returns any bytes it sent before. */
  readToEnd(): Promise<string>;
  /** Upgrades to TLS (server side); only on `tls` servers. Drops buffered plain-text bytes. */
  startTls(): Promise<void>;
  /** Closes the connection. */
  close(): void;
}

/** A running scripted server. */
export interface ScriptedServer {
  port: number;
  /** Settles when the script has finished; rejects with the script's error. */
  finished: Promise<void>;
  /** Stops listening and closes the connection. */
  close(): Promise<void>;
}

/** TLS settings for {@linkcode serveScript}. */
export interface ScriptTlsOptions {
  cert: string;
  key: string;
  /** Wrap at accept (implicit TLS, port 465 style). */
  implicit?: boolean;
}

/** A queue of received chunks with waiters; both server kinds feed one. */
class ChunkQueue {
  chunks: Uint8Array[] = [];
  eof = false;
  error: Error | null = null;
  #wake: (() => void) | null = null;

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.#notify();
  }

  end(error?: Error): void {
    this.eof = true;
    if (error) this.error = error;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Waits until there is a chunk or EOF. */
  async wait(): Promise<void> {
    while (this.chunks.length === 0 && !this.eof) {
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }
}

class QueueConn implements ScriptConn {
  #queue = new ChunkQueue();
  #write: (bytes: Uint8Array) => Promise<void>;
  #close: () => void;
  #upgrade: ((queue: ChunkQueue) => Promise<void>) | null;

  constructor(
    write: (bytes: Uint8Array) => Promise<void>,
    close: () => void,
    upgrade: ((queue: ChunkQueue) => Promise<void>) | null,
  ) {
    this.#write = write;
    this.#close = close;
    this.#upgrade = upgrade;
  }

  get queue(): ChunkQueue {
    return this.#queue;
  }

  buffered(): number {
    return this.#queue.chunks.length;
  }

  async readChunk(): Promise<string | null> {
    await this.#queue.wait();
    const chunk = this.#queue.chunks.shift();
    return chunk ? decoder.decode(chunk) : null;
  }

  async readLine(): Promise<string | null> {
    const bytes = await this.#readUntilBytes(encoder.encode("\n"));
    if (bytes === null) return null;
    const text = decoder.decode(bytes);
    return text.endsWith("\r\n") ? text.slice(0, -2) : text.slice(0, -1);
  }

  async readUntil(marker: string): Promise<Uint8Array> {
    const bytes = await this.#readUntilBytes(encoder.encode(marker));
    if (bytes === null) throw new Error(`EOF before ${JSON.stringify(marker)}`);
    return bytes;
  }

  async #readUntilBytes(marker: Uint8Array): Promise<Uint8Array | null> {
    let acc = new Uint8Array(0);
    while (true) {
      const at = indexOf(acc, marker);
      if (at !== -1) {
        const end = at + marker.length;
        if (end < acc.length) this.#queue.chunks.unshift(acc.slice(end));
        return acc.slice(0, end);
      }
      await this.#queue.wait();
      const chunk = this.#queue.chunks.shift();
      if (!chunk) {
        if (acc.length > 0) this.#queue.chunks.unshift(acc);
        return null;
      }
      const joined = new Uint8Array(acc.length + chunk.length);
      joined.set(acc);
      joined.set(chunk, acc.length);
      acc = joined;
    }
  }

  async readToEnd(): Promise<string> {
    let text = "";
    while (true) {
      const chunk = await this.readChunk();
      if (chunk === null) return text;
      text += chunk;
    }
  }

  write(text: string): Promise<void> {
    return this.#write(encoder.encode(text));
  }

  async startTls(): Promise<void> {
    if (!this.#upgrade) throw new Error("not a TLS-capable server");
    this.#queue.chunks.length = 0;
    const queue = new ChunkQueue();
    await this.#upgrade(queue);
    this.#queue = queue;
  }

  close(): void {
    this.#close();
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/**
 * Starts a server on 127.0.0.1, port 0, that runs `script` on the first
 * connection, then closes it. Without `tls` it uses `Deno.listen`; with
 * `tls` it uses `node:net` and can upgrade (`conn.startTls()`) or wrap at
 * accept (`implicit`).
 */
export function serveScript(
  script: (conn: ScriptConn) => Promise<void>,
  tlsOptions?: ScriptTlsOptions,
): Promise<ScriptedServer> {
  return tlsOptions ? serveNode(script, tlsOptions) : Promise.resolve(serveDeno(script));
}

function serveDeno(script: (conn: ScriptConn) => Promise<void>): ScriptedServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let conn: Deno.TcpConn | null = null;
  let closed = false;
  const closeConn = () => {
    if (closed || !conn) return;
    closed = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  let readLoop: Promise<void> = Promise.resolve();
  const finished = (async () => {
    try {
      conn = await listener.accept();
    } finally {
      listener.close();
    }
    const c = conn;
    c.setNoDelay(true);
    const sc = new QueueConn(
      async (bytes) => {
        let off = 0;
        while (off < bytes.length) off += await c.write(bytes.subarray(off));
      },
      closeConn,
      null,
    );
    const queue = sc.queue;
    readLoop = (async () => {
      const buf = new Uint8Array(256 * 1024);
      try {
        while (true) {
          const n = await c.read(buf);
          if (n === null) break;
          queue.push(buf.slice(0, n));
        }
        queue.end();
      } catch (error) {
        queue.end(error as Error);
      }
    })();
    try {
      await script(sc);
    } finally {
      closeConn();
      await readLoop;
    }
  })();
  finished.catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    finished,
    close: async () => {
      try {
        listener.close();
      } catch { /* already closed */ }
      closeConn();
      await finished.catch(() => {});
      await readLoop;
    },
  };
}

function serveNode(
  script: (conn: ScriptConn) => Promise<void>,
  options: ScriptTlsOptions,
): Promise<ScriptedServer> {
  const context = tls.createSecureContext({ cert: options.cert, key: options.key });
  const server = net.createServer();
  let socket: net.Socket | null = null;
  const socketClosed: Promise<void>[] = [];
  const attach = (s: net.Socket, queue: ChunkQueue) => {
    s.on("data", (d: Uint8Array) => queue.push(new Uint8Array(d)));
    s.on("end", () => queue.end());
    s.on("close", () => queue.end());
    s.on("error", (e: Error) => queue.end(e));
  };
  const track = (s: net.Socket) => {
    socketClosed.push(
      new Promise<void>((resolve) => {
        if (s.destroyed) resolve();
        else s.once("close", () => resolve());
      }),
    );
  };
  const finished = new Promise<net.Socket>((resolve) => {
    server.once("connection", (raw: net.Socket) => {
      server.close();
      raw.setNoDelay(true);
      raw.pause();
      resolve(raw);
    });
  }).then(async (raw) => {
    track(raw);
    let current: net.Socket = raw;
    const wrap = (queue: ChunkQueue): tls.TLSSocket => {
      current.removeAllListeners("data");
      current.removeAllListeners("end");
      current.pause();
      const secure = new tls.TLSSocket(current, { isServer: true, secureContext: context });
      attach(secure, queue);
      track(secure);
      secure.resume();
      current = secure;
      return secure;
    };
    const sc: QueueConn = new QueueConn(
      (bytes) =>
        new Promise<void>((resolve, reject) =>
          current.write(bytes, (error) => error ? reject(error) : resolve())
        ),
      () => {
        current.destroy();
        raw.destroy();
      },
      async (queue) => {
        const secure = wrap(queue);
        await new Promise<void>((resolve, reject) => {
          secure.once("secure", () => resolve());
          secure.once("error", reject);
          secure.once("close", () => reject(new Error("closed during handshake")));
        });
      },
    );
    socket = raw;
    if (options.implicit) {
      wrap(sc.queue);
    } else {
      attach(raw, sc.queue);
      raw.resume();
    }
    try {
      await script(sc);
    } finally {
      sc.close();
      await Promise.all(socketClosed);
    }
  });
  finished.catch(() => {});
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        finished,
        close: async () => {
          if (server.listening) await new Promise<void>((r) => server.close(() => r()));
          if (socket === null) return;
          (socket as net.Socket).destroy();
          await finished.catch(() => {});
          await Promise.all(socketClosed);
        },
      });
    });
  });
}

/** An EHLO reply (multi-line) for scripts: `250-name` then each extension. */
export function ehloReply(extensions: string[], name = "test.example"): string {
  const lines = [name, ...extensions];
  return lines.map((line, i) => `250${i === lines.length - 1 ? " " : "-"}${line}\r\n`).join("");
}
