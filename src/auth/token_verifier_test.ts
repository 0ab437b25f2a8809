import assert from "node:assert/strict";
import { type JWSHeaderParameters, SignJWT } from "jose";
import { oauthSchema } from "../config/oauth_schema.ts";
import {
  hashSecretSsha512,
  MemoryOAuthStore,
  signAccessToken,
  SigningKeys,
  startOAuthServer,
} from "../oauth/mod.ts";
import type { BearerResult, PasswordAuthenticator } from "./authenticator.ts";
import { createExternalBearerAuthenticator, JwtBearerAuthenticator } from "./token_verifier.ts";
import { startTestIdp } from "../../tests/support/idp.ts";

const ISSUER = "https://auth.example.com";
const T0 = Date.UTC(2026, 0, 1);

const b64url = (value: unknown) =>
  new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });

interface Setup {
  keys: SigningKeys;
  store: MemoryOAuthStore;
  verifier: (options?: { now?: number; disabled?: string[] }) => JwtBearerAuthenticator;
  sign: (claims?: Record<string, unknown>, header?: Record<string, unknown>) => Promise<string>;
  keyLookups: () => number;
}

async function setup(dir: string): Promise<Setup> {
  const keys = await SigningKeys.open({
    file: `${dir}/keys.json`,
    rotateDays: 90,
    accessTokenTtlSeconds: 3600,
    now: () => T0,
  });
  const store = new MemoryOAuthStore({ now: () => T0 });
  let lookups = 0;
  const getKey = (header: JWSHeaderParameters) => {
    lookups++;
    return keys.getKey(header);
  };
  return {
    keys,
    store,
    keyLookups: () => lookups,
    verifier: (options = {}) =>
      new JwtBearerAuthenticator({
        issuer: ISSUER,
        audience: "smtp",
        keys: getKey,
        isRevoked: (ids) => store.isRevoked(ids),
        domainEnabled: (domain) => !(options.disabled ?? []).includes(domain),
        clientAllowed: (clientId, domain) =>
          clientId === "thunderbird-email-client" ||
          (clientId === "webmail" && domain === "example.com"),
        now: () => options.now ?? T0 + 1000,
      }),
    sign: async (claims = {}, header = {}) => {
      const { kid, key } = await keys.signingKey();
      return await new SignJWT({
        iss: ISSUER,
        sub: "alice@example.com",
        aud: "smtp",
        iat: T0 / 1000,
        exp: T0 / 1000 + 3600,
        client_id: "thunderbird-email-client",
        scope: "smtp.send",
        email: "alice@example.com",
        domain: "example.com",
        sid: "s1",
        jti: "j1",
        ...claims,
      })
        .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid, ...header })
        .sign(key);
    },
  };
}

function assertRefused(
  result: BearerResult,
  status = "invalid_token",
  reason = "invalid_credentials",
): void {
  assert.equal(result.ok, false, "expected a refusal");
  if (result.ok) return;
  assert.equal(result.reason, reason);
  assert.equal(result.status, status);
  assert.equal(result.scope, "smtp.send");
}

