/**
 * Certificate loading and the live `SecureContext` the listeners serve.
 *
 * Deno's `node:tls` accepts any bytes in `createSecureContext` and only fails
 * later, at the first handshake; so the files are checked here (PEM present,
 * key parses, key matches certificate) and a bad file is refused at start or
 * reload with an error naming it, instead of every client failing.
 *
 * @module
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import * as tls from "node:tls";
import { ensureDevCertificates, type EnsureDevCertificatesResult } from "./dev_ca.ts";

/** Paths of a certificate (chain) and its private key, both PEM. */
export interface TlsPaths {
  /** Certificate file: the server certificate first, then any intermediates. */
  cert: string;
  /** Private key file. */
  key: string;
}

/** The PEM text of a certificate chain and its key. */
export interface TlsMaterial {
  /** Certificate chain, PEM. */
  cert: string;
  /** Private key, PEM. */
  key: string;
}

/** Lowest TLS protocol version offered, as written in the config. */
export type TlsMinVersion = "1.2" | "1.3";

/** Options of {@linkcode createServerContext}. */
export interface ServerContextOptions {
  /** Lowest protocol version offered. */
  minVersion: TlsMinVersion;
}

/** What the start log shows about the served certificate. */
export interface CertificateInfo {
  /** Subject distinguished name, e.g. `CN=mail.example.com, O=Example`. */
  subject: string;
  /** Issuer distinguished name. */
  issuer: string;
  /** Subject alternative names, e.g. `DNS:localhost`, `IP Address:127.0.0.1`. */
  subjectAltNames: string[];
  /** Start of validity. */
  notBefore: Date;
  /** End of validity. */
  notAfter: Date;
  /** SHA-256 fingerprint, colon-separated upper-case hex. */
  fingerprintSha256: string;
  /** Hex serial number. */
  serialNumber: string;
}

/** A certificate or key file that cannot be served; `path` names the file. */
export class TlsMaterialError extends Error {
  /** The offending file. */
  readonly path: string;

  /**
   * @param path The offending file.
   * @param message What is wrong with it (never file contents).
   * @param options The underlying error, if any.
   */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsMaterialError";
    this.path = path;
  }
}

const CERT_PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const KEY_PEM = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]+?-----END \1-----/;

/**
 * Read and check a certificate and key: both files exist and are readable,
 * the certificate file holds PEM certificates, the key file a PEM private key
 * (unencrypted), and the key belongs to the first certificate.
 *
 * @param paths The certificate and key files.
 * @returns Their PEM text.
 * @throws {TlsMaterialError} Naming the file and what is wrong with it.
 */
export async function loadTlsMaterial(paths: TlsPaths): Promise<TlsMaterial> {
  const cert = await readFile(paths.cert, "certificate");
  const key = await readFile(paths.key, "private key");
  const leaf = parseCertificate(paths.cert, cert);
  const privateKey = parsePrivateKey(paths.key, key);
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsMaterialError(
      paths.key,
      `TLS private key ${paths.key} does not match the certificate in ${paths.cert}`,
    );
  }
  return { cert, key };
}

/**
 * Build the secure context a listener serves.
 *
 * @param material Checked PEM text (see {@linkcode loadTlsMaterial}).
 * @param options The lowest protocol version.
 * @returns A context for `tls.TLSSocket` / `tls.createServer`.
 */
export function createServerContext(
  material: TlsMaterial,
  options: ServerContextOptions,
): tls.SecureContext {
  return tls.createSecureContext({
    cert: material.cert,
    key: material.key,
    minVersion: options.minVersion === "1.2" ? "TLSv1.2" : "TLSv1.3",
  });
}

/**
 * Describe the first certificate in a PEM text.
 *
 * @param pem One or more PEM certificates.
 * @returns Subject, issuer, SANs, validity and fingerprint.
 * @throws {Error} When the text holds no parseable certificate.
 */
export function describeCertificate(pem: string): CertificateInfo {
  const first = pem.match(CERT_PEM)?.[0];
  if (first === undefined) throw new Error("no PEM certificate found");
  return infoOf(new X509Certificate(first));
}

/** Options of {@linkcode TlsContextProvider.load}; `config.tls` fits as is. */
export interface TlsContextOptions {
  /** Certificate file (`tls.cert`). */
  cert: string;
  /** Key file (`tls.key`). */
  key: string;
  /** Lowest protocol version (`tls.min_version`, resolved from `tls.profile`); default "1.2". */
  min_version?: TlsMinVersion;
  /** Generate development certificates when `cert` or `key` is missing (`tls.generate_if_missing`). */
  generate_if_missing?: boolean;
  /** Extra names for generated certificates, e.g. `[config.server.hostname]`. */
  hostnames?: string[];
}

/**
 * Holds the `SecureContext` listeners hand to each new connection, and swaps
 * it on {@linkcode TlsContextProvider.reload}. Connections already open keep
 * the context they were accepted with.
 *
 * @example
 * ```ts ignore
 * const tlsContext = await TlsContextProvider.load({ ...config.tls, hostnames: [config.server.hostname] });
 * log.info("TLS certificate {subject}, expires {notAfter}", { ...tlsContext.info });
 * Deno.addSignalListener("SIGHUP", () => tlsContext.reload().catch(logError));
 * const secure = await upgradeServerSocket(sock, tlsContext.current(), { handshakeTimeoutMs });
 * ```
 */
