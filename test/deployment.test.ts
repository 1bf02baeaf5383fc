import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/platform/config.ts';
import { useTestApp } from './support/app.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(`${root}/${path}`, 'utf8');

/** A Debian tool the test needs; when it is missing the test is skipped with the reason in its name. */
function tool(command: string, versionArgs: string[], install: string) {
  const found = spawnSync(command, versionArgs, { encoding: 'utf8' }).status === 0;
  const skip = found ? '' : ` [skipped: ${command} is not on PATH; \`apt-get install ${install}\` provides it, .ci/run installs it]`;
  if (!found) console.warn(`deployment test${skip}`);
  return { found, skip };
}
const compose = tool('docker-compose', ['version'], 'docker-compose');
const promtool = tool('promtool', ['--version'], 'prometheus');

function run(command: string, args: string[], env: Record<string, string> = {}) {
  // Only PATH and HOME from the outside, so a JWT_SECRET in the developer's shell cannot hide a
  // compose file that lost its interpolation.
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...env } });
  return { status: result.status, stdout: result.stdout, output: `${result.stdout}${result.stderr}` };
}

/** The variables of the configuration reference table in docs/operations.md. */
function documentedSettings(): string[] {
  const docs = read('docs/operations.md');
  const section = docs.slice(docs.indexOf('## Configuration reference'), docs.indexOf('\n## ', docs.indexOf('## Configuration reference') + 1));
  return [...section.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1]!);
}

/** KEY=value lines of a dotenv file (comments and blank lines dropped). */
function parseDotenv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

describe('.env.example', () => {
  const example = parseDotenv(read('.env.example'));

  it('names every setting of the configuration reference, and nothing else', () => {
    const documented = documentedSettings();
    expect(documented.length).toBeGreaterThanOrEqual(25);
    expect(Object.keys(example).filter((name) => !documented.includes(name)), 'in .env.example but not documented').toEqual([]);
    expect(documented.filter((name) => !(name in example)), 'documented but missing from .env.example').toEqual([]);
  });

  it('holds the defaults: loading it gives the same configuration as an empty environment', () => {
    expect(loadConfig(example)).toEqual(loadConfig({}));
  });
});

