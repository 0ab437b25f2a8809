/**
 * An independent DKIM verifier for tests: Debian's `python3-dkim` (dkimpy),
 * given the public keys as `relay dkim dns` prints them (through dkimpy's
 * `dnsfunc` hook, so no DNS server is involved).
 *
 * @module
 */

/** The Python interpreter that has Debian's `dkim` module. */
export const PYTHON = "/usr/bin/python3";

const SCRIPT = `
import json, sys, dkim
records = json.loads(sys.argv[1])
message = sys.stdin.buffer.read()
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    value = records.get(name.rstrip("."))
    return value.encode() if value is not None else None
d = dkim.DKIM(message)
count = sum(1 for line in message.split(b"\\r\\n\\r\\n", 1)[0].split(b"\\r\\n")
            if line.lower().startswith(b"dkim-signature:"))
results = []
for i in range(count):
    try:
        ok = bool(d.verify(idx=i, dnsfunc=dnsfunc))
        error = None
    except Exception as e:
        ok = False
        error = str(e)
    sig = dict(d.signature_fields) if getattr(d, "signature_fields", None) else {}
    results.append({"ok": ok, "error": error,
                    "s": sig.get(b"s", b"").decode(), "a": sig.get(b"a", b"").decode(),
                    "d": sig.get(b"d", b"").decode()})
print(json.dumps(results))
`;

/** One signature's verdict. */
export interface DkimVerdict {
  ok: boolean;
  error: string | null;
  /** Selector, algorithm and domain of the signature. */
  s: string;
  a: string;
  d: string;
}

/**
 * The TXT records in `relay dkim dns` output: `name -> value` (the quoted
 * strings joined, as a resolver hands them to a verifier).
 */
export function parseZoneLines(output: string): Record<string, string> {
  const records: Record<string, string> = {};
  for (const line of output.split("\n")) {
    const match = line.match(/^(\S+)\.\s+\d+\s+IN\s+TXT\s+(.*)$/);
    if (!match) continue;
    const strings = [...match[2].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
    records[match[1]] = strings.join("");
  }
  return records;
}

/** Verifies every DKIM-Signature of `message` with dkimpy against `records`. */
export async function verifyDkim(
  message: Uint8Array,
  records: Record<string, string>,
): Promise<DkimVerdict[]> {
  const child = new Deno.Command(PYTHON, {
    args: ["-c", SCRIPT, JSON.stringify(records)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(message);
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) throw new Error(`dkimpy failed: ${new TextDecoder().decode(stderr)}`);
  return JSON.parse(new TextDecoder().decode(stdout));
}
