// `npm run token -- --sub alice [--expires-in 3600] [--admin]`: prints a dev HS256 token the gateway
// accepts in dev mode; with --admin it carries NEUROAGENT_AUTH__ADMIN_ROLE at __ADMIN_CLAIM. Reads NEUROAGENT_AUTH__JWT_SECRET, or the dev secret file (created when absent, exactly
// as the gateway would), plus ISSUER and AUDIENCE when set. Never useful in JWKS mode.
import { parseArgs } from 'node:util';
import { Type } from '@sinclair/typebox';
import {
  adminClaims,
  loadOrCreateDevSecret,
  MIN_SECRET_LENGTH,
  signDevToken,
} from '../services/gateway/src/auth/dev-token.ts';
import { AuthSettings } from '../services/gateway/src/auth/settings.ts';
import { loadConfig } from '../services/platform/src/config.ts';

const USAGE =
  'usage: node scripts/token.ts --sub <user-id> [--expires-in <seconds>] (default 3600) [--admin]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      'expires-in': { type: 'string', default: '3600' },
      admin: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const sub = values.sub?.trim();
  const expiresIn = Number(values['expires-in']);
  if (!sub || !Number.isInteger(expiresIn) || expiresIn <= 0) {
    process.stderr.write(`token: ${USAGE}\n`);
    process.exit(64);
  }

  // Only the auth variables: the rest of .env.app belongs to the gateway's own loader.
  const authEnv = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => name.startsWith('NEUROAGENT_AUTH__')),
  );
  const { auth } = loadConfig(Type.Object({ auth: AuthSettings }), 'NEUROAGENT', authEnv);
  if (auth.jwks_url) {
    process.stderr.write(
      'token: warning: NEUROAGENT_AUTH__JWKS_URL is set; the gateway will reject dev tokens\n',
    );
  }
  const secret = auth.jwt_secret || (await loadOrCreateDevSecret(auth.dev_secret_file)).secret;
  if (secret.length < MIN_SECRET_LENGTH) {
    process.stderr.write(`token: the secret must be at least ${MIN_SECRET_LENGTH} characters\n`);
    process.exit(78);
  }
  const token = await signDevToken({
    secret,
    sub,
    issuer: auth.issuer || undefined,
    audience: auth.audience || undefined,
    expiresInS: expiresIn,
    ...(values.admin ? { claims: adminClaims(auth.admin_claim, auth.admin_role) } : {}),
  });
  process.stdout.write(`${token}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`token: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
