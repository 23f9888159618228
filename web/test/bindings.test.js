// Every function the core's bindings export (emscripten/bindings.cpp) has
// its argument and result types registered in the glue. library_neuron.js
// leaves embind's std::wstring, typed-array view and emscripten::val types
// out of the glue; a binding that used one would only fail when called, so
// each is called here with a wrong argument count: a bound function refuses
// the count, an unbound one says which types it lacks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { getCore } from '../src/core.js';
import '../src/index.js';

const BINDINGS = new URL('../../emscripten/bindings.cpp', import.meta.url);

test('every binding of the core has its types registered', () => {
  const Module = getCore();
  const names = [...fs.readFileSync(BINDINGS, 'utf8').matchAll(/\bfunction\("(\w+)"/g)].map((m) => m[1]);
  assert.ok(names.length >= 25, `found ${names.length} bindings in bindings.cpp`);
  for (const name of names) {
    assert.equal(typeof Module[name], 'function', `${name} is exported`);
    const args = new Array(20).fill(0);
    assert.throws(() => Module[name](...args), (err) => {
      assert.doesNotMatch(String(err?.message ?? err), /unbound types/, name);
      assert.match(String(err?.message ?? err), /called with 20 arguments/, name);
      return true;
    });
  }
});
