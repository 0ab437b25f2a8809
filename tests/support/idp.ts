/**
 * A minimal external identity provider for tests, on 127.0.0.1 and a free
 * port: a JWKS with one ES256 key, tokens signed with it (real JWTs, npm
 * `jose`), and an RFC 7662 introspection endpoint answering the claims
 * registered for an opaque token.
 *
 * @module
 */
import { exportJWK, generateKeyPair, SignJWT } from "jose";

/** A running test IdP; {@link TestIdp.close} it at the end. */
export interface TestIdp {
  /** Its issuer URL; the JWKS is `${issuer}/jwks`, introspection `${issuer}/introspect`. */
  issuer: string;
  /** A JWT access token (aud `smtp`, scope `smtp.send`, 10 minutes) with `claims` added. */
  sign(claims: Record<string, unknown>): Promise<string>;
  /** An opaque token whose introspection answers `active: true` and these claims. */
  opaque(claims: Record<string, unknown>): string;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts a {@link TestIdp}. */
export async function startTestIdp(): Promise<TestIdp> {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "idp-1", alg: "ES256", use: "sig" };
  const introspected = new Map<string, Record<string, unknown>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/jwks") return Response.json({ keys: [jwk] });
    if (url.pathname === "/introspect") {
      const token = new URLSearchParams(await req.text()).get("token") ?? "";
      return Response.json(introspected.get(token) ?? { active: false });
    }
    return new Response("not found", { status: 404 });
  });
  const issuer = `http://127.0.0.1:${server.addr.port}`;
  const base = (claims: Record<string, unknown>) => {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: issuer,
      aud: "smtp",
      sub: "248289761001",
      scope: "smtp.send",
      iat: now,
      exp: now + 600,
      ...claims,
    };
  };
  return {
    issuer,
    sign: (claims) =>
      new SignJWT(base(claims)).setProtectedHeader({ alg: "ES256", kid: "idp-1" }).sign(
        privateKey,
      ),
    opaque: (claims) => {
      const token = crypto.randomUUID();
      introspected.set(token, { active: true, ...base(claims) });
      return token;
    },
    close: () => server.shutdown(),
  };
}
