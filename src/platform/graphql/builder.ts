import SchemaBuilder from '@pothos/core';
import type { GraphQLContext } from './context.ts';

/** The builder and its type parameters only; every type lives in the schema file of its noun. */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  Scalars: {
    ID: { Input: string; Output: string };
    DateTime: { Input: Date; Output: Date };
  };
  // Fields are non-null unless they say otherwise: a null must mean something.
  DefaultFieldNullability: false;
}>({ defaultFieldNullability: false });
