import { expect } from 'vitest';
import { createLogger, type Logger } from '../../src/platform/logger.ts';

/** A JSON logger whose lines stay in memory, to assert on what the service logs. */
export function captureLogs(level = 'debug'): { logger: Logger; text: () => string; records: () => Record<string, any>[] } {
  const lines: string[] = [];
  const logger = createLogger({ level, pretty: false, destination: { write: (line: string) => void lines.push(line) } });
  return {
    logger,
    text: () => lines.join(''),
    records: () => lines.map((line) => JSON.parse(line) as Record<string, any>),
  };
}

/** One Prometheus text scrape, read into samples. */
export interface Scrape {
  text: string;
  /** The value of the sample `name` whose labels include `labels`; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

export function parseScrape(text: string): Scrape {
  const samples = text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
      return { name: match[1]!, labels, value: Number(match[3]) };
    });
  return {
    text,
    value(name, labels = {}) {
      const sample = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      return sample?.value;
    },
  };
}

export async function scrape(baseUrl: string): Promise<Scrape> {
  const response = await fetch(`${baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseScrape(await response.text());
}

export { eventually } from './until.ts';
