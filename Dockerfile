# syntax=docker/dockerfile:1
# chat-outbox API image. The app is TypeScript run directly by Node 24 (type stripping): there is
# no build step, so the stages only separate installing production dependencies from the image
# that runs. In development the Node binary comes from the `node` devDependency; here the official
# node:24 image provides it, so the devDependencies (node, typescript, vitest, types) stay out.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no production dependency has an install script (only the `node`
# devDependency does, and it is omitted), so nothing is lost and nothing runs at build time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    PGLITE_DATA_DIR=/data/pglite
WORKDIR /app
# Files stay owned by root and read-only for the app user; only /data (the embedded database,
# used when DATABASE_URL is unset) is writable.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json mikro-orm.config.ts ./
COPY src ./src
COPY migrations ./migrations
COPY scripts ./scripts
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 4000
# node:24-bookworm-slim has no curl; Node's fetch does the probe. Ready means: database answers,
# migrations applied, the publisher (if enabled) running, and not shutting down.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node runs as PID 1, so SIGTERM from `docker stop` reaches the app's graceful shutdown directly;
# `npm start` would sit in between and not forward it reliably.
CMD ["node", "src/main.ts"]
