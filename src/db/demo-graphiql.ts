import type { GraphiQLOptions } from 'graphql-yoga';

/**
 * The operations GraphiQL opens with on the embedded demo (`npm start` without DATABASE_URL):
 * the first tab subscribes to the demo session, the second sends a message that the first then
 * shows. GraphQL comments, so they stay valid documents.
 */
const WATCH = `# The demo, signed in as demo-alice: the Headers tab holds her token, and new tabs get it too.
# Run an operation: put the cursor in it and press Ctrl-Enter (or pick it from the run button).
#
# SessionEvents keeps running and shows each event of the "Welcome" session as it is committed.
# Start it, then run SendMessage in the "Send a message" tab: the message appears here.

subscription SessionEvents($sessionId: ID!) {
  sessionEvents(sessionId: $sessionId) {
    eventId
    type
    sequence
    ... on MessageCreatedEvent {
      message { id body authorUserId createdAt }
    }
  }
}

query Projects {
  projects {
    nodes {
      id
      name
      viewerRole
      agents { nodes { id name } }
      sessions { nodes { id title lastEventSequence } }
    }
  }
}

mutation SendMessage($sessionId: ID!) {
  sendMessage(input: { sessionId: $sessionId, body: "Hello from GraphiQL" }) {
    eventId
    sequence
    message { id body }
  }
}
`;

const SEND = `# Sends a message to the demo session; the SessionEvents subscription in the first tab shows it.
mutation SendMessage($sessionId: ID!, $body: String!) {
  sendMessage(input: { sessionId: $sessionId, body: $body }) {
    eventId
    sequence
    message { id body }
  }
}
`;

export interface DemoGraphiQLInput {
  /** A bearer token of the demo owner. */
  token: string;
  /** The demo's chat session, or null when the database holds other data than the demo. */
  sessionId: string | null;
}

export function demoGraphiQLOptions({ token, sessionId }: DemoGraphiQLInput): GraphiQLOptions {
  const headers = JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);
  const variables = (extra: Record<string, string> = {}) => (sessionId ? JSON.stringify({ sessionId, ...extra }, null, 2) : null);
  return {
    headers,
    // Tabs opened later start with the same header.
    defaultHeaders: headers,
    shouldPersistHeaders: true,
    defaultTabs: [
      { query: WATCH, variables: variables(), headers },
      { query: SEND, variables: variables({ body: 'Hello from the second tab' }), headers },
    ],
  };
}
