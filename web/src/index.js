// @holokai/neuron-sdk: the package root. Importing it loads the WebAssembly
// core (top-level await; see core.js for where the bytes come from), so the
// classes below are ready to use synchronously.

import { loadCoreOnImport } from './core.js';

await loadCoreOnImport();

export { Neuron, SDK_VERSION } from './neuron.js';
export { HttpTransport } from './http-transport.js';
export { defineCapability } from './capability.js';
export { RegistrationError, NeuronError } from './errors.js';
export { frameSchemas, serverToNeuronFrameSchema, clientFrameSchema, POST_PATHS } from './frames.js';
export { initNeuronSdk } from './core.js';
