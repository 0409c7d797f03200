// What a test file uses to reach the shared servers, and to stay out of other tests' way.
import { randomBytes } from "node:crypto";
import { after, before } from "node:test";
import type { TestContext } from "node:test";
import { startStack, StackEnv } from "./stack.ts";
import type { Component, Stack } from "./stack.ts";

export interface StackInfo {
  natsUrl: string;
  natsMonitorUrl: string;
  redisUrl: string;
  kubeconfig: string;
  /**
   * Resolves once the servers are reachable. Root-level `before` hooks of a file do not wait for
   * each other, so a file's own root-level setup awaits this first.
   */
  ready(): Promise<void>;
}

/** A name unique to this test: a Kubernetes namespace, subject prefix or Redis hash tag. */
export function uniqueName(prefix = "t"): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

function fromEnv(): Partial<StackInfo> {
  const env = process.env;
  return {
    ...(env[StackEnv.natsUrl] !== undefined && { natsUrl: env[StackEnv.natsUrl] }),
    ...(env[StackEnv.natsMonitorUrl] !== undefined && { natsMonitorUrl: env[StackEnv.natsMonitorUrl] }),
    ...(env[StackEnv.redisUrl] !== undefined && { redisUrl: env[StackEnv.redisUrl] }),
    ...(env[StackEnv.kubeconfig] !== undefined && { kubeconfig: env[StackEnv.kubeconfig] }),
  };
}

const componentKeys: Record<Component, (keyof StackInfo)[]> = {
  nats: ["natsUrl", "natsMonitorUrl"],
  redis: ["redisUrl"],
  kube: ["kubeconfig"],
};

/**
 * Registers hooks that make `components` available to this file's tests. Under the global setup
 * (npm test) the shared stack is used; a file run on its own (node --test file.test.ts) starts
 * the missing servers itself and stops them after its tests. Read the returned object inside
 * tests, once `before` has run.
 *
 * Call it at the top level of a test file, outside any `describe`: its hooks then belong to the
 * file's root and run before / after every suite's own, so a suite's teardown (draining a
 * connection, deleting a namespace) still finds the servers up.
 */
export function useStack(components: readonly Component[]): StackInfo {
  let own: Stack | undefined;
  let starting: Promise<void> | undefined;
  const info: StackInfo = {
    natsUrl: "",
    natsMonitorUrl: "",
    redisUrl: "",
    kubeconfig: "",
    ready: () => (starting ??= start()),
  };
  const start = async (): Promise<void> => {
    const shared = fromEnv();
    const missing = components.filter((component) => componentKeys[component].some((key) => shared[key] === undefined));
    Object.assign(info, shared);
    if (missing.length === 0) return;
    own = await startStack({ components: missing });
    Object.assign(info, {
      ...(own.nats && { natsUrl: own.nats.url, natsMonitorUrl: own.nats.monitorUrl }),
      ...(own.redis && { redisUrl: own.redis.url }),
      ...(own.kube && { kubeconfig: own.kube.kubeconfig }),
    });
  };
  before(() => info.ready());
  // Registered here, not inside `before`: an `after` called in a hook would run when the hook ends.
  after(() => own?.stop());
  return info;
}

const deferred = new WeakMap<TestContext, (() => unknown)[]>();

/**
 * Registers teardown for a test, run in reverse order of registration once the test ends (as Go's
 * defer), so a connection closes before the server it talks to stops. node:test's own t.after
 * runs hooks first-in, first-out. Every teardown runs even if one fails; the first error is
 * rethrown.
 */
export function defer(t: TestContext, teardown: () => unknown): void {
  let stack = deferred.get(t);
  if (stack === undefined) {
    const created: (() => unknown)[] = [];
    deferred.set(t, created);
    t.after(async () => {
      let first: unknown;
      for (let next = created.pop(); next !== undefined; next = created.pop()) {
        try {
          await next();
        } catch (error) {
          first ??= error;
        }
      }
      if (first !== undefined) throw first instanceof Error ? first : new Error("teardown failed", { cause: first });
    });
    stack = created;
  }
  stack.push(teardown);
}
