/**
 * Development certificates: a local CA (`ca.crt`/`ca.key`) and a server
 * certificate it signs (`server.crt`/`server.key`), ECDSA P-256 over
 * WebCrypto, written as PEM. A CA that already exists in the folder is reused,
 * so a client that was told to trust it keeps working after the server
 * certificate is renewed.
 *
 * @module
 */
import type * as X509 from "@peculiar/x509";
import { isIP } from "node:net";
import { basename, dirname, join } from "node:path";

/** Validity of a freshly generated CA: ten years. */
const CA_VALIDITY_DAYS = 3650;
/**
 * Validity of a server certificate, `notBefore` (backdate included) to
 * `notAfter`: under the 398 days Apple's clients (and the CA/Browser Forum)
 * accept for certificates issued since September 2020.
 */
const SERVER_VALIDITY_DAYS = 397;
/** Backdating of `notBefore`, so a client whose clock runs slightly behind still accepts. */
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Names every development certificate carries. */
const DEFAULT_NAMES: readonly string[] = ["localhost", "127.0.0.1", "::1"];

const EC_P256: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGN_P256: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/**
 * npm `@peculiar/x509` (with its `reflect-metadata` polyfill, ~9 MB resident),
 * loaded only when a certificate is made or a CA read: a relay whose
 * certificate exists never loads it.
 */
async function loadX509(): Promise<typeof X509> {
  await import("reflect-metadata");
  return await import("@peculiar/x509");
}

/** Where the development CA and server certificate live, and what happened to the CA. */
export interface DevCertificatePaths {
  /** The folder holding all four files' defaults. */
  dir: string;
  /** The CA certificate (`<dir>/ca.crt`): what clients are told to trust. */
  caCert: string;
  /** The CA private key (`<dir>/ca.key`, PKCS#8, mode 0600). */
  caKey: string;
  /** The server certificate (PEM). */
  cert: string;
  /** The server private key (PKCS#8 PEM, mode 0600). */
  key: string;
  /** True when a new CA was created; false when an existing one was reused. */
  caGenerated: boolean;
}

/** Options of {@linkcode generateDevCertificates}. */
export interface GenerateDevCertificatesOptions {
  /** Folder for the CA (and, by default, the server files); created when missing. */
  dir: string;
  /**
   * Extra names for the server certificate. `localhost`, `127.0.0.1` and `::1`
   * are always included; names that look like IP addresses become IP SANs.
   */
  hostnames?: string[];
  /** The clock; defaults to now. */
  now?: Date;
  /** Server certificate path; defaults to `<dir>/server.crt`. */
  cert?: string;
  /** Server key path; defaults to `<dir>/server.key`. */
  key?: string;
}

/** Options of {@linkcode ensureDevCertificates}. */
export interface EnsureDevCertificatesOptions {
  /** Server certificate path (`tls.cert`). */
  cert: string;
  /** Server key path (`tls.key`). */
  key: string;
  /** Folder for the CA; defaults to the folder of `cert`. */
  dir?: string;
  /** Extra names for a generated server certificate. */
  hostnames?: string[];
  /** The clock; defaults to now. */
  now?: Date;
}

/** Result of {@linkcode ensureDevCertificates}. */
export interface EnsureDevCertificatesResult {
  /** True when certificates were generated because `cert` or `key` was missing. */
  generated: boolean;
  /** The paths in use (the CA files may not exist when nothing was generated). */
  paths: DevCertificatePaths;
}

/** A subject-alternative-name entry of a server certificate. */
export interface SubjectAltName {
  /** `dns` for host names, `ip` for addresses. */
  type: "dns" | "ip";
  /** The name, lower-cased; IPv6 addresses without brackets. */
  value: string;
}

/**
 * Sort host names into DNS and IP subject alternative names, always including
 * `localhost`, `127.0.0.1` and `::1`, without duplicates.
 *
 * @param hostnames Extra names; `[::1]`-style brackets are accepted.
 * @returns The SAN entries, defaults first.
 * @throws {Error} For a name that is neither a valid DNS name nor an IP address.
 */
