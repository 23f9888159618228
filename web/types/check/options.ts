// NeuronOptions: the with-http and with-transport shapes do not mix.

import { HttpTransport, Neuron } from '@holokai/neuron-sdk';
import type { NeuronOptions, NeuronOptionsWithHttp, NeuronOptionsWithTransport } from '@holokai/neuron-sdk';

declare const transport: HttpTransport;

const http: NeuronOptionsWithHttp = { neuronId: 'w', gatewayUrl: 'https://api.example.com', auth: () => 't' };
const viaTransport: NeuronOptionsWithTransport = { neuronId: 'w', transport, heartbeatIntervalMs: 5_000, reconnectJitter: 0 };
const either: NeuronOptions[] = [http, viaTransport];
void either;

// @ts-expect-error transport and gatewayUrl together: pick one shape
void new Neuron({ neuronId: 'w', transport, gatewayUrl: 'https://api.example.com' });
// @ts-expect-error transport and auth together: the transport carries its own
void new Neuron({ neuronId: 'w', transport, auth: () => 't' });
// @ts-expect-error reconnect delays belong to the with-http shape
void new Neuron({ neuronId: 'w', transport, maxReconnectDelayMs: 1_000 });
// @ts-expect-error gatewayUrl needs auth
void new Neuron({ neuronId: 'w', gatewayUrl: 'https://api.example.com' });
// @ts-expect-error neither a transport nor gatewayUrl + auth
void new Neuron({ neuronId: 'w' });
// @ts-expect-error neuronId is required
void new Neuron({ gatewayUrl: 'https://api.example.com', auth: () => 't' });
// @ts-expect-error auth returns the token string
void new Neuron({ neuronId: 'w', gatewayUrl: 'https://api.example.com', auth: () => 42 });
// @ts-expect-error idleTimeoutMs is a number of milliseconds
void new Neuron({ neuronId: 'w', gatewayUrl: 'https://api.example.com', auth: () => 't', idleTimeoutMs: '45s' });
