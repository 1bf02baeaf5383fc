// Imports every noun's schema file for its side effect of registering types, then builds.
import './platform/graphql/scalars.ts';
import './platform/graphql/node.ts';
import './domain/projects/viewer.schema.ts';
import './domain/projects/project.schema.ts';
import './domain/chat/chat-session.schema.ts';
import './domain/chat/message.schema.ts';
import './domain/agents/agent.schema.ts';
import './domain/agents/worker-space.schema.ts';
import './domain/agents/agent-credential.schema.ts';
import './domain/chat/chat-event.schema.ts';
import './subscriptions/event-subscriptions.schema.ts';
import './domain/outbox-admin/outbox-status.schema.ts';
import './domain/analytics/analytics.schema.ts';
import { builder } from './platform/graphql/builder.ts';

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export const schema = builder.toSchema({ sortSchema: true });
