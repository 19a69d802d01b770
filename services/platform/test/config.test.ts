import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { ConfigError, configTable, describeConfig, loadConfig } from '../src/index.ts';

const Schema = Type.Object({
  http: Type.Object({
    host: Type.String({ default: '127.0.0.1', description: 'bind address' }),
    port: Type.Integer({ default: 8078, minimum: 0, maximum: 65535 }),
  }),
  queues: Type.Array(Type.String(), { default: ['python_q'] }),
  flag: Type.Boolean({ default: false }),
  ratio: Type.Number({ default: 0.5 }),
  secret: Type.String({ minLength: 1 }),
});

describe('loadConfig', () => {
  it('maps PREFIX_A__B variables onto nested keys, with defaults and coercion', () => {
    const cfg = loadConfig(Schema, 'APP', {
      APP_HTTP__PORT: '9000',
      APP_QUEUES: 'python_q, circuit_q',
      APP_FLAG: 'true',
      APP_RATIO: '0.25',
      APP_SECRET: 's',
    });
    assert.deepEqual(cfg, {
      http: { host: '127.0.0.1', port: 9000 },
      queues: ['python_q', 'circuit_q'],
      flag: true,
      ratio: 0.25,
      secret: 's',
    });
    assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.http));
  });

  it('reports every problem at once, each naming its variable', () => {
    let caught: unknown;
    try {
      loadConfig(Schema, 'APP', { APP_HTTP__PORT: 'eighty', APP_FLAG: 'maybe', APP_HTTP_HOST: 'x' });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ConfigError);
    assert.equal(caught.code, 'config_invalid');
    const paths = (caught.details ?? []).map((d) => d.path).sort();
    assert.deepEqual(paths, ['APP_FLAG', 'APP_HTTP_HOST', 'APP_HTTP__PORT', 'APP_SECRET']);
    assert.match(caught.message, /APP_HTTP__PORT: Expected integer \(got "eighty"\)/);
    assert.match(caught.message, /APP_HTTP_HOST: unknown variable/);
    assert.match(caught.message, /APP_SECRET: is required/);
  });

  it('rejects numbers out of range and non-decimal numerals', () => {
    assert.throws(
      () => loadConfig(Schema, 'APP', { APP_HTTP__PORT: '70000', APP_SECRET: 's' }),
      /APP_HTTP__PORT/,
    );
    assert.throws(
      () => loadConfig(Schema, 'APP', { APP_HTTP__PORT: '1e3', APP_SECRET: 's' }),
      /APP_HTTP__PORT/,
    );
  });

  it('ignores variables of other prefixes', () => {
    const cfg = loadConfig(Schema, 'APP', { APP_SECRET: 's', OTHER_X: '1', APPLE: '2' });
    assert.equal(cfg.http.port, 8078);
  });
});

describe('describeConfig', () => {
  it('lists every variable with its default, for the docs table', () => {
    const vars = describeConfig(Schema, 'APP');
    assert.deepEqual(
      vars.map((v) => [v.variable, v.default]),
      [
        ['APP_HTTP__HOST', '127.0.0.1'],
        ['APP_HTTP__PORT', '8078'],
        ['APP_QUEUES', 'python_q'],
        ['APP_FLAG', 'false'],
        ['APP_RATIO', '0.5'],
        ['APP_SECRET', ''],
      ],
    );
    assert.match(configTable(Schema, 'APP'), /\| `APP_HTTP__HOST` \| `127.0.0.1` \| bind address \|/);
  });
});
