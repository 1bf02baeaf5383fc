import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from './support/database.ts';
import { freePort } from './support/ports.ts';

/**
 * No image registry is reachable from the machines, so the image cannot be built here. This test
 * does what the Dockerfile does, without Docker: it copies the files the runtime stage copies,
 * installs dependencies with the deps stage's command, and then runs what compose.yaml runs
 * (the migration, then the server) on Node 24 alone, and probes it with the image's HEALTHCHECK.
 * That catches a runtime import of a devDependency, a file the image forgets, and a broken probe.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const runtimeStage = dockerfile.slice(dockerfile.indexOf(' AS runtime'));
const depsStage = dockerfile.slice(dockerfile.indexOf(' AS deps'), dockerfile.indexOf(' AS runtime'));

/** The sources of the runtime stage's `COPY` lines that copy from the build context. */
const copied = [...runtimeStage.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
/** The deps stage's `npm ci ...` command, as the image runs it. */
const npmCi = /RUN (npm ci [^&\n]+)/.exec(depsStage)?.[1]?.trim().split(/\s+/) ?? [];
/** The exec-form HEALTHCHECK command. */
const healthcheck = JSON.parse(/HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])/.exec(dockerfile)?.[1] ?? 'null') as string[] | null;
/** The exec-form CMD of the image. */
const command = JSON.parse([...dockerfile.matchAll(/^CMD (\[.*\])$/gm)].at(-1)?.[1] ?? 'null') as string[] | null;

describe('the Dockerfile', () => {
  let app: string;
  let scratch: string;
  let database: string;
  // Node 24 plays the image's `node`: first on PATH, as in node:24-bookworm-slim.
  const env = () => ({
    PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
    HOME: scratch,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl(database),
    JWT_SECRET: 'a-secret-of-at-least-32-characters-for-this-test',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    MIGRATE_ON_START: 'false',
  });

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'chat-outbox-image-'));
    app = join(scratch, 'app');
    database = uniqueDatabaseName('chat_outbox_image');
    await withAdminClient((client) => client.query(`create database ${quoteIdent(database)}`));
  });
  afterAll(async () => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    if (database) await withAdminClient((client) => client.query(`drop database if exists ${quoteIdent(database)} with (force)`));
  });

  it('is parsed by this test: runtime COPY sources, the npm ci command, HEALTHCHECK and CMD', () => {
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'migrations']));
    expect(npmCi).toEqual(expect.arrayContaining(['npm', 'ci', '--omit=dev']));
    expect(healthcheck?.join(' ')).toContain('/health/ready');
    expect(command).toEqual(['node', 'src/main.ts']);
    expect(runtimeStage).toMatch(/^USER node$/m);
  });

  it('has a .dockerignore that keeps secrets and local state out of the build context, and nothing the image copies', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['.git', 'node_modules', '.env', '.data']));
    for (const source of copied) expect(ignored, `${source} is copied by the Dockerfile`).not.toContain(source);
  });

  it('installs no devDependency, migrates with the image\'s files, and serves a ready API on Node 24 alone', async () => {
    for (const source of copied) cpSync(join(root, source), join(app, source), { recursive: true });
    const install = spawnSync(npmCi[0]!, [...npmCi.slice(1), '--prefer-offline'], { cwd: app, encoding: 'utf8', timeout: 240_000, env: { ...process.env, HOME: process.env.HOME } });
    expect(install.status, install.stderr).toBe(0);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    for (const dev of Object.keys(pkg.devDependencies)) expect(existsSync(join(app, 'node_modules', dev)), `devDependency ${dev} in the image`).toBe(false);

    // compose.yaml's migrate service.
    const migrate = spawnSync('npm', ['run', 'db:migrate'], { cwd: app, encoding: 'utf8', timeout: 120_000, env: env() });
    expect(migrate.status, `${migrate.stdout}${migrate.stderr}`).toBe(0);
    const client = await connect(databaseUrl(database));
    try {
      expect((await client.query(`select to_regclass('event_outbox') is not null as migrated`)).rows[0].migrated).toBe(true);
    } finally {
      await client.end();
    }

    const port = String(await freePort());
    const server = spawn(command![0]!, command!.slice(1), { cwd: app, env: { ...env(), PORT: port }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    server.stdout.on('data', (chunk) => (output += chunk));
    server.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
    try {
      const probe = () => spawnSync(healthcheck![0]!, healthcheck!.slice(1), { cwd: app, env: { ...env(), PORT: port }, timeout: 5_000 }).status;
      const deadline = Date.now() + 60_000;
      while (probe() !== 0) {
        expect(server.exitCode, output).toBeNull();
        expect(Date.now() < deadline, `HEALTHCHECK never passed:\n${output}`).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const ready = await (await fetch(`http://127.0.0.1:${port}/health/ready`)).json();
      expect(ready.status).toBe('ready');
    } finally {
      server.kill('SIGTERM');
    }
    // `docker stop` sends SIGTERM to the CMD: a graceful stop.
    expect(await exited, output).toBe(0);
  }, 300_000);
});
