// Just enough of Node's globals for the README examples, so the checks do
// not depend on @types/node (not installed).
declare var process: {
  env: Record<string, string | undefined>;
  pid: number;
  on(signal: 'SIGTERM' | 'SIGINT', listener: () => void): void;
  exit(code?: number): never;
};
