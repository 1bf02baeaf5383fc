// Used by the MikroORM CLI (`npm run db:migrate`, `npm run db:migration:create`). The app itself
// builds the same options through src/db/orm.ts.
import { loadConfig } from './src/config.ts';
import { ormOptions } from './src/db/orm.ts';

export default ormOptions(loadConfig().database);
