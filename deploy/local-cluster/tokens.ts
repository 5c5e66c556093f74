/**
 * Random bearer tokens for one run of a local cluster (the demo, the e2e and
 * integration clusters), so every process runs with authentication on as in
 * production: each token in its own 0600 file in the run directory, the
 * configs holding only SHA-256 digests. The plaintext stays in this process
 * for its own clients (the demo's and the tests' admin calls).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateToken, type TokenEntry, tokenDigest } from "../../common/rpc-auth.ts";

/** One token per caller kind; `packagerControl` is what coordinators send to packagers. */
export const runTokenNames = [
  "admin",
  "reader",
  "agent",
  "encoder",
  "peer",
  "packagerControl",
] as const;
export type RunTokenName = (typeof runTokenNames)[number];

export interface RunTokens {
  /** Plaintext, for this process's own clients. */
  readonly tokens: Readonly<Record<RunTokenName, string>>;
  /** The 0600 files the processes read. */
  readonly files: Readonly<Record<RunTokenName, string>>;
  /** A coordinator's `auth.tokens`: admin, reader, agent, encoder. */
  readonly coordinatorTokens: readonly TokenEntry[];
  /** A packager's `controlAuth.tokens`: the coordinators' token (role coordinator). */
  readonly controlTokens: readonly TokenEntry[];
  /** Config sections that turn auth on for a coordinator (merge `raft` into its raft section). */
  coordinatorConfig(): {
    auth: { tokens: TokenEntry[] };
    packagerControl: { tokenFile: string };
    raft: { peerTokenFile: string };
  };
}

/** Makes fresh tokens in `<dir>` (created 0700); call once per run. */
export function writeRunTokens(dir: string): RunTokens {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tokens = {} as Record<RunTokenName, string>;
  const files = {} as Record<RunTokenName, string>;
  for (const name of runTokenNames) {
    tokens[name] = generateToken();
    files[name] = join(dir, `${name}.token`);
    writeFileSync(files[name], `${tokens[name]}\n`, { mode: 0o600 });
  }
  const entry = (name: RunTokenName, roles: string[]): TokenEntry => ({
    name,
    sha256: tokenDigest(tokens[name]),
    roles,
  });
  const coordinatorTokens = [
    entry("admin", ["admin"]),
    entry("reader", ["reader"]),
    entry("agent", ["agent"]),
    entry("encoder", ["encoder"]),
  ];
  const controlTokens = [entry("packagerControl", ["coordinator"])];
  return {
    tokens,
    files,
    coordinatorTokens,
    controlTokens,
    coordinatorConfig: () => ({
      auth: { tokens: [...coordinatorTokens] },
      packagerControl: { tokenFile: files.packagerControl },
      raft: { peerTokenFile: files.peer },
    }),
  };
}
