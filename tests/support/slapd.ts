/**
 * A throw-away OpenLDAP `slapd` for tests: its own slapd.conf, mdb databases
 * and test CA in a temp dir, listening on free 127.0.0.1 ports (LDAP with
 * StartTLS, and LDAPS), seeded with users in `example.com` and `company.com`
 * (one of them locked), run as a child process in the foreground. With
 * `stock: true` it loads no module beyond Debian's default (`back_mdb`): no
 * ppolicy, no `pw-sha2`, as most installations.
 *
 * Needs Debian's `slapd` and `openssl`: `apt-get install -y slapd ldap-utils openssl`.
 *
 * ```ts ignore
 * Deno.test("ldap", async (t) => {
 *   await using slapd = await startSlapd();
 *   const auth = new LdapAuthenticator(slapd.ldapConfig(), { caPem: slapd.caPem });
 *   ...
 * });
 * ```
 *
 * @module
 */
import { Client } from "ldapts";
import { type LdapConfig, ldapSchema } from "../../src/config/ldap_schema.ts";
import { hashSaltedSha } from "../../src/auth/ldap/password_hash.ts";

const SLAPD = "/usr/sbin/slapd";
const SLAPADD = "/usr/sbin/slapadd";
const SCHEMA_DIR = "/etc/ldap/schema";
const MODULE_DIR = "/usr/lib/ldap";
const INSTALL_HINT = "install it with: apt-get install -y slapd ldap-utils (Debian package slapd)";

/** A user written into the directory before it starts. */
export interface SeedUser {
  /** The `mail` attribute exactly as stored (case kept). */
  email: string;
  /** Plain password; stored as `{SSHA}`. */
  password: string;
  /** `givenName`; default: the local part. */
  givenName?: string;
  /** `sn`; default: the local part. */
  surname?: string;
  /** Locked with ppolicy's `pwdAccountLockedTime` (binds refused by slapd too). */
  disabled?: boolean;
  /** Under a policy with `pwdMaxAge` 1 day, password changed in 2000: expired. */
  expired?: boolean;
}

/** A seeded user, with where it ended up. */
export interface SeededUser extends Required<SeedUser> {
  /** `uid=<local>,ou=users,dc=<labels>`. */
  dn: string;
  /** `uidNumber` (and `gidNumber`). */
  uidNumber: number;
}

/** Options for {@linkcode startSlapd}. */
export interface SlapdOptions {
  /** Users to seed; default {@linkcode DEFAULT_USERS}. Their domains must be in `suffixes`. */
  users?: SeedUser[];
  /** Domains that get a database, a suffix entry and `ou=users`; default example.com, company.com. */
  domains?: string[];
  /** Domains that get an empty database (no entries at all), e.g. for `--create-ou`. */
  emptyDomains?: string[];
  /** slapd `idletimeout`: seconds after which slapd closes idle connections (0: never). */
  idleTimeoutSeconds?: number;
  /**
   * Debian's stock slapd: no ppolicy and no `pw-sha2` module (so `{SSHA512}`
   * cannot be verified and no user can be locked). Default users: none locked.
   */
  stock?: boolean;
}

/** What every test directory (slapd, 389 DS) offers: where it is, who may do what, who lives there. */
export interface TestDirectory {
  /** The plain `ldap://` URL (StartTLS available). */
  url: string;
  /** Port of `url`. */
  port: number;
  /** The administrator (full rights everywhere). */
  adminDn: string;
  /** Its password. */
  adminPassword: string;
  /** Read-only service account for searches (`cn=relay,ou=services,dc=example,dc=com`). */
  serviceDn: string;
  /** Its password. */
  servicePassword: string;
  /** One suffix per domain, `dc=example,dc=com` first. */
  baseDns: string[];
  /** The CA certificate (PEM) that signed the server certificate. */
  caPem: string;
  /** The seeded users. */
  users: SeededUser[];
  /** An `[ldap]` config pointing at this directory with the service account; `overrides` win. */
  ldapConfig(overrides?: Record<string, unknown>): LdapConfig;
}

