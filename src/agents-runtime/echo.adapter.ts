import { sleep, systemClock, type Clock } from '../platform/clock.ts';
import type { AgentAdapter } from './agent-adapter.ts';

/** Pause between words when the agent's settings name none: visible as typing, short enough for a demo. */
export const ECHO_DEFAULT_WORD_DELAY_MS = 40;

/** What an echo agent answers to `text`: deterministic, so tests and the demo know what to expect. */
export const echoReplyText = (agentName: string, text: string) => `${agentName} heard you say: ${text}`;

/**
 * The built-in agent: no network, answers every message by repeating it, streamed word by word
 * with a small delay, so the embedded demo shows the whole experience (typing, deltas, the
 * committed reply) offline.
 */
export function createEchoAdapter(options: { clock?: Clock } = {}): AgentAdapter {
  const clock = options.clock ?? systemClock;
  return {
    async *reply({ agent, messages, signal }) {
      const last = messages.at(-1)?.content ?? '';
      const words = echoReplyText(agent.name, last).split(/(?<=\s)/);
      const delay = agent.settings.wordDelayMs ?? ECHO_DEFAULT_WORD_DELAY_MS;
      for (const word of words) {
        if (delay > 0) await sleep(clock, delay, signal);
        signal.throwIfAborted();
        yield word;
      }
    },
  };
}
