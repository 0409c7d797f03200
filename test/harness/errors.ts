import { RelaisError } from "#runtime";

/** A tool the harness needs is not installed: the message says how to provision it. */
export class ToolMissingError extends RelaisError {
  constructor(tool: string, searched: readonly string[]) {
    super(
      "RELAIS_TOOL_MISSING",
      `${tool} not found (looked in ${searched.join(", ")}); run scripts/provision-tools.sh or set RELAIS_BIN_DIR to a folder that holds it`,
    );
  }
}

/** A server process exited before it became ready; the message carries the end of its log. */
export class ServerStartError extends RelaisError {
  constructor(server: string, detail: string, options?: ErrorOptions) {
    super("RELAIS_SERVER_START_FAILED", `${server} failed to start: ${detail}`, options);
  }
}

/** A server kept running but did not pass its readiness check in time. */
export class ServerNotReadyError extends RelaisError {
  constructor(server: string, timeoutMs: number, detail: string) {
    super("RELAIS_SERVER_NOT_READY", `${server} not ready after ${timeoutMs} ms: ${detail}`);
  }
}