/** A running test slapd. */
export interface Slapd extends TestDirectory {
  /** `ldaps://127.0.0.1:PORT2`. */
  ldapsUrl: string;
  /** Port of `ldapsUrl`. */
  ldapsPort: number;
  /** The same CA as a file, for configs that want a path. */
  caFile: string;
  /** The temp dir holding config, databases and certificates. */
  dir: string;
  /** Process id of the running slapd (changes on restart). */
  readonly pid: number;
  /** Reads entries as the admin (attribute names as the server spells them). */
  search(
    base: string,
    filter: string,
    attributes?: string[],
  ): Promise<Array<Record<string, string | string[]>>>;
  /** Stops slapd (databases kept), waits for the process to exit. */
  stop(): Promise<void>;
  /** Starts slapd again on the same ports and data (after `stop()`, or stops it first). */
  restart(): Promise<void>;
  /** Freezes slapd (SIGSTOP): connections are accepted by the kernel, nothing answers. */
  pause(): void;
  /** Thaws a paused slapd (SIGCONT). */
  resume(): void;
  /** Stops slapd and removes the temp dir. */
  close(): Promise<void>;
  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The users seeded by default (passwords are test-only). */
export const DEFAULT_USERS: readonly SeedUser[] = [
  { email: "john.doe@example.com", password: "John-Doe-Pass-1", givenName: "John", surname: "Doe" },
  // Stored with capitals: the relay must answer with the canonical lower-case address.
  { email: "Jane.Roe@Example.COM", password: "Jane-Roe-Pass-2", givenName: "Jane", surname: "Roe" },
  { email: "locked@example.com", password: "Locked-Pass-3", disabled: true },
  { email: "alice@company.com", password: "Alice-Pass-4", givenName: "Alice", surname: "Smith" },
];

/** Policy with a maximum password age, for users seeded with `expired`. */
const EXPIRING_POLICY = "cn=expiring,ou=policies";

/** `dc=company,dc=com` for `company.com`. */
export function suffixFor(domain: string): string {
  return domain.split(".").map((label) => `dc=${label}`).join(",");
}

/** LDIF for one entry; values that are not plain safe strings are base64-encoded (RFC 2849). */
export function ldifEntry(dn: string, attributes: Record<string, string | string[]>): string {
  const line = (name: string, value: string) =>
    /^[\x21-\x39\x3b\x3d-\x7e][\x20-\x7e]*$/.test(
        value,
      ) && !value.endsWith(" ")
      ? `${name}: ${value}`
      : `${name}:: ${new TextEncoder().encode(value).toBase64()}`;
  const lines = [line("dn", dn)];
  for (const [name, values] of Object.entries(attributes)) {
    for (const value of Array.isArray(values) ? values : [values]) lines.push(line(name, value));
  }
  return lines.join("\n") + "\n\n";
}

/** Whether a path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command to completion; its output, or an error carrying it. */
export async function run(
  cmd: string,
  args: string[],
  cwd?: string,
  env?: Record<string, string>,
): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, { args, cwd, env, stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    throw new Error(`cannot run ${cmd}: ${(error as Error).message}`);
  }
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${text}`);
  return text;
}

/** Makes a test CA and a server certificate for 127.0.0.1/localhost (ECDSA P-256). */
async function makeCertificates(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=relay test LDAP CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await run("openssl", [
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ], dir);
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" +
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  ], dir);
}

/** `count` distinct free ports on 127.0.0.1 (free when asked; bind soon). */
export function freePorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

function slapdConf(options: {
  dir: string;
  suffixes: string[];
  adminDn: string;
  adminPasswordHash: string;
  serviceDn: string;
  idleTimeoutSeconds: number;
  stock: boolean;
}): string {
  const { dir, adminDn, serviceDn, stock } = options;
  const lines = [
    ...["core", "cosine", "inetorgperson", "nis"].map((s) => `include ${SCHEMA_DIR}/${s}.schema`),
    `pidfile ${dir}/slapd.pid`,
    `argsfile ${dir}/slapd.args`,
    `modulepath ${MODULE_DIR}`,
    "moduleload back_mdb",
    // {SSHA512} and friends, as password_scheme may write them; stock slapd lacks both.
    ...(stock ? [] : ["moduleload ppolicy", "moduleload pw-sha2"]),
    `TLSCACertificateFile ${dir}/ca.pem`,
    `TLSCertificateFile ${dir}/server.pem`,
    `TLSCertificateKeyFile ${dir}/server.key`,
    options.idleTimeoutSeconds > 0 ? `idletimeout ${options.idleTimeoutSeconds}` : "",
    'access to dn.base="" by * read',
    'access to dn.base="cn=Subschema" by * read',
  ];
  options.suffixes.forEach((suffix, i) => {
    lines.push(
      "",
      "database mdb",
      `suffix "${suffix}"`,
      // One admin for every database: a bind goes to the first database, whose rootpw checks it.
      `rootdn "${adminDn}"`,
      i === 0 ? `rootpw ${options.adminPasswordHash}` : "",
      `directory ${dir}/db${i}`,
      "maxsize 16777216",
      "access to attrs=userPassword by self write by anonymous auth by * none",
      `access to * by dn.exact="${serviceDn}" read by self read by * none`,
      ...(stock ? [] : [
        "overlay ppolicy",
        `ppolicy_default "cn=default,ou=policies,${suffix}"`,
        // The policy response control names a lock (AccountLocked), not just "invalid".
        "ppolicy_use_lockout",
      ]),
    );
  });
  return lines.filter((l, i, all) => l !== "" || all[i - 1] !== "").join("\n") + "\n";
}

/**
 * Starts a seeded slapd. Fails with a message naming the apt package when
 * slapd is not installed (the LDAP tests must run in CI, not skip).
 */
export async function startSlapd(options: SlapdOptions = {}): Promise<Slapd> {
  for (const [path, what] of [[SLAPD, "slapd"], [SLAPADD, "slapadd"]]) {
    if (!await exists(path)) {
      throw new Error(`${path} not found: ${what} is needed; ${INSTALL_HINT}`);
    }
  }
  for (const schema of ["core", "cosine", "inetorgperson", "nis"]) {
    if (!await exists(`${SCHEMA_DIR}/${schema}.schema`)) {
      throw new Error(`${SCHEMA_DIR}/${schema}.schema not found; ${INSTALL_HINT}`);
    }
  }
  const domains = options.domains ?? ["example.com", "company.com"];
  const stock = options.stock ?? false;
  const emptyDomains = options.emptyDomains ?? [];
  const suffixes = [...domains, ...emptyDomains].map(suffixFor);
  const dir = await Deno.makeTempDir({ prefix: "relay-slapd-" });
  try {
    await makeCertificates(dir);
    const adminDn = `cn=admin,${suffixes[0]}`;
    const adminPassword = `admin-${crypto.randomUUID()}`;
    const serviceDn = `cn=relay,ou=services,${suffixes[0]}`;
    const servicePassword = `service-${crypto.randomUUID()}`;
    const conf = `${dir}/slapd.conf`;
    await Deno.writeTextFile(
      conf,
      slapdConf({
        dir,
        suffixes,
        adminDn,
        adminPasswordHash: hashSaltedSha("SSHA", adminPassword),
        serviceDn,
        idleTimeoutSeconds: options.idleTimeoutSeconds ?? 0,
        stock,
      }),
    );
    const users = seedUsers(
      options.users ?? DEFAULT_USERS.filter((u) => !(stock && u.disabled)),
    );
    if (stock && users.some((u) => u.disabled || u.expired)) {
      throw new Error("a stock slapd (no ppolicy) cannot lock or expire users");
    }
    // slapadd reads the whole config, so every database directory must exist first.
    for (const i of suffixes.keys()) await Deno.mkdir(`${dir}/db${i}`);
    for (const [i, domain] of domains.entries()) {
      const suffix = suffixes[i];
      let ldif = ldifEntry(suffix, {
        objectClass: ["top", "dcObject", "organization"],
        dc: domain.split(".")[0],
        o: domain,
      });
      ldif += ldifEntry(`ou=users,${suffix}`, { objectClass: "organizationalUnit", ou: "users" });
      if (!stock) {
        ldif += ldifEntry(`ou=policies,${suffix}`, {
          objectClass: "organizationalUnit",
          ou: "policies",
        });
        // ppolicy enforces pwdAccountLockedTime only under a policy with pwdLockout.
        ldif += ldifEntry(`cn=default,ou=policies,${suffix}`, {
          objectClass: ["applicationProcess", "pwdPolicy"],
          cn: "default",
          pwdAttribute: "userPassword",
          pwdLockout: "TRUE",
        });
        ldif += ldifEntry(`${EXPIRING_POLICY},${suffix}`, {
          objectClass: ["applicationProcess", "pwdPolicy"],
          cn: "expiring",
          pwdAttribute: "userPassword",
          pwdMaxAge: "86400",
          pwdGraceAuthNLimit: "0",
        });
      }
      if (i === 0) {
        ldif += ldifEntry(`ou=services,${suffix}`, {
          objectClass: "organizationalUnit",
          ou: "services",
        });
        ldif += ldifEntry(serviceDn, {
          objectClass: ["applicationProcess", "simpleSecurityObject"],
          cn: "relay",
          userPassword: hashSaltedSha("SSHA", servicePassword),
        });
      }
      for (const user of users.filter((u) => u.dn.endsWith(`,${suffix}`))) {
        ldif += userLdif(user);
      }
      await Deno.writeTextFile(`${dir}/seed${i}.ldif`, ldif);
      await run(SLAPADD, ["-f", conf, "-b", suffix, "-l", `${dir}/seed${i}.ldif`, "-q"]);
    }
    const stray = users.filter((u) =>
      !suffixes.slice(0, domains.length).some((s) => u.dn.endsWith(`,${s}`))
    );
    if (stray.length > 0) {
      throw new Error(`seed users outside the domains: ${stray.map((u) => u.email)}`);
    }

    const server = new SlapdProcess(dir, conf, adminDn, adminPassword);
    await server.start();
    const { port, ldapsPort } = server;
    const handle: Slapd = {
      url: `ldap://127.0.0.1:${port}`,
      ldapsUrl: `ldaps://127.0.0.1:${ldapsPort}`,
      port,
      ldapsPort,
      adminDn,
      adminPassword,
      serviceDn,
      servicePassword,
      baseDns: suffixes,
      caPem: await Deno.readTextFile(`${dir}/ca.pem`),
      caFile: `${dir}/ca.pem`,
      users,
      dir,
      get pid() {
        return server.pid;
      },
      ldapConfig: (overrides = {}) =>
        ldapSchema.parse({
          url: `ldap://127.0.0.1:${port}`,
          bind_dn: serviceDn,
          bind_password: servicePassword,
          timeout_ms: 2000,
          pool_size: 2,
          ...overrides,
        }),
      search: (base, filter, attributes) =>
        server.adminSearch(`ldap://127.0.0.1:${port}`, base, filter, attributes),
      stop: () => server.stop(),
      restart: async () => {
        await server.stop();
        await server.start();
      },
      pause: () => server.signal("SIGSTOP"),
      resume: () => server.signal("SIGCONT"),
      close: async () => {
        await server.stop();
        await Deno.remove(dir, { recursive: true });
      },
      [Symbol.asyncDispose]: () => handle.close(),
    };
    return handle;
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** Where seed users go: `uid=<local>,ou=users,<suffix>`, `uidNumber` 5000 + index. */
export function seedUsers(seeds: SeedUser[]): SeededUser[] {
  return seeds.map((seed, i) => {
    const at = seed.email.lastIndexOf("@");
    const local = seed.email.slice(0, at).toLowerCase();
    const domain = seed.email.slice(at + 1).toLowerCase();
    return {
      givenName: local,
      surname: local,
      disabled: false,
      expired: false,
      ...seed,
      dn: `uid=${local},ou=users,${suffixFor(domain)}`,
      uidNumber: 5000 + i,
    };
  });
}

