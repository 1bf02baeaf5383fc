import { badInput } from '../errors.ts';
import { builder } from './builder.ts';

builder.scalarType('DateTime', {
  description: 'An instant in time, as an ISO-8601 string with a UTC offset.',
  serialize: (value) => value.toISOString(),
  parseValue: (value) => {
    const date = typeof value === 'string' && /\d{4}-\d{2}-\d{2}T/.test(value) ? new Date(value) : null;
    if (!date || Number.isNaN(date.getTime())) throw badInput('DateTime', 'Expected an ISO-8601 date-time');
    return date;
  },
});
