/**
 * Turns client-chosen GraphQL operation names into a bounded set of metric label values.
 *
 * Any client can name its operations anything, and each distinct label value is a new time series
 * in every Prometheus that scrapes us: unbounded names are a memory attack on the monitoring. So:
 * - no name → `anonymous`;
 * - a name that is not a plain GraphQL identifier of at most `MAX_OPERATION_NAME_LENGTH` characters → `other`;
 * - the first `maxNames` distinct names this process sees keep their name; every later new name → `other`.
 *
 * Names are admitted only when the operation passed validation (the caller decides), which keeps
 * typos and junk documents out, but a client can still send many valid operations under fresh
 * names and fill the set before our own clients' names arrive. A growing `other` series is the
 * sign of that (or of a set that is too small for the app); restart resets the set. A persisted-
 * operations allow-list would close the gap and is not done.
 */
export const DEFAULT_MAX_OPERATION_NAMES = 200;
export const MAX_OPERATION_NAME_LENGTH = 64;

export const ANONYMOUS_OPERATION = 'anonymous';
export const OTHER_OPERATION = 'other';

const IDENTIFIER = /^[_A-Za-z][_0-9A-Za-z]*$/;

/** A name worth showing in logs and labels: a GraphQL identifier of bounded length, else null. */
export function plainOperationName(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_OPERATION_NAME_LENGTH) return null;
  return IDENTIFIER.test(name) ? name : null;
}

export interface OperationNameLabels {
  /** The label for `name`; with `admit`, a new plain name may join the set while there is room. */
  label(name: string | null | undefined, options?: { admit?: boolean }): string;
  /** How many distinct names hold their own label now. */
  readonly size: number;
}

export function createOperationNameLabels(maxNames: number = DEFAULT_MAX_OPERATION_NAMES): OperationNameLabels {
  const known = new Set<string>();
  return {
    label(name, { admit = true } = {}) {
      if (name === null || name === undefined || name === '') return ANONYMOUS_OPERATION;
      const plain = plainOperationName(name);
      if (plain === null) return OTHER_OPERATION;
      if (known.has(plain)) return plain;
      if (admit && known.size < maxNames && plain !== ANONYMOUS_OPERATION && plain !== OTHER_OPERATION) {
        known.add(plain);
        return plain;
      }
      return OTHER_OPERATION;
    },
    get size() {
      return known.size;
    },
  };
}
