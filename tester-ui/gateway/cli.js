#!/usr/bin/env node
// node gateway/cli.js serve [--port 8787] [--host 127.0.0.1] [--data tester-ui/.gateway-data/tasks.db] [--secret S]
//                           [--origins '*'|a,b] [--lease-ttl-ms N] [--max-attempts N] [--ping-ms N]
//                           [--reaper-ms N] [--max-body-bytes N] [--max-frame-bytes N] [--disable type,prefix/*]
//                           [--dev-origins http://a,http://b] [--log-level info]
// node gateway/cli.js token --kind service|desktop|org-extension|user-extension
//                           [--sub S] [--user user:abc] [--org org1] [--ttl 30d] [--secret S]
// Env: GATEWAY_PORT, GATEWAY_HOST, GATEWAY_DATA, GATEWAY_SECRET, GATEWAY_ORIGINS, GATEWAY_LEASE_TTL_MS,
//      GATEWAY_MAX_ATTEMPTS, GATEWAY_DEV_ORIGINS, GATEWAY_LOG_LEVEL (flags win over env).

import { mkdirSync } from 'node:fs';
import { dirname, resolve, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createGateway, DEFAULT_SECRET } from './index.js';
import { mintToken, KINDS } from './auth.js';

const USAGE = `usage:
  node gateway/cli.js serve [--port 8787] [--host 127.0.0.1] [--data tester-ui/.gateway-data/tasks.db] [--secret S]
                            [--origins '*'|https://a,https://b] [--lease-ttl-ms 30000] [--max-attempts 5]
                            [--ping-ms 15000] [--reaper-ms 1000] [--max-body-bytes N] [--max-frame-bytes N]
                            [--disable t1,ns/*] [--dev-origins https://a,https://b] [--log-level info]
  node gateway/cli.js token --kind service|desktop|org-extension|user-extension[,...]
                            [--sub S] [--user user:abc] [--org org1] [--ttl 30d] [--secret S]`;

/** Default data file: tester-ui/.gateway-data/tasks.db whatever the working directory (git-ignored). */
const DEFAULT_DATA = join(dirname(fileURLToPath(import.meta.url)), '..', '.gateway-data', 'tasks.db');

/** Default claims for the printed dev tokens. */
export const DEV_IDENTITIES = [
  { kind: 'service', sub: 'service:dev-worker' },
  { kind: 'desktop', sub: 'desktop:dev', userId: 'user:dev' },
  { kind: 'org-extension', sub: 'org-extension:dev', orgId: 'org-dev' },
  { kind: 'user-extension', sub: 'user-extension:dev', userId: 'user:dev' },
];

/** @param {string|undefined} v */
const num = (v) => (v === undefined || v === '' ? undefined : Number(v));
/** @param {string|undefined} v a comma list */
const list = (v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);

async function main() {
  const argv = process.argv.slice(2);
  const cmd = argv[0]?.startsWith('-') ? 'help' : argv[0];
  const rest = argv[0]?.startsWith('-') ? [] : argv.slice(1);
  const { values } = parseArgs({
    args: rest,
    options: {
      port: { type: 'string' }, host: { type: 'string' }, data: { type: 'string' }, secret: { type: 'string' },
      origins: { type: 'string' }, 'lease-ttl-ms': { type: 'string' }, 'max-attempts': { type: 'string' },
      'ping-ms': { type: 'string' }, 'reaper-ms': { type: 'string' }, 'max-body-bytes': { type: 'string' },
      'max-frame-bytes': { type: 'string' }, 'dev-origins': { type: 'string' },
      disable: { type: 'string' }, 'log-level': { type: 'string' },
      kind: { type: 'string' }, sub: { type: 'string' }, user: { type: 'string' }, org: { type: 'string' }, ttl: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  const env = process.env;
  const secret = values.secret ?? env.GATEWAY_SECRET ?? DEFAULT_SECRET;

  if (values.help || !cmd || cmd === 'help') {
    console.log(USAGE);
    return;
  }
  if (cmd === 'token') {
    const kinds = (values.kind ?? '').split(',').map((k) => k.trim()).filter(Boolean);
    if (!kinds.length || !kinds.every((k) => KINDS.includes(/** @type {any} */ (k))))
      throw new Error(`--kind must be one of ${KINDS.join(', ')} (or a comma list of them)`);
    const token = await mintToken(secret, {
      kind: /** @type {any} */ (kinds.length === 1 ? kinds[0] : kinds), sub: values.sub, userId: values.user, orgId: values.org, ttl: values.ttl,
    });
    console.log(token);
    return;
  }
  if (cmd !== 'serve') throw new Error(`unknown command '${cmd}'\n${USAGE}`);

  const originsText = values.origins ?? env.GATEWAY_ORIGINS ?? '*';
  const origins = originsText.trim() === '*' ? '*' : originsText.split(',').map((s) => s.trim()).filter(Boolean);
  const dataArg = values.data ?? env.GATEWAY_DATA ?? DEFAULT_DATA;
  const dataFile = dataArg === ':memory:' ? dataArg : resolve(dataArg);
  if (dataFile !== ':memory:') mkdirSync(dirname(dataFile), { recursive: true });
  const logger = pino({ level: values['log-level'] ?? env.GATEWAY_LOG_LEVEL ?? 'info' });
  const gw = await createGateway({
    port: num(values.port ?? env.GATEWAY_PORT) ?? 8787,
    host: values.host ?? env.GATEWAY_HOST ?? '127.0.0.1',
    dataFile,
    secret,
    origins,
    leaseTtlMs: num(values['lease-ttl-ms'] ?? env.GATEWAY_LEASE_TTL_MS),
    maxAttempts: num(values['max-attempts'] ?? env.GATEWAY_MAX_ATTEMPTS),
    pingIntervalMs: num(values['ping-ms']),
    reaperIntervalMs: num(values['reaper-ms']),
    maxBodyBytes: num(values['max-body-bytes']),
    maxFrameBytes: num(values['max-frame-bytes']),
    devOrigins: list(values['dev-origins'] ?? env.GATEWAY_DEV_ORIGINS),
    disabledTypes: list(values.disable),
    logger,
  });
  const lines = [
    `GATEWAY_URL=${gw.url}`,
    `neuron dev gateway listening on ${gw.url}  (data: ${dataFile}${gw.recovered ? `, ${gw.recovered} lease(s) from a previous run returned to pending` : ''})`,
    secret === DEFAULT_SECRET ? 'using the built-in dev secret (set --secret or GATEWAY_SECRET for anything shared)' : 'using the configured secret',
    'dev tokens (valid 30 days):',
  ];
  for (const id of DEV_IDENTITIES) {
    const token = await mintToken(secret, /** @type {any} */ (id));
    lines.push(`  ${id.kind.padEnd(15)} ${JSON.stringify({ ...id, kind: undefined })}`, `    ${token}`);
  }
  lines.push(`dev API: ${gw.url}/dev/tasks, ${gw.url}/dev/neurons, live feed ${gw.url}/dev/feed`);
  process.stdout.write(lines.join('\n') + '\n');

  let stopping = false;
  const stop = async (/** @type {string} */ sig) => {
    if (stopping) return;
    stopping = true;
    logger.info({ sig }, 'shutting down');
    await gw.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
