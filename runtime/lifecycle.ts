// Long-lived things are Runnables: nothing starts in a constructor, `run` serves until its signal
// aborts, drains, then resolves. Only a process's main.ts turns OS signals into that abort.

/** Something that serves until `signal` aborts, then drains and resolves. It rejects only on a bug. */
export interface Runnable {
  run(signal: AbortSignal): Promise<void>;
}

/**
 * Turns SIGINT/SIGTERM into an AbortSignal. For main.ts only: library code never installs signal
 * handlers. A second signal while draining exits at once, as a person pressing Ctrl-C twice expects.
 */
export function abortOnSignals(onSecond: () => void = () => process.exit(130)): AbortSignal {
  const controller = new AbortController();
  const handler = (): void => {
    if (controller.signal.aborted) onSecond();
    else controller.abort(new Error("received a termination signal"));
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return controller.signal;
}

/** Resolves once `signal` aborts (at once if it already has). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    signal.addEventListener(
      "abort",
      () => {
        resolve();
      },
      { once: true },
    );
  });
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects): a loop's pause. */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
