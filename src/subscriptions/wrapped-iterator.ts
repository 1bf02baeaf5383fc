/**
 * An async iterator that reads `inner` through `next`. When its consumer leaves (`return`) or fails
 * (`throw`), it runs `cleanup` and then closes `inner`, so the stream underneath lets go of what it
 * holds (bus listeners, group membership) at once, not when it next produces a value.
 */
export function wrappedIterator<T>(inner: AsyncIterator<unknown>, next: () => Promise<IteratorResult<T>>, cleanup: () => void): AsyncIterableIterator<T> {
  const iterator: AsyncIterableIterator<T> = {
    next,
    async return() {
      cleanup();
      await inner.return?.();
      return { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      cleanup();
      await inner.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
