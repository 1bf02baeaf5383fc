import { AgentSchema } from './domain/agents/agent.entity.ts';
import { AgentCredentialSchema } from './domain/agents/agent-credential.entity.ts';
import { WorkerSpaceSchema } from './domain/agents/worker-space.entity.ts';
import { ChatSessionSchema } from './domain/chat/chat-session.entity.ts';
import { MessageSchema } from './domain/chat/message.entity.ts';
import { OutboxEventSchema } from './outbox/outbox-event.entity.ts';
import { ProjectMemberSchema } from './domain/projects/project-member.entity.ts';
import { ProjectSchema } from './domain/projects/project.entity.ts';

/** Every entity the ORM knows, listed explicitly (no folder discovery). */
export const entities = [
  ProjectSchema,
  ProjectMemberSchema,
  ChatSessionSchema,
  MessageSchema,
  AgentSchema,
  WorkerSpaceSchema,
  AgentCredentialSchema,
  OutboxEventSchema,
];
