/**
 * Loopback ports for tests: a free one to configure a server with, and
 * whether one accepts connections yet.
 *
 * @module
 */

/** A port on 127.0.0.1 that was free a moment ago (for servers that need a number up front). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
export async function accepts(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}
