// The scaling decision, pure and clock-free so it is tested without waiting: replicas follow the
// consumer's lag, up at once, down only once every recommendation of the stabilisation window
// allows it (as the HorizontalPodAutoscaler's scale-down behaviour does), so a pool does not flap
// between batches.

export interface ScalePolicy {
  minReplicas: number;
  maxReplicas: number;
  targetLagPerReplica: number;
  /** Set by spec.pool.replicas: the autoscaler keeps the pool at exactly this. */
  fixedReplicas?: number | undefined;
  stabilizationWindowMs: number;
}

export interface Recommendation {
  at: number;
  replicas: number;
}

export interface ScaleInput {
  policy: ScalePolicy;
  /** num_pending + num_ack_pending of the pool's consumer. */
  lag: number;
  /** What the pool runs now (desired replicas of the runner). */
  current: number;
  /** Recommendations of earlier rounds, oldest first, from previous decisions. */
  history: readonly Recommendation[];
  now: number;
}

export interface ScaleDecision {
  replicas: number;
  /** ceil(lag / target), clamped: what this round alone would ask for. */
  recommended: number;
  /** The history to pass to the next round (pruned to the window). */
  history: Recommendation[];
}

export function recommend(policy: ScalePolicy, lag: number): number {
  if (policy.fixedReplicas !== undefined) return policy.fixedReplicas;
  const wanted = Math.ceil(Math.max(0, lag) / policy.targetLagPerReplica);
  return Math.min(policy.maxReplicas, Math.max(policy.minReplicas, wanted));
}

export function decide(input: ScaleInput): ScaleDecision {
  const { policy, now } = input;
  const recommended = recommend(policy, input.lag);
  // A pool seen for the first time (operator start) counts as recommended at its current size:
  // it scales down one full window later, not on the first round.
  const earlier = input.history.length === 0 ? [{ at: now, replicas: input.current }] : input.history;
  const history = [
    ...earlier.filter((entry) => entry.at > now - policy.stabilizationWindowMs),
    { at: now, replicas: recommended },
  ];
  if (policy.fixedReplicas !== undefined || recommended >= input.current) {
    return { replicas: recommended, recommended, history };
  }
  // Scaling down: to the highest recommendation within the window, never below what is asked now.
  const highest = Math.max(...history.map((entry) => entry.replicas));
  return { replicas: Math.min(input.current, highest), recommended, history };
}