/** A seeded user's entry in the prototype's layout, without password or account state. */
export function userAttributes(user: SeededUser): Record<string, string | string[]> {
  const local = user.dn.slice(4, user.dn.indexOf(","));
  const domain = user.email.slice(user.email.lastIndexOf("@") + 1).toLowerCase();
  return {
    objectClass: ["top", "inetOrgPerson", "posixAccount"],
    uid: local,
    cn: `${user.givenName} ${user.surname}`,
    givenName: user.givenName,
    sn: user.surname,
    mail: user.email,
    uidNumber: String(user.uidNumber),
    gidNumber: String(user.uidNumber),
    homeDirectory: `/home/${domain}/${local}`,
  };
}

function userLdif(user: SeededUser): string {
  const domain = user.email.slice(user.email.lastIndexOf("@") + 1).toLowerCase();
  return ldifEntry(user.dn, {
    ...userAttributes(user),
    userPassword: hashSaltedSha("SSHA", user.password),
    ...(user.disabled ? { pwdAccountLockedTime: "000001010000Z" } : {}),
    ...(user.expired
      ? {
        pwdPolicySubentry: `${EXPIRING_POLICY},${suffixFor(domain)}`,
        pwdChangedTime: "20000101000000Z",
      }
      : {}),
  });
}

