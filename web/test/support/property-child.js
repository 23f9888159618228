// A child process for the "exits on its own" property: runs one script (JSON
// in argv[2], carrier in argv[3]) with the property harness, prints the
// result as one JSON line, and then has nothing left to do. The parent
// requires the process to exit by itself soon after that line: after
// `await neuron.stop()` the SDK holds no timer, stream or pending request
// (PROTOCOL.md rule 12).

import { runScript } from './property-harness.js';

const script = JSON.parse(process.argv[2]);
const carrier = /** @type {'transport' | 'ipc' | 'bytes'} */ (process.argv[3]);
const r = await runScript(script, { carrier });
process.stdout.write(`${JSON.stringify({ violations: r.violations, stopMs: r.stopMs })}\n`);
