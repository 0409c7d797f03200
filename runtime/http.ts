// The operational endpoints of a pool without an HTTP API of its own (deliver, engage, operator):
// /metrics for Prometheus, /healthz (the process serves), /readyz (it can take work).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface OpsServer {
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

export interface OpsServerOptions {
  registry: Registry;
  isReady: () => boolean;
  host: string;
  port: number;
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      options.registry.metrics().then(
        (body) => response.writeHead(200, { "content-type": options.registry.contentType }).end(body),
        () => response.writeHead(500).end("metrics unavailable\n"),
      );
      return;
    }
    if (path === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    if (path === "/readyz") {
      const ready = options.isReady();
      response.writeHead(ready ? 200 : 503, { "content-type": "text/plain" }).end(ready ? "ok\n" : "not ready\n");
      return;
    }
    response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
