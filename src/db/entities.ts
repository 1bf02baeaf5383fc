import { AgentSchema } from '../agents/agent.entity.ts';
import { WorkerSpaceSchema } from '../agents/worker-space.entity.ts';
import { ChatSessionSchema } from '../chat/chat-session.entity.ts';
import { MessageSchema } from '../chat/message.entity.ts';
import { OutboxEventSchema } from '../outbox/outbox-event.entity.ts';
import { ProjectMemberSchema } from '../projects/project-member.entity.ts';
import { ProjectSchema } from '../projects/project.entity.ts';

/** Every entity the ORM knows, listed explicitly (no folder discovery). */
export const entities = [
  ProjectSchema,
  ProjectMemberSchema,
  ChatSessionSchema,
  MessageSchema,
  AgentSchema,
  WorkerSpaceSchema,
  OutboxEventSchema,
];
