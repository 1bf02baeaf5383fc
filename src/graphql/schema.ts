// Imports every noun's schema file for its side effect of registering types, then builds.
import './scalars.ts';
import '../auth/viewer.schema.ts';
import '../projects/project.schema.ts';
import '../chat/chat-session.schema.ts';
import '../chat/message.schema.ts';
import '../agents/agent.schema.ts';
import '../agents/worker-space.schema.ts';
import '../events/chat-event.schema.ts';
import '../outbox/outbox-status.schema.ts';
import '../analytics/analytics.schema.ts';
import { builder } from './builder.ts';

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export const schema = builder.toSchema({ sortSchema: true });
