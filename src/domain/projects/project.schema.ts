import { builder } from '../../platform/graphql/builder.ts';
import { connectionArgs, connectionField, connectionType } from '../../platform/graphql/connection.ts';
import { membershipKey } from '../loaders.ts';
import type { IProjectMember, ProjectRole } from './project-member.entity.ts';
import type { IProject } from './project.entity.ts';
import { addProjectMember, createProject, findVisibleProjects, getProject, listMembers, listMyProjects } from './project.service.ts';
import { NodeRef, nodeType } from '../../platform/graphql/node.ts';

export const ProjectRoleEnum = builder.enumType('ProjectRole', {
  values: {
    OWNER: { value: 'owner', description: 'Manages members and agents.' },
    MEMBER: { value: 'member', description: 'Chats and switches agents.' },
  } as const,
});

export const ProjectRef = builder.objectRef<IProject>('Project');
export const ProjectMemberRef = builder.objectRef<IProjectMember>('ProjectMember');
const ProjectConnection = connectionType('Project', ProjectRef);
const ProjectMemberConnection = connectionType('ProjectMember', ProjectMemberRef);

nodeType('Project', (ctx, ids) => findVisibleProjects(ctx.em, ctx.viewer().userId, ids));

ProjectRef.implement({
  description: 'A project: its members chat with AI agents in sessions.',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastEventSequence: t.exposeInt('eventSequence', {
      description:
        '`projectSequence` of the newest committed event of the project (0 when none). Load what you need, then subscribe to `projectEvents` with `afterSequence` set to this value: nothing is missed in between.',
    }),
    viewerRole: t.field({
      type: ProjectRoleEnum,
      description: "The viewer's role in this project.",
      resolve: async (project, _args, ctx) => {
        const membership = await ctx.loaders.membership.load(membershipKey(project.id, ctx.viewer().userId));
        // Only reachable through a membership check; losing it mid-request reads as plain member.
        return (membership?.role ?? 'member') as ProjectRole;
      },
    }),
  }),
});

connectionField(ProjectRef, 'members', {
  connection: ProjectMemberConnection,
  list: (project, args, ctx) => listMembers(ctx.em, project.id, args),
});

ProjectMemberRef.implement({
  description: "A user's membership of a project. Users are known by their token's subject.",
  fields: (t) => ({
    userId: t.exposeID('userId'),
    role: t.field({ type: ProjectRoleEnum, resolve: (member) => member.role }),
    joinedAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.queryFields((t) => ({
  projects: t.field({
    type: ProjectConnection,
    description: 'Projects the viewer is a member of, oldest first.',
    args: connectionArgs,
    resolve: (_root, args, ctx) => listMyProjects(ctx.em, ctx.viewer().userId, args),
  }),
  project: t.field({
    type: ProjectRef,
    description: 'A project the viewer is a member of; NOT_FOUND otherwise.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => getProject(ctx.em, ctx.viewer().userId, args.id),
  }),
}));

const CreateProjectInput = builder.inputType('CreateProjectInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: '1 to 200 characters.' }),
  }),
});

const AddProjectMemberInput = builder.inputType('AddProjectMemberInput', {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    userId: t.id({ required: true, description: "The user's id (their token's `sub`)." }),
    role: t.field({ type: ProjectRoleEnum, required: false, description: 'Defaults to MEMBER.' }),
  }),
});

builder.mutationFields((t) => ({
  createProject: t.field({
    type: ProjectRef,
    description: 'Creates a project with the viewer as its owner.',
    args: { input: t.arg({ type: CreateProjectInput, required: true }) },
    resolve: (_root, { input }, ctx) => createProject(ctx.em, ctx.viewer().userId, input),
  }),
  addProjectMember: t.field({
    type: ProjectMemberRef,
    description: 'Owners only. Adds a user to the project and gives them a worker space.',
    args: { input: t.arg({ type: AddProjectMemberInput, required: true }) },
    resolve: (_root, { input }, ctx) => addProjectMember(ctx.em, ctx.viewer().userId, input),
  }),
}));
