import type { GraphiQLOptions } from 'graphql-yoga';

/**
 * The operations GraphiQL opens with on the embedded demo (`npm start` without DATABASE_URL):
 * the first tab subscribes to the demo session, the second sends a message that the first then
 * shows. The session id is written into the documents rather than into the Variables editor:
 * the GraphiQL that yoga bundles shows a default tab's query but not its variables.
 */
function watchTab(session: string): string {
  return `# The demo, signed in as demo-alice: the Headers tab holds her token, and new tabs get it too.
# Run an operation: put the cursor in it and press Ctrl-Enter (or pick it from the run button).
#
# SessionEvents keeps running and shows each event of the "Welcome" session as it is committed.
# Start it, then run SendMessage in the second tab: the message appears here.

subscription SessionEvents {
  sessionEvents(sessionId: ${session}) {
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

mutation SendMessage {
  sendMessage(input: { sessionId: ${session}, body: "Hello from GraphiQL" }) {
    eventId
    sequence
    message { id body }
  }
}
`;
}

function sendTab(session: string): string {
  return `# Sends a message to the demo session; the SessionEvents subscription in the first tab shows it.
mutation SendMessage {
  sendMessage(input: { sessionId: ${session}, body: "Hello from the second tab" }) {
    eventId
    sequence
    message { id body }
  }
}
`;
}

export interface DemoGraphiQLInput {
  /** A bearer token of the demo owner. */
  token: string;
  /** The demo's chat session, or null when the database holds other data than the demo. */
  sessionId: string | null;
}

export function demoGraphiQLOptions({ token, sessionId }: DemoGraphiQLInput): GraphiQLOptions {
  const headers = JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);
  // Without a demo session the documents say where to find one (they fail with BAD_USER_INPUT as is).
  const session = sessionId ? JSON.stringify(sessionId) : '"<a session id from the Projects query>"';
  return {
    headers,
    // Tabs opened later start with the same header.
    defaultHeaders: headers,
    shouldPersistHeaders: true,
    defaultTabs: [
      { query: watchTab(session), headers },
      { query: sendTab(session), headers },
    ],
  };
}