describe('installing', () => {
  it('the README\'s warning-free npm ci names the Node version package.json pins', () => {
    const pinned = (JSON.parse(read('package.json')) as { devDependencies: Record<string, string> }).devDependencies.node;
    const named = [...read('README.md').matchAll(/--package=node@([\d.]+)/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(0);
    expect(new Set(named)).toEqual(new Set([pinned]));
  });
});

describe('compose.yaml', () => {
  it.skipIf(!compose.found)(`is valid for docker-compose config, with two API instances, PostgreSQL, Redis, Prometheus and Grafana${compose.skip}`, () => {
    const env = { JWT_SECRET: 'a-secret-for-validating-the-compose-file-only' };
    const checked = run('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], env);
    expect(checked.status, checked.output).toBe(0);
    const services = run('docker-compose', ['-f', 'compose.yaml', 'config', '--services'], env);
    expect(services.stdout.trim().split('\n').sort()).toEqual(['api-1', 'api-2', 'grafana', 'migrate', 'postgres', 'prometheus', 'redis']);
  });

  it.skipIf(!compose.found)(`refuses to start without JWT_SECRET instead of using a default one${compose.skip}`, () => {
    const checked = run('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], { JWT_SECRET: '' });
    expect(checked.status).not.toBe(0);
    expect(checked.output).toContain('set JWT_SECRET');
  });

  it.skipIf(!compose.found)(`gives the API instances only settings the app knows, and a configuration it accepts${compose.skip}`, () => {
    const resolved = run('docker-compose', ['-f', 'compose.yaml', 'config'], { JWT_SECRET: 'a-secret-for-validating-the-compose-file-only' });
    expect(resolved.status, resolved.output).toBe(0);
    const documented = documentedSettings();
    for (const service of ['api-1', 'api-2', 'migrate']) {
      const block = new RegExp(`^  ${service}:\\n((?:    .*\\n|      .*\\n)*)`, 'm').exec(resolved.stdout)?.[1] ?? '';
      const environment = /^    environment:\n((?:      .*\n)*)/m.exec(block)?.[1] ?? '';
      const env = Object.fromEntries([...environment.matchAll(/^      ([A-Z][A-Z0-9_]*): (.*)$/gm)].map((m) => [m[1]!, m[2]!.replace(/^(['"])(.*)\1$/, '$2')]));
      expect(Object.keys(env).length, `${service} environment`).toBeGreaterThan(5);
      expect(Object.keys(env).filter((name) => !documented.includes(name)), `${service}: unknown settings`).toEqual([]);
      const config = loadConfig(env);
      expect(config.nodeEnv).toBe('production');
      expect(config.database.kind).toBe('postgresql');
      expect(config.redisUrl).toBe('redis://redis:6379/0');
    }
  });

  it('has Prometheus scrape exactly the API services of compose.yaml', () => {
    const targets = [...read('ops/prometheus/prometheus.yml').matchAll(/'([\w-]+):4000'/g)].map((m) => m[1]);
    const apiServices = [...read('compose.yaml').matchAll(/^  (api-\d+):$/gm)].map((m) => m[1]);
    expect(targets.sort()).toEqual(apiServices.sort());
    expect(targets.length).toBe(2);
  });
});

describe('ops/prometheus/prometheus.yml', () => {
  it.skipIf(!promtool.found)(`passes promtool check config, alert rules included${promtool.skip}`, () => {
    const result = run('promtool', ['check', 'config', 'ops/prometheus/prometheus.yml']);
    expect(result.status, result.output).toBe(0);
    expect(result.output).toMatch(/SUCCESS: 1 rule files found/);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
  });
});

// --- every metric a dashboard or an alert uses is one the app exports ------------------------

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan',
  // aggregation operators, which take `by (...)` between the name and the parenthesis
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile',
]);
/** Series Prometheus makes itself, never exported by a target. */
const PROMETHEUS_SERIES = new Set(['up', 'ALERTS', 'ALERTS_FOR_STATE']);

/** The metric names a PromQL expression selects. */
function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges ([5m], [$__rate_interval])
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1') // label lists
    .replace(/\$\w+/g, ''); // Grafana variables
  return [...stripped.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((name) => !PROMQL_WORDS.has(name.toLowerCase()) && !/^\d/.test(name));
}

function dashboardExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(read('ops/grafana/dashboards/chat-outbox.json')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ where: `dashboard panel "${panel.title}"`, expr: target.expr })));
}

function alertExpressions(): { where: string; expr: string }[] {
  const rules = read('ops/prometheus/alerts.yml');
  // `expr: one line` or `expr: |` followed by a block more indented than the key.
  return [...rules.matchAll(/- alert: (\w+)\n(?:.*\n)*?(\s+)expr: (?:\|\n((?:\2\s+.*\n|\s*\n)+)|(.+)\n)/g)].map((m) => ({
    where: `alert ${m[1]}`,
    expr: (m[3] ?? m[4]!).trim(),
  }));
}

describe('the Grafana provisioning', () => {
  it('points every dashboard query at the provisioned Prometheus data source, and serves the dashboard folder compose mounts', () => {
    const uid = /uid: (\S+)/.exec(read('ops/grafana/provisioning/datasources/prometheus.yml'))?.[1];
    expect(uid).toBeDefined();
    const dashboard = JSON.parse(read('ops/grafana/dashboards/chat-outbox.json')) as { panels: { type: string; datasource?: { uid: string }; targets?: { datasource?: { uid: string } }[] }[] };
    const queried = dashboard.panels.filter((panel) => panel.type !== 'row');
    expect(queried.length).toBeGreaterThanOrEqual(15);
    for (const panel of queried) {
      expect(panel.datasource?.uid).toBe(uid);
      for (const target of panel.targets ?? []) expect(target.datasource?.uid).toBe(uid);
    }
    const folder = /path: (\S+)/.exec(read('ops/grafana/provisioning/dashboards/chat-outbox.yml'))?.[1];
    expect(read('compose.yaml')).toContain(`./ops/grafana/dashboards:${folder}:ro`);
  });
});

describe('metric names in PromQL', () => {
  it('are read out of expressions (functions, labels, ranges and variables are not names)', () => {
    expect(
      metricNamesIn('histogram_quantile(0.99, sum by (le, operation_name) (rate(graphql_operation_duration_seconds_bucket{outcome="x y"}[$__rate_interval])))'),
    ).toEqual(['graphql_operation_duration_seconds_bucket']);
    expect(metricNamesIn('time() - max(a_seconds) > 600 and b == 1 or absent(c)')).toEqual(['a_seconds', 'b', 'c']);
  });
});

describe('the dashboard and the alert rules', () => {
  const t = useTestApp();

  it('use only metrics that /metrics of a running app exports', async () => {
    const text = await (await fetch(`${t.app.url}/metrics`)).text();
    const families = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const exported = (name: string) => {
      if (families.has(name)) return true;
      const histogram = /^(.*)_(bucket|sum|count)$/.exec(name);
      return !!histogram && ['histogram', 'summary'].includes(families.get(histogram[1]!) ?? '');
    };

    const expressions = [...dashboardExpressions(), ...alertExpressions()];
    expect(expressions.filter((e) => e.where.startsWith('alert')).length).toBe([...read('ops/prometheus/alerts.yml').matchAll(/- alert: /g)].length);
    expect(expressions.filter((e) => e.where.startsWith('dashboard')).length).toBeGreaterThanOrEqual(15);
    const missing = expressions.flatMap(({ where, expr }) =>
      metricNamesIn(expr)
        .filter((name) => !PROMETHEUS_SERIES.has(name) && !exported(name))
        .map((name) => `${where}: ${name}`),
    );
    expect(missing).toEqual([]);
    // Covers the three areas the dashboard is for.
    const used = new Set(expressions.flatMap((e) => metricNamesIn(e.expr)));
    for (const name of ['outbox_pending_events', 'outbox_commit_to_publish_seconds_bucket', 'graphql_active_subscriptions', 'subscription_events_delivered_total', 'graphql_operations_total']) {
      expect(used, name).toContain(name);
    }
  });
});
