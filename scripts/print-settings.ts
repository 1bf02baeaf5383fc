// Writes the settings table of docs/operations.md (between its marker comments) and .env.example
// from the declarations in src/platform/config.ts. Tests fail when either committed file is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { envExample, settingsTable } from '../src/platform/config.ts';
import { SETTINGS_END, SETTINGS_START, withSettingsTable } from './settings-table.ts';

const target = new URL('../docs/operations.md', import.meta.url);
const before = readFileSync(target, 'utf8');
const after = withSettingsTable(before, settingsTable());
if (after === null) {
  console.error(`${target.pathname} has no ${SETTINGS_START} … ${SETTINGS_END} markers`);
  process.exit(1);
}
writeFileSync(target, after);
console.log(after === before ? `${target.pathname} is up to date` : `wrote ${target.pathname}`);

const example = new URL('../.env.example', import.meta.url);
const exampleBefore = readFileSync(example, 'utf8');
writeFileSync(example, envExample());
console.log(envExample() === exampleBefore ? `${example.pathname} is up to date` : `wrote ${example.pathname}`);
