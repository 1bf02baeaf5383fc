import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { ProjectSchema } from './project.entity.ts';
import { MAX_USER_ID_LENGTH } from '../../platform/validation.ts';

export const PROJECT_ROLES = ['owner', 'member'] as const;
export type ProjectRole = (typeof PROJECT_ROLES)[number];

/** A user's membership of a project. Users live in the identity provider; we know them by JWT `sub`. */
export const ProjectMemberSchema = defineEntity({
  name: 'ProjectMember',
  tableName: 'project_member',
  properties: {
    project: () => p.manyToOne(ProjectSchema).primary().deleteRule('cascade'),
    userId: p.string().length(MAX_USER_ID_LENGTH).primary(),
    role: p.enum(() => [...PROJECT_ROLES]).$type<ProjectRole>(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export type IProjectMember = InferEntity<typeof ProjectMemberSchema>;
