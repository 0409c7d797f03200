// A token bucket per API key, per process. With N replicas behind a Service a key gets up to N
// times the rate; size perSecond for one replica (documented in the chart values).

export interface RateLimitOptions {
  perSecond: number;
  burst: number;
  now?: () => number;
}

/** Whether a request may proceed, and if not, how long to wait. */
export type RateDecision = { kind: "allowed" } | { kind: "limited"; retryAfterSeconds: number };

export class RateLimiter {
  readonly #options: Required<RateLimitOptions>;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: RateLimitOptions) {
    this.#options = { now: () => performance.now(), ...options };
  }

  take(key: string): RateDecision {
    const { perSecond, burst, now } = this.#options;
    const at = now();
    const bucket = this.#buckets.get(key) ?? { tokens: burst, at };
    bucket.tokens = Math.min(burst, bucket.tokens + ((at - bucket.at) / 1000) * perSecond);
    bucket.at = at;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { kind: "allowed" };
    }
    return { kind: "limited", retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) };
  }
}