export class TlsContextProvider {
  readonly #paths: TlsPaths;
  readonly #minVersion: TlsMinVersion;
  #context: tls.SecureContext;
  #info: CertificateInfo;
  #material: TlsMaterial;
  #reloadListeners: ((material: TlsMaterial) => void)[] = [];
  #reloading: Promise<void> = Promise.resolve();
  /** Set when {@linkcode TlsContextProvider.load} generated development certificates. */
  readonly generated: EnsureDevCertificatesResult | undefined;

  private constructor(
    paths: TlsPaths,
    minVersion: TlsMinVersion,
    material: TlsMaterial,
    generated: EnsureDevCertificatesResult | undefined,
  ) {
    this.#paths = paths;
    this.#minVersion = minVersion;
    this.#context = createServerContext(material, { minVersion });
    this.#info = describeCertificate(material.cert);
    this.#material = material;
    this.generated = generated;
  }

  /**
   * Load the certificate and key (generating development ones first when
   * allowed and missing) and build the first context.
   *
   * @param options Paths, minimum version, generation switch (`config.tls` fits).
   * @returns A provider serving that certificate.
   * @throws {TlsMaterialError} When a file is missing or unusable.
   */
  static async load(options: TlsContextOptions): Promise<TlsContextProvider> {
    const paths = { cert: options.cert, key: options.key };
    let generated: EnsureDevCertificatesResult | undefined;
    if (options.generate_if_missing) {
      const result = await ensureDevCertificates({ ...paths, hostnames: options.hostnames });
      if (result.generated) generated = result;
    }
    const material = await loadTlsMaterial(paths);
    return new TlsContextProvider(paths, options.min_version ?? "1.2", material, generated);
  }

  /** The context for a connection accepted now. */
  current(): tls.SecureContext {
    return this.#context;
  }

  /** The PEM text served now (session workers build their own context from it). */
  get material(): TlsMaterial {
    return { ...this.#material };
  }

  /** Calls `listener` with the new PEM text after every successful reload. */
  onReload(listener: (material: TlsMaterial) => void): void {
    this.#reloadListeners.push(listener);
  }

  /** The served certificate's subject, SANs, validity and fingerprint. */
  get info(): CertificateInfo {
    return this.#info;
  }

  /** The lowest protocol version offered. */
  get minVersion(): TlsMinVersion {
    return this.#minVersion;
  }

  /** The certificate and key files. */
  get paths(): TlsPaths {
    return { ...this.#paths };
  }

  /**
   * Re-read the files and swap in a new context. On any error the current
   * context stays in place and the error is rethrown. Concurrent calls run
   * one after another, so the last call's files win.
   *
   * @throws {TlsMaterialError} When a file is missing or unusable.
   */
  reload(): Promise<void> {
    const next = this.#reloading.catch(() => {}).then(async () => {
      const material = await loadTlsMaterial(this.#paths);
      const context = createServerContext(material, { minVersion: this.#minVersion });
      const info = describeCertificate(material.cert);
      this.#context = context;
      this.#info = info;
      this.#material = material;
      for (const listener of this.#reloadListeners) listener({ ...material });
    });
    this.#reloading = next;
    return next;
  }
}

async function readFile(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new TlsMaterialError(path, `TLS ${what} file not found: ${path}`, { cause: error });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new TlsMaterialError(
        path,
        `TLS ${what} file ${path} is not readable (permission denied)`,
        {
          cause: error,
        },
      );
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new TlsMaterialError(path, `TLS ${what} path ${path} is a directory, not a file`, {
        cause: error,
      });
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new TlsMaterialError(path, `cannot read TLS ${what} file ${path}: ${reason}`, {
      cause: error,
    });
  }
}

function parseCertificate(path: string, text: string): X509Certificate {
  const first = text.match(CERT_PEM)?.[0];
  if (first === undefined) {
    throw new TlsMaterialError(
      path,
      `TLS certificate file ${path} holds no PEM certificate (expected "-----BEGIN CERTIFICATE-----")`,
    );
  }
  try {
    return new X509Certificate(first);
  } catch (error) {
    throw new TlsMaterialError(path, `TLS certificate file ${path} holds a malformed certificate`, {
      cause: error,
    });
  }
}

function parsePrivateKey(path: string, text: string): KeyObject {
  const match = KEY_PEM.exec(text);
  if (match === null) {
    throw new TlsMaterialError(
      path,
      `TLS private key file ${path} holds no PEM private key (expected "-----BEGIN PRIVATE KEY-----")`,
    );
  }
  if (match[1] === "ENCRYPTED PRIVATE KEY") {
    throw new TlsMaterialError(
      path,
      `TLS private key file ${path} is encrypted; a passphrase-protected key is not supported`,
    );
  }
  try {
    return createPrivateKey(match[0]);
  } catch {
    // The underlying error may quote key bytes; keep it out of messages and causes.
    throw new TlsMaterialError(path, `TLS private key file ${path} holds a malformed private key`);
  }
}

function infoOf(cert: X509Certificate): CertificateInfo {
  return {
    subject: cert.subject.split("\n").join(", "),
    issuer: cert.issuer.split("\n").join(", "),
    subjectAltNames: cert.subjectAltName?.split(", ").filter((name) => name !== "") ?? [],
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
    fingerprintSha256: cert.fingerprint256,
    serialNumber: cert.serialNumber,
  };
}
