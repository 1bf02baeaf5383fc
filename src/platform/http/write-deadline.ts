import type { Clock } from '../clock.ts';

/** A connection that writes to a subscriber: how much it holds unsent, and how to cut it. */
export interface WatchedWriter {
  /** Bytes queued in this process and not yet taken by the socket. */
  buffered(): number;
  /** Ends the connection at once, unsent data and all. */
  cut(): void;
}

interface Watch {
  writer: WatchedWriter;
  kind: string;
  /** When the writer last had nothing queued, or last made progress. */
  since: number;
  last: number;
}

/**
 * The write deadline of subscriber connections (graphql-ws sockets, SSE responses). A peer that
 * stops reading, or a connection gone half-open, fills the kernel's socket buffers and then this
 * process's; without a deadline the connection holds its buffers until TCP gives up, which can take
 * many minutes. A connection whose queued bytes neither drain nor shrink for `timeoutMs` is cut, and
 * the client resumes with `after`, which loses nothing.
 */
export function createWriteDeadline(options: { timeoutMs: number; clock: Clock; onCut: (kind: string) => void }) {
  const watches = new Map<WatchedWriter, Watch>();
  let cancel: (() => void) | null = null;
  const every = Math.max(50, Math.min(1_000, options.timeoutMs / 4));

  const schedule = () => {
    cancel = watches.size > 0 ? options.clock.setTimeout(sweep, every) : null;
  };
  function sweep() {
    const now = options.clock.now();
    for (const watch of [...watches.values()]) {
      const queued = watch.writer.buffered();
      if (queued === 0 || queued < watch.last) {
        watch.since = now;
      } else if (now - watch.since >= options.timeoutMs) {
        watches.delete(watch.writer);
        options.onCut(watch.kind);
        watch.writer.cut();
        continue;
      }
      watch.last = queued;
    }
    schedule();
  }

  return {
    /** Watches `writer` until the returned function is called (its connection closed). A no-op when the deadline is off. */
    watch(writer: WatchedWriter, kind: string): () => void {
      if (options.timeoutMs <= 0) return () => {};
      watches.set(writer, { writer, kind, since: options.clock.now(), last: 0 });
      if (!cancel) schedule();
      return () => {
        watches.delete(writer);
      };
    },
    stop() {
      cancel?.();
      cancel = null;
      watches.clear();
    },
  };
}
