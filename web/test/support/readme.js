// The README's code blocks, extracted (not retyped) and transpiled from
// TypeScript to JavaScript, so tests run exactly what users paste.
//
// They are read from the package's own README (web/README.md), which carries
// the seed README (shared/seed/neuron-sdk-README.md, outside this repository)
// word for word; readme-examples.test.js checks that whenever the seed is
// there to compare with.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const README_PATH = fileURLToPath(new URL('../../README.md', import.meta.url));
export const SEED_README_PATH = fileURLToPath(new URL('../../../../shared/seed/neuron-sdk-README.md', import.meta.url));
export const seedAvailable = () => existsSync(SEED_README_PATH);

/**
 * Every fenced block of a README with its language and the nearest heading above it.
 * @param {string} [path]
 * @returns {{ heading: string, lang: string, code: string }[]}
 */
export function readmeBlocks(path = README_PATH) {
  const text = readFileSync(path, 'utf8');
  const blocks = [];
  let heading = '';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const h = /^#{1,6}\s+(.*)$/.exec(lines[i]);
    if (h) heading = h[1].trim();
    const fence = /^```(\w*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const body = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    blocks.push({ heading, lang: fence[1], code: body.join('\n') });
  }
  return blocks;
}

/** The blocks under a heading (exact match). @param {string} heading */
export function blocksUnder(heading) {
  const found = readmeBlocks().filter((b) => b.heading === heading);
  if (!found.length) throw new Error(`no code block under heading "${heading}" in ${README_PATH}`);
  return found;
}

/** TypeScript → JavaScript (ES2022 module), types erased, nothing else changed. @param {string} code */
export function toJs(code) {
  return ts.transpileModule(code, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: false },
  }).outputText;
}