export function subjectAltNames(hostnames: readonly string[] = []): SubjectAltName[] {
  const seen = new Set<string>();
  const result: SubjectAltName[] = [];
  for (const raw of [...DEFAULT_NAMES, ...hostnames]) {
    const name = raw.trim().replace(/^\[(.*)\]$/, "$1").toLowerCase();
    let entry: SubjectAltName;
    if (isIP(name) !== 0) {
      entry = { type: "ip", value: isIP(name) === 6 ? normalizeIpv6(name) : name };
    } else if (isDnsName(name)) {
      entry = { type: "dns", value: name.replace(/\.$/, "") };
    } else {
      throw new Error(`invalid hostname for a certificate: ${JSON.stringify(raw)}`);
    }
    const id = `${entry.type}:${entry.value}`;
    if (!seen.has(id)) {
      seen.add(id);
      result.push(entry);
    }
  }
  return result;
}

/**
 * Generate a development server certificate signed by the CA in `dir`,
 * creating that CA first when `ca.crt`/`ca.key` do not exist. Existing server
 * files are overwritten (callers decide whether that is wanted).
 *
 * @example Generate into a temporary folder
 * ```ts ignore
 * const paths = await generateDevCertificates({ dir: "certs", hostnames: ["mail.example.com"] });
 * console.log(`trust ${paths.caCert}`);
 * ```
 *
 * @param options The folder, extra host names and clock.
 * @returns The paths written.
 */
export async function generateDevCertificates(
  options: GenerateDevCertificatesOptions,
): Promise<DevCertificatePaths> {
  const x509 = await loadX509();
  const now = options.now ?? new Date();
  const sans = subjectAltNames(options.hostnames);
  const paths: DevCertificatePaths = {
    dir: options.dir,
    caCert: join(options.dir, "ca.crt"),
    caKey: join(options.dir, "ca.key"),
    cert: options.cert ?? join(options.dir, "server.crt"),
    key: options.key ?? join(options.dir, "server.key"),
    caGenerated: false,
  };
  await Deno.mkdir(options.dir, { recursive: true });

  const caFilesPresent = [await pathExists(paths.caCert), await pathExists(paths.caKey)];
  let ca: CertificateAuthority;
  if (caFilesPresent[0] && caFilesPresent[1]) {
    ca = await loadCertificateAuthority(paths.caCert, paths.caKey, now);
  } else if (caFilesPresent[0] || caFilesPresent[1]) {
    const missing = caFilesPresent[0] ? paths.caKey : paths.caCert;
    throw new Error(
      `development CA is incomplete: ${missing} is missing; restore it or remove both CA files`,
    );
  } else {
    ca = await createCertificateAuthority(now);
    await writePem(paths.caKey, await exportPrivateKeyPem(ca.keys.privateKey), 0o600);
    await writePem(paths.caCert, ca.cert.toString("pem") + "\n", 0o644);
    paths.caGenerated = true;
  }

  const keys = await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"]);
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(
    Math.min(notBefore.getTime() + SERVER_VALIDITY_DAYS * DAY_MS, ca.cert.notAfter.getTime()),
  );
  const commonName = sans.find((san) => san.type === "dns" && san.value !== "localhost")?.value ??
    "localhost";
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [commonName] }, { O: ["relay development"] }],
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(sans, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  // Key first: a reader that sees the new certificate must find the matching key.
  await writePem(paths.key, await exportPrivateKeyPem(keys.privateKey), 0o600);
  await writePem(paths.cert, cert.toString("pem") + "\n", 0o644);
  return paths;
}

/**
 * Generate development certificates only when the configured `cert` or `key`
 * file is missing.
 *
 * @param options The configured paths, CA folder and extra host names.
 * @returns Whether certificates were generated, and the paths.
 */
export async function ensureDevCertificates(
  options: EnsureDevCertificatesOptions,
): Promise<EnsureDevCertificatesResult> {
  const dir = options.dir ?? dirname(options.cert);
  if (await pathExists(options.cert) && await pathExists(options.key)) {
    return {
      generated: false,
      paths: {
        dir,
        caCert: join(dir, "ca.crt"),
        caKey: join(dir, "ca.key"),
        cert: options.cert,
        key: options.key,
        caGenerated: false,
      },
    };
  }
  const paths = await generateDevCertificates({
    dir,
    hostnames: options.hostnames,
    now: options.now,
    cert: options.cert,
    key: options.key,
  });
  return { generated: true, paths };
}

