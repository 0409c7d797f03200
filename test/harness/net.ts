import { createServer, connect } from "node:net";

/**
 * A TCP port free on 127.0.0.1 right now. Another process could take it before the server binds,
 * so callers that start a server retry on "address in use" (see ManagedProcess users).
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("no TCP address"));
        return;
      }
      server.close(() => {
        resolve(address.port);
      });
    });
  });
}

/** Sends `request` over a fresh TCP connection and resolves with the first chunk of the answer. */
export async function tcpExchange(port: number, request: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error("timeout")));
    socket.once("error", reject);
    socket.once("connect", () => socket.write(request));
    socket.once("data", (data) => {
      socket.end();
      resolve(data.toString("utf8"));
    });
  });
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Aborts the wait early, e.g. when the process being waited on exits. */
  signal?: AbortSignal;
}

/**
 * Polls `check` until it resolves true. Resolves with "" on success, or with the last reason the
 * check gave (its error message) when the timeout or the signal ends the wait.
 */
export async function waitUntil(check: () => Promise<boolean>, options: WaitOptions): Promise<string> {
  const deadline = Date.now() + options.timeoutMs;
  let last = "not checked yet";
  while (Date.now() < deadline && options.signal?.aborted !== true) {
    try {
      if (await check()) return "";
      last = "check returned false";
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
  return last || "timed out";
}