/** The slapd child process: start on fixed ports (chosen on first start), stop, signal. */
class SlapdProcess {
  port = 0;
  ldapsPort = 0;
  #child: Deno.ChildProcess | undefined;
  #stderr: Promise<string> | undefined;
  #paused = false;

  constructor(
    readonly dir: string,
    readonly conf: string,
    readonly adminDn: string,
    readonly adminPassword: string,
  ) {}

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  async start(): Promise<void> {
    const firstStart = this.port === 0;
    let lastError: unknown;
    for (let attempt = 0; attempt < (firstStart ? 5 : 1); attempt++) {
      if (firstStart) [this.port, this.ldapsPort] = freePorts(2);
      try {
        await this.#spawnAndWait();
        return;
      } catch (error) {
        lastError = error;
        await this.stop();
      }
    }
    throw lastError;
  }

  async #spawnAndWait(): Promise<void> {
    const child = new Deno.Command(SLAPD, {
      args: [
        "-h",
        `ldap://127.0.0.1:${this.port}/ ldaps://127.0.0.1:${this.ldapsPort}/`,
        "-f",
        this.conf,
        "-d",
        "0",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#paused = false;
    this.#stderr = new Response(child.stderr).text().catch(() => "");
    let exited = false;
    child.status.then(() => exited = true);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !exited) {
      if (await this.#bindOnce(`ldap://127.0.0.1:${this.port}`)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const status = exited ? await child.status : undefined;
    const stderr = exited ? await this.#stderr : "";
    throw new Error(
      `slapd did not start on ports ${this.port}/${this.ldapsPort}` +
        (status ? ` (exit code ${status.code})` : " (no bind within 15 s)") +
        (stderr ? `:\n${stderr}` : ""),
    );
  }

  async #bindOnce(url: string): Promise<boolean> {
    const client = new Client({ url, connectTimeout: 1000, timeout: 1000 });
    try {
      await client.bind(this.adminDn, this.adminPassword);
      return true;
    } catch {
      return false;
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  async adminSearch(
    url: string,
    base: string,
    filter: string,
    attributes: string[] = [],
  ): Promise<Array<Record<string, string | string[]>>> {
    const client = new Client({ url, connectTimeout: 2000, timeout: 2000 });
    try {
      await client.bind(this.adminDn, this.adminPassword);
      const { searchEntries } = await client.search(base, { scope: "sub", filter, attributes });
      return searchEntries.map((entry) =>
        Object.fromEntries(
          Object.entries(entry).map((
            [k, v],
          ) => [k, Array.isArray(v) ? v.map(String) : String(v)]),
        )
      );
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  signal(signal: Deno.Signal): void {
    if (!this.#child) throw new Error("slapd is not running");
    this.#child.kill(signal);
    this.#paused = signal === "SIGSTOP";
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      if (this.#paused) child.kill("SIGCONT");
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, 5000);
    try {
      await child.status;
      await this.#stderr;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A TCP proxy in front of slapd that can cut connections and sees plain-LDAP binds. */
export interface LdapProxy {
  /** `ldap://127.0.0.1:PORT` of the proxy. */
  url: string;
  /** Its port. */
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** DNs of the BindRequests clients sent (plain LDAP only), in order. */
  binds: string[];
  /** Closes every open connection (both sides), as a firewall or a server idle timeout would. */
  killAll(): void;
  /** Stops forwarding on open connections (a black hole); new connections work. */
  freezeAll(): void;
  /** Stops listening and closes everything. */
  close(): Promise<void>;
}

/** Reads a BER length at `at`; returns [length, bytes used] or null when incomplete. */
function berLength(bytes: Uint8Array, at: number): [number, number] | null {
  if (at >= bytes.length) return null;
  const first = bytes[at];
  if (first < 0x80) return [first, 1];
  const count = first & 0x7f;
  if (at + count >= bytes.length) return null;
  let length = 0;
  for (let i = 1; i <= count; i++) length = length * 256 + bytes[at + i];
  return [length, 1 + count];
}

/** The bind DN of an LDAPMessage, or undefined when it is not a BindRequest. */
function bindDnOf(message: Uint8Array): string | undefined {
  // SEQUENCE { messageID INTEGER, [APPLICATION 0] BindRequest { version, name OCTET STRING, ... } }
  let at = 0;
  const seq = berLength(message, 1);
  if (message[0] !== 0x30 || !seq) return undefined;
  at = 1 + seq[1];
  const id = berLength(message, at + 1);
  if (message[at] !== 0x02 || !id) return undefined;
  at += 1 + id[1] + id[0];
  const op = berLength(message, at + 1);
  if (message[at] !== 0x60 || !op) return undefined;
  at += 1 + op[1];
  const version = berLength(message, at + 1);
  if (!version) return undefined;
  at += 1 + version[1] + version[0];
  const name = berLength(message, at + 1);
  if (message[at] !== 0x04 || !name) return undefined;
  return new TextDecoder().decode(message.subarray(at + 1 + name[1], at + 1 + name[1] + name[0]));
}

/** Starts a proxy to `127.0.0.1:targetPort` on a free port. */
export function startLdapProxy(targetPort: number): LdapProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const pairs = new Set<{ client: Deno.Conn; server?: Deno.Conn; frozen: boolean }>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const binds: string[] = [];
  const closeQuietly = (conn?: Deno.Conn) => {
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
  };
  const track = (task: Promise<void>) => {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };
  const pump = async (
    pair: { frozen: boolean },
    from: Deno.Conn,
    to: Deno.Conn,
    inspect: boolean,
  ) => {
    const buffer = new Uint8Array(65536);
    let pending = new Uint8Array(0);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null || pair.frozen) break;
        const chunk = buffer.slice(0, n);
        if (inspect) {
          const all = new Uint8Array(pending.length + n);
          all.set(pending);
          all.set(chunk, pending.length);
          let at = 0;
          while (at < all.length) {
            const len = berLength(all, at + 1);
            if (!len || at + 1 + len[1] + len[0] > all.length) break;
            const end = at + 1 + len[1] + len[0];
            const dn = bindDnOf(all.subarray(at, end));
            if (dn !== undefined) binds.push(dn);
            at = end;
          }
          pending = all.slice(at);
        }
        let written = 0;
        while (written < chunk.length) written += await to.write(chunk.subarray(written));
      }
    } catch {
      // A side was closed.
    }
  };
  const serve = async (client: Deno.Conn) => {
    const pair: { client: Deno.Conn; server?: Deno.Conn; frozen: boolean } = {
      client,
      frozen: false,
    };
    pairs.add(pair);
    try {
      pair.server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
      const up = pump(pair, client, pair.server, true);
      const down = pump(pair, pair.server, client, false);
      await Promise.race([up, down]);
      if (pair.frozen) await Promise.all([up, down]);
    } catch {
      // Upstream refused: the client sees its connection closed.
    } finally {
      pairs.delete(pair);
      closeQuietly(pair.server);
      closeQuietly(client);
    }
  };
  const acceptLoop = (async () => {
    try {
      for await (const conn of listener) {
        accepted += 1;
        track(serve(conn));
      }
    } catch {
      // Listener closed.
    }
  })();
  return {
    url: `ldap://127.0.0.1:${port}`,
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    binds,
    killAll() {
      for (const pair of pairs) {
        closeQuietly(pair.client);
        closeQuietly(pair.server);
      }
    },
    freezeAll() {
      // Reads still complete (and are dropped), so nothing is forwarded either way.
      for (const pair of pairs) pair.frozen = true;
    },
    async close() {
      listener.close();
      await acceptLoop;
      this.killAll();
      await Promise.all([...tasks]);
    },
  };
}