Deno.test("JwtBearerAuthenticator accepts a good token and refuses forgeries", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const s = await setup(dir);
    const verifier = s.verifier();
    const good = await s.sign();

    await t.step("a valid token for its user (case-insensitive), or no user", async () => {
      assert.deepEqual(await verifier.verifyBearer("Alice@EXAMPLE.com", good), {
        ok: true,
        email: "alice@example.com",
        domain: "example.com",
        backend: "oauth",
      });
      assert.ok((await verifier.verifyBearer(null, good)).ok);
    });

    await t.step("verified tokens are cached: no second signature check", async () => {
      const fresh = s.verifier();
      const before = s.keyLookups();
      for (let i = 0; i < 5; i++) assert.ok((await fresh.verifyBearer(null, good)).ok);
      assert.equal(s.keyLookups() - before, 1);
    });

    await t.step("expiry and not-before, with a 30 s leeway", async () => {
      const exp = T0 + 3600_000;
      assert.ok((await s.verifier({ now: exp + 20_000 }).verifyBearer(null, good)).ok);
      assertRefused(await s.verifier({ now: exp + 31_000 }).verifyBearer(null, good));
      // A cached token also expires.
      const cachedVerifier = s.verifier({ now: T0 });
      assert.ok((await cachedVerifier.verifyBearer(null, good)).ok);
      const later = new JwtBearerAuthenticator({
        issuer: ISSUER,
        audience: "smtp",
        keys: s.keys.getKey,
        now: () => exp + 60_000,
      });
      assertRefused(await later.verifyBearer(null, good));
      const future = await s.sign({ nbf: T0 / 1000 + 600 });
      assertRefused(await verifier.verifyBearer(null, future));
    });

    await t.step("wrong audience, issuer or type", async () => {
      assertRefused(await verifier.verifyBearer(null, await s.sign({ aud: "imap" })));
      assertRefused(await verifier.verifyBearer(null, await s.sign({ iss: "https://evil" })));
      assertRefused(await verifier.verifyBearer(null, await s.sign({}, { typ: "JWT" })));
    });

    await t.step("alg none, HS256 keyed with the public key, tampering, foreign key", async () => {
      const [header, payload, signature] = good.split(".");
      const claims = JSON.parse(new TextDecoder().decode(Uint8Array.fromBase64(payload, {
        alphabet: "base64url",
      })));
      const kid = s.keys.kids()[0];
      const none = `${b64url({ alg: "none", typ: "at+jwt", kid })}.${payload}.`;
      assertRefused(await verifier.verifyBearer(null, none));

      const publicJwk = s.keys.publicJwks().keys[0];
      for (const secret of [JSON.stringify(publicJwk), publicJwk.x!]) {
        const hs = await new SignJWT(claims)
          .setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid })
          .sign(new TextEncoder().encode(secret));
        assertRefused(await verifier.verifyBearer(null, hs));
      }

      const tampered = `${header}.${
        b64url({ ...claims, email: "mallory@example.com" })
      }.${signature}`;
      assertRefused(await verifier.verifyBearer("mallory@example.com", tampered));

      const otherDir = await Deno.makeTempDir();
      try {
        const other = await SigningKeys.open({
          file: `${otherDir}/keys.json`,
          rotateDays: 0,
          accessTokenTtlSeconds: 3600,
        });
        const { key } = await other.signingKey();
        const forged = await new SignJWT(claims)
          .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid })
          .sign(key);
        assertRefused(await verifier.verifyBearer(null, forged));
      } finally {
        await Deno.remove(otherDir, { recursive: true });
      }
      assertRefused(await verifier.verifyBearer(null, "not-a-jwt"));
    });

    await t.step("missing scope is insufficient_scope", async () => {
      assertRefused(
        await verifier.verifyBearer(null, await s.sign({ scope: "openid profile" })),
        "insufficient_scope",
      );
    });

    await t.step("the SASL user must be the token's email", async () => {
      assertRefused(await verifier.verifyBearer("bob@example.com", good));
      assertRefused(await verifier.verifyBearer("alice@example.org", good));
    });

    await t.step("disabled domain, client not allowed for the domain", async () => {
      assertRefused(
        await s.verifier({ disabled: ["example.com"] }).verifyBearer(null, good),
        "invalid_token",
        "domain_disabled",
      );
      const webmail = await s.sign({
        client_id: "webmail",
        email: "carol@other.test",
        domain: "other.test",
        sub: "carol@other.test",
      });
      assertRefused(await verifier.verifyBearer(null, webmail));
      const unknown = await s.sign({ client_id: "removed-client" });
      assertRefused(await verifier.verifyBearer(null, unknown));
    });

    await t.step("revocation is checked on every use, cached or not", async () => {
      const token = await s.sign({ jti: "j2", sid: "s2" });
      assert.ok((await verifier.verifyBearer(null, token)).ok);
      await s.store.revokeToken("j2", T0 + 7200_000);
      assertRefused(await verifier.verifyBearer(null, token));
      const family = await s.sign({ jti: "j3", sid: "s3" });
      assert.ok((await verifier.verifyBearer(null, family)).ok);
      await s.store.revokeSession("s3", T0 + 7200_000);
      assertRefused(await verifier.verifyBearer(null, family));
    });

    await t.step("tokens from signAccessToken carry the RFC 9068 claims", async () => {
      const signed = await signAccessToken(s.keys, {
        issuer: ISSUER,
        audience: "smtp",
        clientId: "thunderbird-email-client",
        email: "alice@example.com",
        domain: "example.com",
        scope: "smtp.send",
        sid: "s9",
        ttlSeconds: 3600,
      }, T0);
      const checked = await verifier.verifyAccessToken(signed.token);
      assert.ok(checked.ok);
      const claims = checked.token.claims;
      for (const claim of ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"]) {
        assert.ok(claims[claim] !== undefined, `claim ${claim}`);
      }
      assert.equal(claims.email, "alice@example.com");
      assert.equal(claims.domain, "example.com");
      assert.equal(claims.exp, T0 / 1000 + 3600);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("external IdP: remote JWKS and introspection with a cache", async () => {
  const dir = await Deno.makeTempDir();
  const authenticator: PasswordAuthenticator = {
    name: "test",
    verifyPassword: () =>
      Promise.resolve({
        ok: true,
        email: "alice@example.com",
        domain: "example.com",
        backend: "t",
      }),
    close: () => Promise.resolve(),
  };
  const server = await startOAuthServer({
    config: oauthSchema.parse({
      listen: "127.0.0.1:0",
      issuer: "http://127.0.0.1:0",
      keys_file: `${dir}/keys.json`,
      clients: [{ id: "relay", secret_hash: hashSecretSsha512("relay-secret-0123456789") }],
    }),
    authenticator,
  });
  try {
    const signed = await signAccessToken(server.keys, {
      issuer: server.issuer,
      audience: "smtp",
      clientId: "thunderbird-email-client",
      email: "alice@example.com",
      domain: "example.com",
      scope: "smtp.send",
      sid: "ext-1",
      ttlSeconds: 3600,
    }, Date.now());

    const remote = createExternalBearerAuthenticator(
      oauthSchema.parse({
        external: { jwks_url: `${server.issuer}/oauth2/jwks`, issuer: server.issuer },
      }).external,
    )!;
    assert.equal(remote.openidConfiguration, `${server.issuer}/.well-known/openid-configuration`);
    assert.ok((await remote.verifyBearer("alice@example.com", signed.token)).ok);
    assertRefused(await remote.verifyBearer("bob@example.com", signed.token));

    let now = Date.now();
    let calls = 0;
    const countingFetch: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const introspecting = createExternalBearerAuthenticator(
      oauthSchema.parse({
        external: {
          introspection_url: `${server.issuer}/oauth2/introspect`,
          client_id: "relay",
          client_secret: "relay-secret-0123456789",
          issuer: server.issuer,
          audience: "smtp",
        },
      }).external,
      { fetch: countingFetch, now: () => now },
    )!;
    assert.ok((await introspecting.verifyBearer("alice@example.com", signed.token)).ok);
    assert.ok((await introspecting.verifyBearer(null, signed.token)).ok);
    assert.equal(calls, 1, "the second answer came from the cache");
    await server.store.revokeSession("ext-1", Date.now() + 3600_000);
    now += 301_000;
    assertRefused(await introspecting.verifyBearer(null, signed.token));
    assert.equal(calls, 2);
  } finally {
    await server.close();
  }

  // Unreachable IdPs are temporary failures (454), not bad credentials.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadUrl = `http://127.0.0.1:${closed.addr.port}`;
  closed.close();
  const deadJwks = createExternalBearerAuthenticator(
    oauthSchema.parse({
      external: { jwks_url: `${deadUrl}/jwks`, issuer: "http://idp" },
    }).external,
  )!;
  const token = `${b64url({ alg: "ES256", kid: "k" })}.${b64url({ iss: "http://idp" })}.AAAA`;
  const jwksDown = await deadJwks.verifyBearer(null, token);
  assert.equal(!jwksDown.ok && jwksDown.reason, "temporary_failure");
  const deadIntrospection = createExternalBearerAuthenticator(
    oauthSchema.parse({
      external: { introspection_url: `${deadUrl}/introspect`, client_id: "a", client_secret: "b" },
    }).external,
  )!;
  const introspectionDown = await deadIntrospection.verifyBearer(null, "opaque-token");
  assert.equal(!introspectionDown.ok && introspectionDown.reason, "temporary_failure");
  await Deno.remove(dir, { recursive: true });
});

function assertRefusedFor(result: BearerResult, detail: RegExp): void {
  assertRefused(result);
  assert.match(!result.ok ? result.detail ?? "" : "", detail);
}

Deno.test("external IdP: the email claim counts only with email_verified true", async () => {
  const idp = await startTestIdp();
  try {
    const jwks = (external: Record<string, unknown> = {}) =>
      createExternalBearerAuthenticator(
        oauthSchema.parse({
          external: { jwks_url: `${idp.issuer}/jwks`, issuer: idp.issuer, ...external },
        }).external,
      )!;
    const remote = jwks();
    const verified = await idp.sign({ email: "alice@example.com", email_verified: true });
    assert.deepEqual(await remote.verifyBearer("alice@example.com", verified), {
      ok: true,
      email: "alice@example.com",
      domain: "example.com",
      backend: "oauth",
    });
    assertRefusedFor(
      await remote.verifyBearer(null, await idp.sign({ email: "alice@example.com" })),
      /email address not verified by the issuer \(email_verified is not true\)/,
    );
    for (const flag of [false, "true", 1]) {
      assertRefusedFor(
        await remote.verifyBearer(
          null,
          await idp.sign({ email: "alice@example.com", email_verified: flag }),
        ),
        /email_verified is not true/,
      );
    }
    // Other claims are not taken for the address: the user may choose them at many IdPs.
    assertRefusedFor(
      await remote.verifyBearer(
        null,
        await idp.sign({ preferred_username: "alice@example.com", email_verified: true }),
      ),
      /token has no email claim/,
    );

    // Claim names are configurable; "" turns the verification flag off for an authoritative claim.
    const named = jwks({ email_claim: "mail", email_verified_claim: "mail_verified" });
    assert.ok(
      (await named.verifyBearer(
        null,
        await idp.sign({ mail: "bob@example.com", mail_verified: true, email: "x@evil.test" }),
      )).ok,
    );
    assertRefusedFor(
      await named.verifyBearer(null, await idp.sign({ mail: "bob@example.com" })),
      /mail_verified is not true/,
    );
    const upn = jwks({ email_claim: "upn", email_verified_claim: "" });
    const byUpn = await upn.verifyBearer(null, await idp.sign({ upn: "Carol@Example.com" }));
    assert.equal(byUpn.ok && byUpn.email, "carol@example.com");

    // The same rule for introspection answers.
    const introspecting = createExternalBearerAuthenticator(
      oauthSchema.parse({
        external: {
          introspection_url: `${idp.issuer}/introspect`,
          client_id: "relay",
          client_secret: "relay-secret",
          issuer: idp.issuer,
        },
      }).external,
    )!;
    assert.ok(
      (await introspecting.verifyBearer(
        "alice@example.com",
        idp.opaque({ email: "alice@example.com", email_verified: true }),
      )).ok,
    );
    assertRefusedFor(
      await introspecting.verifyBearer(
        null,
        idp.opaque({ email: "alice@example.com", email_verified: false }),
      ),
      /email_verified is not true/,
    );
  } finally {
    await idp.close();
  }
});
