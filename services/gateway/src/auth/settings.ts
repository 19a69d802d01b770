// AuthSettings: the NEUROAGENT_AUTH__* variables, mounted at `auth` in GatewayConfig. Three modes:
// JWKS (production, when jwks_url is set), dev HS256 (a shared secret), or disabled (loopback only).
// Leaf module: TypeBox only.
import { type Static, Type } from '@sinclair/typebox';

export const DEFAULT_DEV_SECRET_FILE = '.data/dev-jwt-secret';

export const AuthSettings = Type.Object({
  jwks_url: Type.String({
    default: '',
    description:
      'JWKS endpoint of the identity provider; when set, tokens are verified against it (production mode) and ISSUER and AUDIENCE are required',
  }),
  issuer: Type.String({
    default: '',
    description: 'Expected `iss` claim (required with JWKS_URL; checked in dev mode when set)',
  }),
  audience: Type.String({
    default: '',
    description: 'Expected `aud` claim (required with JWKS_URL; checked in dev mode when set)',
  }),
  jwt_secret: Type.String({
    default: '',
    description:
      'Dev mode (no JWKS_URL): HS256 secret, at least 32 characters; when empty, DEV_SECRET_FILE is used',
  }),
  disabled: Type.Boolean({
    default: false,
    description:
      'Turn authentication off: every request is user `anonymous`; refused unless HTTP__HOST is loopback',
  }),
  dev_secret_file: Type.String({
    default: DEFAULT_DEV_SECRET_FILE,
    minLength: 1,
    description:
      'Dev mode without JWT_SECRET: HS256 secret file, created (mode 0600) when absent; `npm run token` signs with it',
  }),
  clock_tolerance_s: Type.Integer({
    default: 5,
    minimum: 0,
    maximum: 300,
    description: 'Clock skew allowed when checking `exp` and `nbf`, in seconds',
  }),
  cache_ttl_s: Type.Integer({
    default: 60,
    minimum: 0,
    maximum: 3600,
    description:
      'A token that verified is trusted again without a signature check for this long (never past its `exp`); 0 checks every request',
  }),
  cache_max_entries: Type.Integer({
    default: 10000,
    minimum: 0,
    description: 'Most verified tokens remembered (least recently used dropped first); 0 disables the cache',
  }),
  admin_claim: Type.String({
    default: 'roles',
    minLength: 1,
    maxLength: 200,
    pattern: '^[A-Za-z0-9_:-]+(?:\\.[A-Za-z0-9_:-]+)*$',
    description:
      "Dotted path of the token claim that lists the caller's roles (e.g. `realm_access.roles` for Keycloak); a caller is an admin when it holds ADMIN_ROLE",
  }),
  admin_role: Type.String({
    default: 'admin',
    minLength: 1,
    maxLength: 200,
    description: 'The role (a string, or an item of an array) at ADMIN_CLAIM that grants the /admin routes',
  }),
  algorithms: Type.Array(
    // Asymmetric only: accepting HS* against a JWKS would let a public key be used as an HMAC secret.
    Type.String({ pattern: '^(?:(?:RS|PS|ES)(?:256|384|512)|EdDSA|Ed25519)$' }),
    {
      default: ['RS256', 'ES256'],
      minItems: 1,
      description: 'JWKS mode: accepted signature algorithms, comma-separated',
    },
  ),
});
export type AuthSettings = Static<typeof AuthSettings>;
