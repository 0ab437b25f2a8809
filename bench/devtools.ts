/**
 * A minimal Chrome DevTools protocol client for a relay started with
 * `--inspect` (bench/memory_bench.ts takes heap snapshots through it,
 * bench/cpu_profile.ts CPU profiles).
 *
 * @module
 */

/** A connected inspector: call methods, receive events. */
export interface DevTools {
  /** Calls `method` and resolves its result. */
  call<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** Closes the WebSocket. */
  close(): void;
}

/**
 * Connects to the first target of the inspector on `port`; `onEvent` gets
 * every event (a message without an id), e.g. heap snapshot chunks.
 */
export async function devtools(
  port: number,
  onEvent: (method: string, params: Record<string, unknown>) => void = () => {},
): Promise<DevTools> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let nextId = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
    else if (message.method) onEvent(message.method, message.params ?? {});
  };
  return {
    call: <T>(method: string, params = {}) =>
      new Promise<T>((resolve) => {
        const id = ++nextId;
        waiting.set(id, resolve as (result: unknown) => void);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}
