// npm run token -- <userId> [expiresIn]: prints a bearer token for that user, signed with JWT_SECRET.
import { createTokenService } from '../src/platform/auth/token.ts';
import { loadConfigOrExit } from '../src/platform/config.ts';

const [userId, expiresIn = '12h'] = process.argv.slice(2);
if (!userId) {
  console.error('usage: npm run token -- <userId> [expiresIn, e.g. 12h or 30d]');
  process.exit(2);
}
const config = loadConfigOrExit();
const tokens = createTokenService(config.auth);
if (!tokens.canSign) {
  console.error('npm run token needs JWT_SECRET: with JWT_JWKS_URL alone, tokens come from your identity provider');
  process.exit(1);
}
console.log(await tokens.sign(userId, { expiresIn }));