interface CertificateAuthority {
  cert: X509.X509Certificate;
  keys: { privateKey: CryptoKey };
  signingAlgorithm: EcdsaParams;
}

async function createCertificateAuthority(now: Date): Promise<CertificateAuthority> {
  const x509 = await loadX509();
  const keys = await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"]);
  // A short random tag tells CAs generated on different machines apart in trust stores.
  const tag = Array.from(crypto.getRandomValues(new Uint8Array(4)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [`relay development CA ${tag}`] }, { O: ["relay development"] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    keys,
    signingAlgorithm: SIGN_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, signingAlgorithm: SIGN_P256 };
}

async function loadCertificateAuthority(
  certPath: string,
  keyPath: string,
  now: Date,
): Promise<CertificateAuthority> {
  const x509 = await loadX509();
  let cert: X509.X509Certificate;
  try {
    cert = new x509.X509Certificate(await Deno.readTextFile(certPath));
  } catch (error) {
    throw new Error(`cannot read development CA certificate ${certPath}: ${message(error)}`);
  }
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) {
    throw new Error(`${certPath} is not a CA certificate (basicConstraints CA:false)`);
  }
  if (cert.notAfter.getTime() <= now.getTime()) {
    throw new Error(
      `development CA ${certPath} expired on ${cert.notAfter.toISOString()}; ` +
        "remove ca.crt and ca.key to create a new one",
    );
  }
  const algorithm = cert.publicKey.algorithm as EcKeyAlgorithm;
  const hash = ({ "P-256": "SHA-256", "P-384": "SHA-384", "P-521": "SHA-512" } as const)[
    algorithm.namedCurve as "P-256" | "P-384" | "P-521"
  ];
  if (algorithm.name !== "ECDSA" || hash === undefined) {
    throw new Error(`development CA ${certPath} must use an ECDSA P-256/P-384/P-521 key`);
  }
  let privateKey: CryptoKey;
  try {
    const der = x509.PemConverter.decodeFirst(await Deno.readTextFile(keyPath));
    privateKey = await crypto.subtle.importKey(
      "pkcs8",
      der,
      { name: "ECDSA", namedCurve: algorithm.namedCurve },
      false,
      ["sign"],
    );
  } catch (error) {
    // Never echo key material: only the path and the kind of failure.
    throw new Error(
      `cannot read development CA key ${keyPath} (expected a PKCS#8 ECDSA PEM key): ` +
        `${error instanceof Error ? error.name : "error"}`,
    );
  }
  // A key that does not belong to the certificate would produce server
  // certificates no client can verify; catch it here with a probe signature.
  const signingAlgorithm: EcdsaParams = { name: "ECDSA", hash };
  const probe = new TextEncoder().encode("relay dev CA key check");
  const signature = await crypto.subtle.sign(signingAlgorithm, privateKey, probe);
  const publicKey = await cert.publicKey.export(
    { name: "ECDSA", namedCurve: algorithm.namedCurve } as EcKeyImportParams,
    ["verify"],
  );
  if (!await crypto.subtle.verify(signingAlgorithm, publicKey, signature, probe)) {
    throw new Error(`development CA key ${keyPath} does not match ${basename(certPath)}`);
  }
  return { cert, keys: { privateKey }, signingAlgorithm };
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const x509 = await loadX509();
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY") + "\n";
}

/** Write through a temporary file and rename, so readers never see half a file. */
async function writePem(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(temporary, text, { mode, createNew: true });
    // `mode` is filtered by the umask on creation; set it exactly.
    if (Deno.build.os !== "windows") await Deno.chmod(temporary, mode);
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/** 128 random bits, as RFC 5280 and the CA/Browser Forum recommend. */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return Array.from(bytes).map((b) => b.toString(16).padStart(2, "0")).join("");
}

function isDnsName(name: string): boolean {
  const bare = name.replace(/\.$/, "");
  if (bare.length === 0 || bare.length > 253) return false;
  return bare.split(".").every((label, index) =>
    (label === "*" && index === 0) ||
    /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?$/.test(label)
  );
}

/** Rewrite an embedded IPv4 tail (`::ffff:1.2.3.4`) as hex groups the x509 encoder understands. */
function normalizeIpv6(address: string): string {
  const match = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (!match) return address;
  const [a, b, c, d] = match[2].split(".").map(Number);
  return `${match[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/** Whether something (a file, a link) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
