import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../../platform/db/ids.ts';
import { ProjectMemberSchema } from './project-member.entity.ts';

export const ProjectSchema = defineEntity({
  name: 'Project',
  tableName: 'project',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    name: p.string().length(200),
    /** Last project-wide event sequence number (see outbox.writer.ts). */
    eventSequence: p.integer().default(0),
    createdAt: p.datetime().onCreate(() => new Date()),
    members: () => p.oneToMany(ProjectMemberSchema).mappedBy('project'),
  },
});

export type IProject = InferEntity<typeof ProjectSchema>;
