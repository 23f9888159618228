// The hand-written declarations (types/index.d.ts, types/ipc.d.ts) against
// tsc: the typed examples in types/check/ must compile (their wrong uses are
// marked @ts-expect-error, so those must still fail), and types/check-fail/
// must fail with exactly the errors its files mark `// expect-error TSxxxx`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const web = fileURLToPath(new URL('..', import.meta.url));
// What node_modules/.bin/tsc runs, started with this node (no shebang or .cmd shim involved).
const tscJs = join(web, 'node_modules', 'typescript', 'bin', 'tsc');

/** @param {string[]} args */
function tsc(args) {
  const r = spawnSync(process.execPath, [tscJs, ...args, '--pretty', 'false'], { cwd: web, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** `error TSxxxx` lines of tsc output as 'file:line TSxxxx' (paths relative to web/, forward slashes). */
function errorsIn(out) {
  const found = [];
  for (const m of out.matchAll(/^(.+?)\((\d+),\d+\): error (TS\d+):/gm)) {
    found.push(`${m[1].replace(/\\/g, '/')}:${m[2]} ${m[3]}`);
  }
  return found.sort();
}

/** The tsc --explainFiles block for one file: the lines saying why it is in the program. */
function explanation(out, file) {
  const lines = out.split(/\r?\n/);
  const at = lines.indexOf(file);
  if (at < 0) return [];
  const block = [];
  for (let i = at + 1; i < lines.length && /^\s/.test(lines[i]); i++) block.push(lines[i].trim());
  return block;
}

test('types/check compiles under strict nodenext, importing the package by name', () => {
  const { status, out } = tsc(['-p', 'types/check/tsconfig.json', '--explainFiles']);
  assert.deepEqual(errorsIn(out), [], out);
  assert.equal(status, 0, out);
  // Self-reference through package.json "exports" lands on the hand-written declarations.
  const viaRoot = explanation(out, 'types/index.d.ts');
  assert.ok(
    viaRoot.some((l) => l.startsWith("Imported via '@holokai/neuron-sdk' from file 'types/check/")),
    `'@holokai/neuron-sdk' did not resolve to types/index.d.ts:\n${viaRoot.join('\n')}`,
  );
  const viaIpc = explanation(out, 'types/ipc.d.ts');
  assert.ok(
    viaIpc.some((l) => l.startsWith("Imported via '@holokai/neuron-sdk/ipc' from file 'types/check/")),
    `'@holokai/neuron-sdk/ipc' did not resolve to types/ipc.d.ts:\n${viaIpc.join('\n')}`,
  );
  // zod stays an optional peer: the declarations never import it.
  for (const f of ['index.d.ts', 'ipc.d.ts']) {
    const text = readFileSync(join(web, 'types', f), 'utf8');
    assert.doesNotMatch(text, /from\s+['"]zod/, `types/${f} must not import zod`);
  }
});

test('types/check-fail does not compile, with exactly the marked errors', () => {
  const dir = join(web, 'types', 'check-fail');
  const expected = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    readFileSync(join(dir, f), 'utf8').split(/\r?\n/).forEach((line, i) => {
      for (const m of line.matchAll(/\/\/ expect-error (TS\d+)/g)) expected.push(`types/check-fail/${f}:${i + 1} ${m[1]}`);
    });
  }
  assert.ok(expected.length > 0, 'types/check-fail marks no expected errors');
  const { status, out } = tsc(['-p', 'types/check-fail/tsconfig.json']);
  assert.notEqual(status, 0, `tsc accepted types/check-fail:\n${out}`);
  assert.deepEqual(errorsIn(out), expected.sort(), out);
  // The wrong-output error names the mismatched field.
  assert.match(out, /Types of property 'exitCode' are incompatible\.\s+Type 'string' is not assignable to type 'number'/);
});
