/**
 * A throw-away 389 Directory Server for tests: Debian's `389-ds-base`,
 * created with `dscreate from-file` (the prototype's DIT: `dc=example,dc=com`
 * and `dc=company,dc=com`, each with `ou=users`; users with `mail` and `uid`;
 * one locked with `nsAccountLock`), listening on free 127.0.0.1 ports only,
 * with the self-signed CA dscreate makes (certificate for `localhost`).
 *
 * dscreate needs root; without systemd as PID 1 it runs through
 * `scripts/ldap/systemctl_shim.sh`. Creating costs ~10 s: start one per
 * test file. The instance (a unique name) is removed by `close()`.
 *
 * ```ts ignore
 * await using ds = await start389ds();
 * const auth = new LdapAuthenticator(ds.ldapConfig(), { caPem: ds.caPem });
 * ```
 *
 * @module
 */
import { Attribute, Change, Client } from "ldapts";
import { ldapSchema } from "../../src/config/ldap_schema.ts";
import {
  DEFAULT_USERS,
  exists,
  freePorts,
  run,
  type SeededUser,
  type SeedUser,
  seedUsers,
  suffixFor,
  type TestDirectory,
  userAttributes,
} from "./slapd.ts";
import { until } from "./until.ts";

const DSCREATE = "/usr/sbin/dscreate";
const NS_SLAPD = "/usr/sbin/ns-slapd";
const INSTALL_HINT =
  "install it with: apt-get install -y 389-ds-base ldap-utils (and run the tests as root)";
const SHIM = new URL("../../scripts/ldap/systemctl_shim.sh", import.meta.url).pathname;

/** Options for {@linkcode start389ds}. */
export interface Ds389Options {
  /** Users to seed; default `DEFAULT_USERS` (the locked one gets `nsAccountLock: true`). */
  users?: SeedUser[];
}

/**
 * A running 389 DS instance: `url` is `ldap://localhost:PORT` (use StartTLS:
 * 389 DS refuses Password Modify without TLS; its certificate names
 * `localhost`), the admin is `cn=Directory Manager`, `caPem` dscreate's CA.
 */
export interface Ds389 extends TestDirectory {
  /** The instance name (`/etc/dirsrv/slapd-<instance>`). */
  instance: string;
  /** Runs `fn` on a connection bound as the Directory Manager. */
  asAdmin<T>(fn: (client: Client) => Promise<T>): Promise<T>;
  /** Stops ns-slapd (SIGTERM), waits until it is gone. */
  stop(): Promise<void>;
  /** Starts ns-slapd again on the same ports and data; resolves once it answers. */
  start(): Promise<void>;
  /** Stops the server and removes the instance. */
  close(): Promise<void>;
  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Everything dscreate made for an instance (removed by `close()`). */
function instancePaths(name: string): string[] {
  return [
    `/etc/dirsrv/slapd-${name}`,
    `/var/lib/dirsrv/slapd-${name}`,
    `/var/log/dirsrv/slapd-${name}`,
    `/run/lock/dirsrv/slapd-${name}`,
    `/run/dirsrv/slapd-${name}.pid`,
    `/run/dirsrv/slapd-${name}.stats`,
    `/run/slapd-${name}.socket`,
    `/dev/shm/slapd-${name}`,
    `/dev/shm/sem.slapd-${name}.stats`,
    `/etc/tmpfiles.d/dirsrv-${name}.conf`,
  ];
}

/**
 * Creates and starts a seeded 389 DS. Fails (never skips) with the apt
 * package to install when 389 DS is missing or the tests do not run as root.
 */
export async function start389ds(options: Ds389Options = {}): Promise<Ds389> {
  if (!await exists(DSCREATE) || !await exists(NS_SLAPD)) {
    throw new Error(`${DSCREATE} not found: 389 Directory Server is needed; ${INSTALL_HINT}`);
  }
  if (Deno.uid() !== 0) throw new Error(`dscreate needs root; ${INSTALL_HINT}`);
  const instance = `relayt${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const [port, securePort] = freePorts(2);
  const adminDn = "cn=Directory Manager";
  const adminPassword = `Dm-${crypto.randomUUID()}`;
  const baseDns = ["example.com", "company.com"].map(suffixFor);
  const serviceDn = `cn=relay,ou=services,${baseDns[0]}`;
  const servicePassword = `service-${crypto.randomUUID()}`;
  const configDir = `/etc/dirsrv/slapd-${instance}`;
  const pidFile = `/run/dirsrv/slapd-${instance}.pid`;
  const tmp = await Deno.makeTempDir({ prefix: "relay-389-" });
  const url = `ldap://localhost:${port}`;
  let pid = 0;

  const answers = async (): Promise<boolean> => {
    const client = new Client({ url: `ldap://127.0.0.1:${port}`, connectTimeout: 500 });
    try {
      await client.bind(adminDn, adminPassword);
      return true;
    } catch {
      return false;
    } finally {
      await client.unbind().catch(() => {});
    }
  };
  const start = async () => {
    await Deno.mkdir("/run/dirsrv", { recursive: true });
    await Deno.remove(`/run/slapd-${instance}.socket`).catch(() => {});
    // ns-slapd forks into the background once its configuration is read.
    await run(NS_SLAPD, ["-D", configDir, "-i", pidFile]);
    await until("389 DS to answer", answers, 30_000, 50);
    pid = Number((await Deno.readTextFile(pidFile)).trim());
  };
  // A daemon nobody reaps lingers as a zombie: that counts as gone too.
  const gone = () =>
    Deno.readTextFile(`/proc/${pid}/stat`).then(
      (stat) => / Z /.test(stat.slice(stat.lastIndexOf(")"))),
      () => true,
    );
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (pid === 0) return;
    try {
      Deno.kill(pid, signal);
    } catch {
      // Already gone.
    }
    await until("ns-slapd to exit", gone, 30_000, 50);
    pid = 0;
  };
  const remove = async () => {
    // dscreate may have started a server this handle never saw (it failed half-way).
    if (pid === 0) {
      pid = Number(await Deno.readTextFile(pidFile).catch(() => "0")) || 0;
    }
    await stop("SIGKILL");
    for (const path of instancePaths(instance)) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  };

