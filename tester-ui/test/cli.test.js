// The CLI: `token` mints verifiable tokens; `serve` reads env vars and prints a URL and a token per identity kind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authenticate } from '../gateway/auth.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'gateway', 'cli.js');
const run = promisify(execFile);

test('token --kind ... mints a token with the documented claims', async () => {
  const cases = [
    [['--kind', 'service', '--sub', 'svc-9'], { kind: 'service', sub: 'svc-9' }],
    [['--kind', 'desktop', '--user', 'user:abc'], { kind: 'desktop', sub: 'desktop:user:abc', userId: 'user:abc', attested: true }],
    [['--kind', 'org-extension', '--org', 'org1'], { kind: 'org-extension', sub: 'org-extension:org1', orgId: 'org1' }],
    [['--kind', 'user-extension', '--user', 'user:abc'], { kind: 'user-extension', sub: 'user-extension:user:abc', userId: 'user:abc' }],
    [['--kind', 'service,desktop', '--user', 'user:abc', '--sub', 'app'], { kind: ['service', 'desktop'], sub: 'app', userId: 'user:abc', attested: true }],
  ];
  for (const [args, identity] of cases) {
    const { stdout } = await run(process.execPath, [CLI, 'token', ...args, '--secret', 'cli-secret']);
    assert.deepEqual(await authenticate('cli-secret', `Bearer ${stdout.trim()}`), identity);
  }
  await assert.rejects(run(process.execPath, [CLI, 'token', '--kind', 'desktop']), /needs a userId/);
  await assert.rejects(run(process.execPath, [CLI, 'token', '--kind', 'root']), /--kind must be one of/);
  await assert.rejects(run(process.execPath, [CLI, 'bogus']), /unknown command/);
});

test('serve honours GATEWAY_* env vars and prints the URL and a token for each kind', async (t) => {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { ...process.env, GATEWAY_PORT: '0', GATEWAY_DATA: ':memory:', GATEWAY_SECRET: 'env-secret', GATEWAY_ORIGINS: 'http://a.example,http://b.example', GATEWAY_DEV_ORIGINS: 'http://tester.example', GATEWAY_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  child.stdout.on('data', (c) => { out += c; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL: ${out}`)), 10_000);
    child.stdout.on('data', () => {
      const m = /GATEWAY_URL=(\S+)/.exec(out);
      if (m && /dev API/.test(out)) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  const tokens = [...out.matchAll(/^\s+(eyJ\S+)$/gm)].map((m) => m[1]);
  assert.equal(tokens.length, 4);
  const kinds = [];
  for (const tk of tokens) kinds.push((await authenticate('env-secret', `Bearer ${tk}`)).kind);
  assert.deepEqual(kinds, ['service', 'desktop', 'org-extension', 'user-extension']);
  const info = await (await fetch(`${url}/dev/info`)).json();
  assert.deepEqual(info.settings.origins, ['http://a.example', 'http://b.example']);
  assert.deepEqual(info.settings.devOrigins, ['http://tester.example']);
  assert.equal(info.settings.dataFile, ':memory:');
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0);
});
