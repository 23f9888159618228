// Type-level assertions and stand-ins for the app code the README examples call.

/** True only when X and Y are the same type (not merely mutually assignable). */
export type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
/** Fails to compile unless T is `true`. */
export type Expect<T extends true> = T;

export declare function runPython(input: { code: string }, signal: AbortSignal): Promise<string>;
export declare function processRow(row: unknown): Promise<unknown>;
export declare function readOrCreateStoredId(path: string): Promise<string>;
export declare function fetchInitialToken(): Promise<{ accessToken: string; expiresAt: number }>;
export declare function refreshToken(): Promise<{ accessToken: string; expiresAt: number }>;
export declare function isExpired(token: { expiresAt: number }): boolean;
export declare const llmClient: {
  complete(req: { prompt: string; model: string; signal: AbortSignal }): Promise<{ text: string; usage: { total: number } }>;
};
