import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const rulesFile = 'ops/prometheus/alerts.yml';
const rulesTestFile = 'ops/prometheus/alerts.test.yml';

const promtoolFound = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
// Shown in the test name, so a run without promtool says why these did not run.
const skipReason = promtoolFound ? '' : ' [skipped: promtool is not on PATH; `apt-get install prometheus` provides it, .ci/run installs it]';
if (!promtoolFound) console.warn(`Prometheus alert rule tests${skipReason}`);

function promtool(...args: string[]) {
  const run = spawnSync('promtool', args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('Prometheus alert rules', () => {
  it.skipIf(!promtoolFound)(`pass promtool check rules${skipReason}`, () => {
    const result = promtool('check', 'rules', rulesFile);
    expect(result.output).toContain('SUCCESS');
    expect(result.status, result.output).toBe(0);
  });

  it.skipIf(!promtoolFound)(`pass their unit tests (promtool test rules)${skipReason}`, () => {
    const result = promtool('test', 'rules', rulesTestFile);
    expect(result.status, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS');
  });

  it('each point to a runbook section that exists in docs/operations.md, and each is unit-tested', () => {
    const rules = readFileSync(`${root}/${rulesFile}`, 'utf8');
    const tests = readFileSync(`${root}/${rulesTestFile}`, 'utf8');
    const docs = readFileSync(`${root}/docs/operations.md`, 'utf8');
    // GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes.
    const anchors = new Set(
      [...docs.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')),
    );
    const alerts = [...rules.matchAll(/- alert: (\w+)[\s\S]*?runbook_url: docs\/operations\.md#([\w-]+)/g)].map((m) => ({ name: m[1]!, anchor: m[2]! }));
    expect(alerts.length).toBe([...rules.matchAll(/- alert: /g)].length);
    expect(alerts.length).toBeGreaterThanOrEqual(9);
    for (const alert of alerts) {
      expect(anchors, `runbook section #${alert.anchor} for ${alert.name}`).toContain(alert.anchor);
      expect(tests, `a unit test that expects ${alert.name} to fire`).toMatch(new RegExp(`alertname: ${alert.name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
    }
  });
});
