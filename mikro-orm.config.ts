// Used by the MikroORM CLI (`npm run db:migrate`, `npm run db:migration:create`). The app itself
// builds the same options through src/platform/db/orm.ts.
import { loadConfig } from './src/platform/config.ts';
import { ormOptions } from './src/platform/db/orm.ts';

// Migrations neither serve nor check tokens: no JWT setting is needed for them.
export default ormOptions(loadConfig(process.env, { requireAuth: false }).database);
