import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { AgentAdapterError, type AgentAdapter } from './agent-adapter.ts';

export interface OpenAiCompatibleOptions {
  /** The server's base URL, e.g. `https://api.openai.com/v1` or a local server's `/v1`. */
  baseUrl: string;
  /** Sent as the bearer key; null for servers that want none. Never logged or returned. */
  apiKey: string | null;
}

/**
 * Streams chat completions from any OpenAI-compatible server through the official `openai`
 * package. The runtime owns retries (with backoff, counted per reply), so the client's own are
 * off; the runtime's timeout and stop reach the request through the abort signal.
 */
export function createOpenAiCompatibleAdapter(options: OpenAiCompatibleOptions): AgentAdapter {
  const client = new OpenAI({
    baseURL: options.baseUrl,
    // The package refuses to start without a key; a local server without auth ignores this one.
    apiKey: options.apiKey ?? 'no-key',
    maxRetries: 0,
  });
  return {
    async *reply({ agent, messages, signal }) {
      const { model, temperature, maxTokens } = agent.settings;
      if (!model) throw new AgentAdapterError('the agent has no model set', false);
      try {
        const stream = await client.chat.completions.create(
          {
            model,
            messages,
            stream: true,
            ...(temperature !== undefined ? { temperature } : {}),
            ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
          },
          { signal },
        );
        let finished = false;
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          const text = choice?.delta?.content;
          if (text) yield text;
          if (choice?.finish_reason) finished = true;
        }
        // A stream that ends without a finish reason was cut off: the text so far is not the reply.
        if (!finished) throw new AgentAdapterError('the stream ended before the reply was finished', true);
      } catch (error) {
        throw toAdapterError(error);
      }
    },
  };
}

/** Which failures another attempt may cure. The message names the status, never the key. */
function toAdapterError(error: unknown): unknown {
  if (error instanceof AgentAdapterError || error instanceof APIUserAbortError) return error;
  if (error instanceof APIConnectionError) return new AgentAdapterError(`cannot reach the model server: ${error.message}`, true, { cause: error });
  if (error instanceof APIError) {
    const status = error.status;
    const transient = status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
    return new AgentAdapterError(`the model server answered ${status ?? 'with an error'}`, transient, { cause: error });
  }
  // An SSE stream cut mid-way surfaces as a plain error from the body reader.
  return new AgentAdapterError(`the model stream failed: ${error instanceof Error ? error.message : String(error)}`, true, { cause: error });
}
