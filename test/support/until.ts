/** Polls `check` until it holds, for states another task reaches (a publish, a reconnect). */
export async function until(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Retries `check` until it stops throwing, and returns what it returned. For states another task
 * reaches (a socket closing, a stream ending, an event becoming visible to analytics once every
 * transaction that started before it has finished, cluster-wide, while other files write in
 * parallel): the deadline only bounds a failure, it is not a speed assertion.
 */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
