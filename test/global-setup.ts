import type { TestProject } from 'vitest/node';
import { createOrm, migrateToLatest } from '../src/platform/db/orm.ts';
import { databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from './support/database.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

/**
 * Migrates one template database per run; each test file clones it (CREATE DATABASE ... TEMPLATE),
 * which takes milliseconds and gives every file a database of its own.
 */
export default async function setup(project: TestProject) {
  const template = uniqueDatabaseName('chat_outbox_template');
  await withAdminClient((client) => client.query(`create database ${quoteIdent(template)}`));
  const orm = await createOrm({ kind: 'postgresql', url: databaseUrl(template) });
  try {
    await migrateToLatest(orm);
  } finally {
    await orm.close(true);
  }
  project.provide('templateDatabase', template);

  return async () => {
    await withAdminClient((client) => client.query(`drop database if exists ${quoteIdent(template)} with (force)`));
  };
}