  try {
    await Deno.copyFile(SHIM, `${tmp}/systemctl`);
    await Deno.chmod(`${tmp}/systemctl`, 0o755);
    await Deno.writeTextFile(
      `${tmp}/instance.inf`,
      [
        "[general]",
        "full_machine_name = localhost",
        "strict_host_checking = False",
        // Stopped at the end, so the listen addresses can be set before it ever serves.
        "start = False",
        "[slapd]",
        `instance_name = ${instance}`,
        `port = ${port}`,
        `secure_port = ${securePort}`,
        `root_password = ${adminPassword}`,
        "self_sign_cert = True",
        ...baseDns.flatMap((suffix, i) => [
          `[backend-suffix${i}]`,
          `suffix = ${suffix}`,
          "create_suffix_entry = True",
          "sample_entries = no",
        ]),
      ].join("\n") + "\n",
    );
    await run(DSCREATE, ["from-file", `${tmp}/instance.inf`], tmp, {
      PATH: `${tmp}:${Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
    });
    const dse = `${configDir}/dse.ldif`;
    await Deno.writeTextFile(
      dse,
      (await Deno.readTextFile(dse)).replace(
        /^dn: cn=config$/m,
        "dn: cn=config\nnsslapd-listenhost: 127.0.0.1\nnsslapd-securelistenhost: 127.0.0.1",
      ),
    );
    await start();
    const users = seedUsers(options.users ?? [...DEFAULT_USERS]);
    const asAdmin = async <T>(fn: (client: Client) => Promise<T>): Promise<T> => {
      const client = new Client({ url: `ldap://127.0.0.1:${port}`, timeout: 5000 });
      try {
        await client.bind(adminDn, adminPassword);
        return await fn(client);
      } finally {
        await client.unbind().catch(() => {});
      }
    };
    await asAdmin(async (client) => {
      await seed(client, { baseDns, serviceDn, servicePassword, users });
    });
    const handle: Ds389 = {
      url,
      port,
      instance,
      adminDn,
      adminPassword,
      serviceDn,
      servicePassword,
      baseDns,
      caPem: await Deno.readTextFile(`${configDir}/ca.crt`),
      users,
      ldapConfig: (overrides = {}) =>
        ldapSchema.parse({
          url,
          starttls: true,
          ca: `${configDir}/ca.crt`,
          bind_dn: serviceDn,
          bind_password: servicePassword,
          timeout_ms: 2000,
          pool_size: 2,
          ...overrides,
        }),
      asAdmin,
      stop: () => stop(),
      start,
      close: remove,
      [Symbol.asyncDispose]: remove,
    };
    return handle;
  } catch (error) {
    await remove();
    throw error;
  }
}

/** The service account, `ou=users` per suffix, the users, and read rights for the service. */
async function seed(
  client: Client,
  { baseDns, serviceDn, servicePassword, users }: {
    baseDns: string[];
    serviceDn: string;
    servicePassword: string;
    users: SeededUser[];
  },
): Promise<void> {
  // Operational state attributes must be named to be readable; passwords never are.
  const readable = [
    "objectClass",
    "uid",
    "cn",
    "sn",
    "givenName",
    "mail",
    "uidNumber",
    "gidNumber",
    "homeDirectory",
    "nsAccountLock",
    "passwordExpirationTime",
  ].join(" || ");
  for (const suffix of baseDns) {
    await client.modify(suffix, [
      new Change({
        operation: "add",
        modification: new Attribute({
          type: "aci",
          values: [
            `(targetattr = "${readable}")(version 3.0; acl "relay service read"; ` +
            `allow (read, search, compare) userdn = "ldap:///${serviceDn}";)`,
          ],
        }),
      }),
    ]);
    await client.add(`ou=users,${suffix}`, {
      objectClass: ["top", "organizationalUnit"],
      ou: "users",
    });
  }
  await client.add(`ou=services,${baseDns[0]}`, {
    objectClass: ["top", "organizationalUnit"],
    ou: "services",
  });
  // 389 DS hashes a clear-text userPassword on write with its own scheme (PBKDF2-SHA512).
  await client.add(serviceDn, {
    objectClass: ["top", "applicationProcess", "simpleSecurityObject"],
    cn: "relay",
    userPassword: servicePassword,
  });
  for (const user of users) {
    if (user.expired) throw new Error("389 DS seeding does not expire passwords");
    await client.add(user.dn, {
      ...userAttributes(user),
      userPassword: user.password,
      ...(user.disabled ? { nsAccountLock: "true" } : {}),
    });
  }
}
