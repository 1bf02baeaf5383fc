import type { Viewer } from '../../platform/auth/token.ts';
import { builder } from '../../platform/graphql/builder.ts';

const ViewerRef = builder.objectRef<Viewer>('Viewer').implement({
  description: 'The authenticated user.',
  fields: (t) => ({
    userId: t.exposeID('userId'),
    tokenExpiresAt: t.expose('tokenExpiresAt', { type: 'DateTime', nullable: true }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({ type: ViewerRef, resolve: (_root, _args, ctx) => ctx.viewer() }),
);
