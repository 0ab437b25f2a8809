/**
 * The HTML the authorization endpoint shows: the login form, the
 * out-of-band code page and the error page. Self-contained (no external
 * assets, no script), labelled for screen readers, and served with a CSP
 * that allows only the inline style by hash.
 *
 * @module
 */
import { createHash } from "node:crypto";

const CSS = `
:root { color-scheme: light dark; --accent: #0b57d0; --error: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  display: flex; min-height: 100vh; align-items: center; justify-content: center;
  background: Canvas; color: CanvasText; }
main { width: min(24rem, 100% - 2rem); padding: 2rem; border: 1px solid GrayText;
  border-radius: 12px; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
p { margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin: 1rem 0 .25rem; }
input[type=email], input[type=password] { width: 100%; padding: .6rem .7rem; font: inherit;
  border: 1px solid GrayText; border-radius: 6px; background: Field; color: FieldText; }
input:focus-visible, button:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
button { margin-top: 1.5rem; width: 100%; padding: .7rem; font: inherit; font-weight: 600;
  border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
.error { color: var(--error); border-left: 4px solid var(--error); padding-left: .75rem; }
.code { font: 1.1rem/1.4 ui-monospace, monospace; word-break: break-all; padding: .75rem;
  border: 1px dashed GrayText; border-radius: 6px; user-select: all; }
.small { font-size: .875rem; color: GrayText; margin-top: 1rem; }
@media (prefers-color-scheme: dark) { :root { --accent: #8ab4f8; --error: #f2b8b5; }
  button { color: #062e6f; } }
`;

const CSS_HASH = "sha256-" + createHash("sha256").update(CSS).digest("base64");

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The security headers of every page: CSP (only our inline style; forms may
 * post to us and, for the redirect that follows a login, to `formTargets`),
 * no framing, no caching, no referrer.
 */
export function pageHeaders(formTargets: string[] = []): Headers {
  const formAction = ["'self'", ...formTargets].join(" ");
  return new Headers({
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": `default-src 'none'; style-src '${CSS_HASH}'; img-src 'none'; ` +
      `form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    pragma: "no-cache",
  });
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

/** What the login form shows. */
export interface LoginPageOptions {
  /** Where the form posts. */
  action: string;
  /** The client's display name. */
  clientName: string;
  /** The pending request id and its CSRF token, echoed as hidden fields. */
  requestId: string;
  csrf: string;
  /** Pre-filled email. */
  email?: string;
  /** A message to show above the form (failed login). */
  error?: string;
}

/** The login form: email and password, works without JavaScript. */
export function renderLoginPage(options: LoginPageOptions): string {
  const error = options.error
    ? `<p class="error" id="login-error" role="alert">${escapeHtml(options.error)}</p>\n`
    : "";
  const described = options.error ? ' aria-describedby="login-error" aria-invalid="true"' : "";
  // Focus the first field still to fill in.
  const emailFocus = options.email ? "" : " autofocus";
  const passwordFocus = options.email ? " autofocus" : "";
  return layout(
    "Sign in to send mail",
    `<h1>Sign in to send mail</h1>
<p>${escapeHtml(options.clientName)} wants to send e-mail as you.</p>
${error}<form method="post" action="${escapeHtml(options.action)}">
<input type="hidden" name="request" value="${escapeHtml(options.requestId)}">
<input type="hidden" name="csrf" value="${escapeHtml(options.csrf)}">
<label for="email">Email address</label>
<input id="email" name="email" type="email" autocomplete="username" required${emailFocus}
  spellcheck="false" autocapitalize="off" value="${escapeHtml(options.email ?? "")}"${described}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password"
  required${passwordFocus}${described}>
<button type="submit">Sign in</button>
</form>
<p class="small">Only sign in if you started this from your own mail program.</p>`,
  );
}

/** The out-of-band page: the code to paste into the application. */
export function renderOobPage(code: string): string {
  return layout(
    "Signed in",
    `<h1>Signed in</h1>
<p id="code-label">Copy this code into your mail program. It is valid for a short time and
can be used once.</p>
<p class="code" aria-labelledby="code-label"><output id="code">${escapeHtml(code)}</output></p>`,
  );
}

/** An error page: the request cannot go on and must not redirect anywhere. */
export function renderErrorPage(title: string, message: string): string {
  return layout(
    title,
    `<h1>${escapeHtml(title)}</h1>
<p role="alert">${escapeHtml(message)}</p>
<p class="small">Start again from your mail program.</p>`,
  );
}
