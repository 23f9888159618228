// Must fail to compile: a defineCapability handler returning the wrong
// output shape. test/types.test.js checks that tsc reports exactly the
// errors marked below (code and line), and nothing else.

import { defineCapability, Neuron } from '@holokai/neuron-sdk';
import type { CapabilityHandler } from '@holokai/neuron-sdk';
import { z } from 'zod';

const pythonCap = defineCapability({
  type: 'core/script.python',
  input: z.object({ code: z.string() }),
  output: z.object({ stdout: z.string(), exitCode: z.number() }),
});

const neuron = new Neuron({ neuronId: 'w', gatewayUrl: 'https://api.example.com', auth: () => 't' });

// exitCode must be a number: no handle() overload accepts this handler.
neuron.handle(pythonCap, async (input) => { // expect-error TS2769
  return { stdout: input.code, exitCode: '0' };
});

// The same mistake in a handler written apart from handle().
const handler: CapabilityHandler<typeof pythonCap> = async (input) => ({ stdout: input.code }); // expect-error TS2322
neuron.handle(pythonCap, handler);
