import { badInput } from '../../platform/errors.ts';

/**
 * The kinds of agent and their settings. The runtime (src/agents-runtime/) picks the adapter by
 * kind; the settings are stored on the agent as JSON and validated here, once, on every write, so
 * the runtime can trust what it reads back.
 */
export const AGENT_KINDS = ['echo', 'openai-compatible', 'external'] as const;
export type AgentKind = (typeof AGENT_KINDS)[number];

/**
 * The kinds the in-process runtime answers for. An `external` agent is answered by a runtime
 * outside the server, through an agent credential (docs/agents.md#external-agent-runtimes); the
 * in-process runtime makes no reply jobs for it, so a message never gets both.
 */
export type RuntimeAgentKind = Exclude<AgentKind, 'external'>;

export interface AgentSettings {
  /** Instructions put before the conversation (a system prompt). */
  instructions?: string;
  /** `openai-compatible`: the model name the server knows. Required for that kind. */
  model?: string;
  /** `openai-compatible`: sampling temperature, 0 to 2. */
  temperature?: number;
  /** `openai-compatible`: most tokens in one reply. */
  maxTokens?: number;
  /** `echo`: pause between streamed words, in ms (default 40). */
  wordDelayMs?: number;
}

export const MAX_INSTRUCTIONS_LENGTH = 8_000;
export const MAX_MODEL_NAME_LENGTH = 200;

/** The settings a client sent, checked field by field for `kind`; BAD_USER_INPUT names the first bad one. */
export function validateAgentSettings(kind: AgentKind, input: Record<string, unknown> | null | undefined): AgentSettings {
  const settings: AgentSettings = {};
  const raw = input ?? {};
  const field = (name: string) => `settings.${name}`;
  if (raw.instructions != null) {
    if (typeof raw.instructions !== 'string' || raw.instructions.length > MAX_INSTRUCTIONS_LENGTH) {
      throw badInput(field('instructions'), `instructions must be text of at most ${MAX_INSTRUCTIONS_LENGTH} characters`);
    }
    if (raw.instructions.trim()) settings.instructions = raw.instructions;
  }
  if (kind === 'openai-compatible') {
    if (typeof raw.model !== 'string' || !raw.model.trim() || raw.model.length > MAX_MODEL_NAME_LENGTH) {
      throw badInput(field('model'), `an openai-compatible agent needs a model name of 1 to ${MAX_MODEL_NAME_LENGTH} characters`);
    }
    settings.model = raw.model.trim();
    if (raw.temperature != null) {
      if (typeof raw.temperature !== 'number' || !(raw.temperature >= 0 && raw.temperature <= 2)) throw badInput(field('temperature'), 'temperature must be from 0 to 2');
      settings.temperature = raw.temperature;
    }
    if (raw.maxTokens != null) {
      if (!Number.isInteger(raw.maxTokens) || (raw.maxTokens as number) < 1 || (raw.maxTokens as number) > 100_000) {
        throw badInput(field('maxTokens'), 'maxTokens must be an integer from 1 to 100000');
      }
      settings.maxTokens = raw.maxTokens as number;
    }
    if (raw.wordDelayMs != null) throw badInput(field('wordDelayMs'), 'wordDelayMs is a setting of echo agents only');
  } else if (kind === 'external') {
    for (const name of ['model', 'temperature', 'maxTokens', 'wordDelayMs'] as const) {
      if (raw[name] != null) throw badInput(field(name), `${name} is not a setting of external agents: their runtime has its own`);
    }
  } else {
    for (const name of ['model', 'temperature', 'maxTokens'] as const) {
      if (raw[name] != null) throw badInput(field(name), `${name} is a setting of openai-compatible agents only`);
    }
    if (raw.wordDelayMs != null) {
      if (!Number.isInteger(raw.wordDelayMs) || (raw.wordDelayMs as number) < 0 || (raw.wordDelayMs as number) > 2_000) {
        throw badInput(field('wordDelayMs'), 'wordDelayMs must be an integer from 0 to 2000');
      }
      settings.wordDelayMs = raw.wordDelayMs as number;
    }
  }
  return settings;
}
