/**
 * The CLI's help texts: `relay --help`, `relay help [COMMAND [SUBCOMMAND]]`
 * and `--help`/`-h` after any command or subcommand. Help is answered before
 * the configuration is read or anything is started, so `relay serve --help`
 * never binds a port.
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };

/** The relay's version (deno.json `version`). */
export const VERSION: string = denoJson.version;

/** `relay --version`: the relay's and the runtime's versions. */
export function versionText(): string {
  return `relay ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, typescript ${Deno.version.typescript})`;
}

const CONFIG_OPTION = "  --config FILE, -c FILE   configuration file (default config/relay.toml)";

interface CommandHelp {
  /** One line for the command list. */
  summary: string;
  /** The command's own page. */
  text: string;
  /** Pages of its subcommands. */
  subcommands?: Record<string, string>;
}

const USER_LDAP_AUTH =
  "  --bind-dn DN --bind-password-file FILE   LDAP admin bind (default: [ldap.admin])";

const COMMANDS: Record<string, CommandHelp> = {
  serve: {
    summary: "run the relay (SMTPS, submission, OAuth2 server) until SIGINT/SIGTERM",
    text: `usage: relay serve [--config FILE]

Runs the relay: the SMTPS and submission listeners, the delivery queue and,
unless [oauth] enabled = false, the OAuth2 authorization server. Every check of
\`relay check\` runs first; all problems are printed with their keys.
SIGHUP reloads the TLS certificate and the DKIM keys; SIGINT/SIGTERM stop
gracefully.

options:
${CONFIG_OPTION}`,
  },
  check: {
    summary: "validate the configuration as serve would, short of binding ports",
    text: `usage: relay check [--config FILE]

Validates the configuration file and everything serve checks before it binds:
TOML syntax (line and column), every key and range, listen addresses and the
resolution of their host names, TLS certificate and key files, backend URLs and
CA files, the LDAP CA file. Prints every problem with its key; exit 0 when
none, 1 otherwise.

options:
${CONFIG_OPTION}`,
  },
  user: {
    summary: "manage users in password files or in LDAP",
    text: `usage: relay user add|passwd|remove|list [...]
       relay user add|passwd|remove|show --ldap [...]

subcommands (relay user SUBCOMMAND --help for each):
  add      add a user with a new password (asked twice, or --password-stdin)
  passwd   change a user's password
  remove   remove a user
  list     list password-file users
  show     show an LDAP user (--ldap)

options:
${CONFIG_OPTION}`,
    subcommands: {
      add: `usage: relay user add EMAIL [--password-stdin] [--global]
       relay user add --ldap EMAIL --first GIVEN --last SURNAME [--cn NAME] [--create-ou]
                      [--password-stdin] [--bind-dn DN --bind-password-file FILE]

Adds EMAIL with an argon2id hash to config/users/<domain>.txt ([auth.file]
users_dir), or to the global users file with --global, or to the LDAP
directory with --ldap.

options:
  --password-stdin         read the password from stdin instead of asking twice
  --global                 write to [auth.file] users instead of the domain's file
  --ldap                   add to the LDAP directory ([ldap], [ldap.admin])
  --first, --last, --cn    LDAP givenName, sn and cn
  --create-ou              create the domain's organizational unit when missing
${USER_LDAP_AUTH}
${CONFIG_OPTION}`,
      passwd: `usage: relay user passwd EMAIL [--password-stdin]
       relay user passwd --ldap EMAIL [--password-stdin] [--bind-dn DN --bind-password-file FILE]

Sets a new password for EMAIL in its password file (or in LDAP with --ldap).

options:
  --password-stdin         read the password from stdin instead of asking twice
  --ldap                   change the password in the LDAP directory
${USER_LDAP_AUTH}
${CONFIG_OPTION}`,
      remove: `usage: relay user remove EMAIL
       relay user remove --ldap EMAIL [--bind-dn DN --bind-password-file FILE]

Removes EMAIL from its password file (or from LDAP with --ldap).

options:
  --ldap                   remove from the LDAP directory
${USER_LDAP_AUTH}
${CONFIG_OPTION}`,
      list: `usage: relay user list [--domain DOMAIN]

Lists password-file users: address, hash scheme and file.

options:
  --domain DOMAIN          only this domain's users
${CONFIG_OPTION}`,
      show: `usage: relay user show --ldap EMAIL [--bind-dn DN --bind-password-file FILE]

Shows the LDAP entry of EMAIL.

options:
${USER_LDAP_AUTH}
${CONFIG_OPTION}`,
    },
  },
  certs: {
    summary: "development CA and server certificate",
    text: `usage: relay certs generate|show [...]

subcommands (relay certs SUBCOMMAND --help for each):
  generate   create a development CA and a server certificate
  show       print the served certificate's subject, names, validity, fingerprint

options:
${CONFIG_OPTION}`,
    subcommands: {
      generate: `usage: relay certs generate [--hostname NAME]... [--dir DIR] [--force]

Creates a development CA (reused when DIR already holds ca.crt/ca.key) and a
server certificate, valid 397 days, for localhost, 127.0.0.1, ::1,
server.hostname and every --hostname. Writes tls.cert/tls.key, or
DIR/server.crt and DIR/server.key with --dir. An existing server certificate
is kept unless --force is given.

options:
  --hostname NAME          another DNS name or IP address (repeatable)
  --dir DIR                write into DIR instead of tls.cert/tls.key
  --force                  replace an existing server certificate
${CONFIG_OPTION}`,
      show: `usage: relay certs show [--cert PATH]

Prints subject, names, validity and fingerprint of tls.cert (or PATH).

options:
  --cert PATH              another certificate file
${CONFIG_OPTION}`,
    },
  },
  dkim: {
    summary: "DKIM signing keys per domain: generate, DNS records, list, rotate",
    text: `usage: relay dkim generate|dns|list|rotate [...]

Keys live under [dkim] dir (default config/dkim): <domain>/keys.json and
<domain>/<selector>.pem (mode 0600). The relay signs the mail of every domain
with an active key (Ed25519 and RSA-2048 by default, relaxed/relaxed) and
reads the keys at start and on SIGHUP.

subcommands (relay dkim SUBCOMMAND --help for each):
  generate   new keys for a domain, signing at once; prints the DNS records
  dns        the DNS TXT records to publish
  list       every key and its state
  rotate     new keys under new selectors, the old ones retired after an overlap

options:
${CONFIG_OPTION}`,
    subcommands: {
      generate: `usage: relay dkim generate --domain D [--selector S] [--algorithm ed25519|rsa]
                          [--bits 2048]

Creates keys for D that sign at once: an Ed25519 and an RSA key (dual
signatures, RFC 8463) unless --algorithm picks one. The selector defaults to
the date (YYYYMMDD); with both algorithms "-ed25519" and "-rsa" are appended.
Prints the DNS TXT records to publish. Refuses when D already has an active
key of that algorithm (use rotate).

options:
  --domain D               the signing domain (d=), the users' domain
  --selector S             the selector (s=)
  --algorithm A            ed25519 or rsa (default: both)
  --bits N                 RSA modulus length (default 2048)
${CONFIG_OPTION}`,
      dns: `usage: relay dkim dns [--domain D]

Prints, for every key that is not expired, a comment line and a zone-file
line: S._domainkey.D. 3600 IN TXT "v=DKIM1; k=...; p=..." split into
strings of at most 255 bytes.

options:
  --domain D               only this domain
${CONFIG_OPTION}`,
      list: `usage: relay dkim list

Lists every key: domain, selector, algorithm, state (pending: published, not
signing yet; active: signing; retired: published, not signing; expired: the
DNS record may be removed) and its dates.

options:
${CONFIG_OPTION}`,
      rotate: `usage: relay dkim rotate --domain D [--wait HOURS] [--overlap DAYS] [--bits N]

Creates new keys for D under new selectors, of the same algorithms as its
current ones. The new keys sign after --wait hours (default 48: publish
their records first); the old keys stop signing then and stay published
--overlap days longer (default 7) for mail still queued or read later.
Reload the relay (SIGHUP) so it reads the new keys.

options:
  --domain D               the signing domain
  --wait HOURS             hours until the new keys sign (default 48)
  --overlap DAYS           days the old records stay published after (default 7)
  --bits N                 RSA modulus length (default: the old key's)
${CONFIG_OPTION}`,
    },
  },
  queue: {
    summary: "the delivery queue (also while the relay runs)",
    text: `usage: relay queue list|show|retry|delete|stats [...]

subcommands (relay queue SUBCOMMAND --help for each):
  list     messages waiting for delivery
  show     one message's envelope, attempts and last replies
  retry    deliver now instead of at the scheduled retry
  delete   drop a message without delivering or bouncing it
  stats    counts, size, oldest message, dead letters

options:
  --spool DIR              another spool than [spool] dir (a dead node's, copied here)
${CONFIG_OPTION}`,
    subcommands: {
      list: `usage: relay queue list [--json]

Lists queued messages: ID, size, arrival, sender.

options:
  --json                   one JSON document
${CONFIG_OPTION}`,
      show: `usage: relay queue show ID [--json]

Shows a queued message's envelope, recipients' states and delivery attempts.

options:
  --json                   one JSON document
${CONFIG_OPTION}`,
      retry: `usage: relay queue retry ID|--all

Schedules the message (or every message) for delivery now; a running relay
picks the request up within [relay] scan_interval seconds.

options:
  --all                    every queued message
${CONFIG_OPTION}`,
      delete: `usage: relay queue delete ID

Removes a queued message without delivering or bouncing it.

options:
${CONFIG_OPTION}`,
      stats: `usage: relay queue stats [--json]

Prints the number of messages (new, deferred), their size, pending recipients,
the oldest message's age and the dead letters.

options:
  --json                   one JSON document
${CONFIG_OPTION}`,
    },
  },
  limits: {
    summary: "see and lift login lockouts of the running relay",
    text: `usage: relay limits show|clear ADDRESS|ACCOUNT [--url URL] [--json]

relay limits show ADDRESS|ACCOUNT    the lockouts in force (pair, address, token,
                                     account-unfamiliar) and their seconds left
relay limits clear ADDRESS|ACCOUNT   lift them and forget the failures behind them

The counters live in the running relay (its [state] store), so the command asks
it through the admin listener (GET/DELETE /limits/...), sending the token of
admin.token_file when one is set. A relay with [admin] enabled = false cannot
be asked.

options:
  --url URL                the admin listener (default http://<admin.listen>)
  --json                   the answer as JSON
${CONFIG_OPTION}`,
  },
  oauth: {
    summary: "the embedded OAuth2 server's tools: login, signing keys, client secrets",
    text: `usage: relay oauth login|keys|hash-secret [...]

subcommands (relay oauth SUBCOMMAND --help for each):
  login         get tokens for a user through the browser (authorization code + PKCE)
  keys          rotate or list the token signing keys
  hash-secret   hash a client secret for [[oauth.clients]] secret_hash

options:
${CONFIG_OPTION}`,
    subcommands: {
      login: `usage: relay oauth login --email EMAIL [--client-id ID] [--scope SCOPE] [--issuer URL]
                         [--no-browser] [--json]

Signs EMAIL in through the relay's OAuth2 server (discovery, authorization
code with PKCE, a loopback redirect) and prints the access and refresh tokens.

options:
  --email EMAIL            the user (login_hint)
  --client-id ID           default thunderbird-email-client
  --scope SCOPE            default smtp.send
  --issuer URL             default the configured issuer (oauth.issuer, or oauth.listen)
  --no-browser             print the URL instead of opening a browser
  --json                   print the tokens as JSON
${CONFIG_OPTION}`,
      keys: `usage: relay oauth keys rotate|list

rotate: make a new signing key now (earlier keys stay published until their
tokens expire); list: print the key IDs.

options:
${CONFIG_OPTION}`,
      "hash-secret": `usage: relay oauth hash-secret < secret.txt

Reads a client secret from stdin and prints the hash for secret_hash.

options:
${CONFIG_OPTION}`,
    },
  },
};

/** `relay --help`: every command with one line each. */
export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length)) + 2;
  const lines = Object.entries(COMMANDS).map(([name, help]) =>
    `  ${name.padEnd(width)}${help.summary}`
  );
  return `usage: relay <command> [--config FILE] [options]
       relay <command> [<subcommand>] --help
       relay --version

commands:
${lines.join("\n")}

The configuration file defaults to config/relay.toml; without it the embedded
defaults apply (SMTPS 127.0.0.1:8465, submission 127.0.0.1:8587).`;
}

/** The names of every command, and of each command's subcommands (for tests). */
export function helpTopics(): Array<[string] | [string, string]> {
  return Object.entries(COMMANDS).flatMap(([name, help]) => [
    [name] as [string],
    ...Object.keys(help.subcommands ?? {}).map((sub) => [name, sub] as [string, string]),
  ]);
}

/**
 * The help page for `relay COMMAND [SUBCOMMAND]`, or null for an unknown
 * command. An unknown subcommand gets its command's page.
 */
export function commandHelp(command: string, subcommand?: string): string | null {
  const help = COMMANDS[command];
  if (help === undefined) return null;
  return (subcommand !== undefined ? help.subcommands?.[subcommand] : undefined) ?? help.text;
}
