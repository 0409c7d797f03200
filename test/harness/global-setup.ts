// node --test --test-global-setup: one stack for the whole run. Test files run in child processes
// that inherit the StackEnv variables set here; each test isolates itself by namespace, subject
// prefix and Redis hash tag (see context.ts), never by a server of its own.
import { startStack } from "./stack.ts";
import type { Stack } from "./stack.ts";

let stack: Stack | undefined;

export async function globalSetup(): Promise<void> {
  stack = await startStack();
  Object.assign(process.env, stack.env());
}

export async function globalTeardown(): Promise<void> {
  await stack?.stop();
  stack = undefined;
}
