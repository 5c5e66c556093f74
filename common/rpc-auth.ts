/**
 * Bearer-token authentication with roles for every gRPC listener of
 * understudy (coordinator API and peer ports, the packagers' control port),
 * and the client side that sends a token read from a file.
 *
 * Contracts:
 * - Servers never hold plaintext tokens: each accepted token is configured as
 *   its SHA-256 hex digest with a name and roles. A presented token is hashed
 *   and compared with every configured digest in constant time (no early exit).
 * - Every method is decided explicitly by a policy (public, or the roles any
 *   of which may call it); a method the policy does not name needs `admin`.
 *   A token with role `admin` may call every method of its listener.
 * - Refusals are gRPC errors that say what to fix (UNAUTHENTICATED for a
 *   missing or unknown token, PERMISSION_DENIED naming the token, its roles
 *   and the role needed) and happen before the handler runs, so nothing is
 *   read or stored. They are logged, rate-limited, with the caller's address
 *   and the method, never with the token.
 * - Token files (what clients send) must not be readable by group or others,
 *   hold one token of 16–1024 visible ASCII characters, and may live in
 *   systemd's credentials directory (`$CREDENTIALS_DIRECTORY/name`).
 * - Token files and digest files are re-read when they change (checked at
 *   most every `recheckMs`), so rotation needs no restart; a change that does
 *   not parse is logged and the previous tokens stay in force.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type { DescService } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import * as healthPb from "../proto/gen/grpc/health/v1/health_pb.ts";
import * as reflectionV1 from "../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import * as reflectionV1alpha from "../proto/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { type Clock, systemClock } from "./clock.ts";
import { ConfigError, loadConfigFile, type Schema, s } from "./config.ts";
import { Code, ConnectError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { peerAddressKey } from "./rpc-server.ts";

/** The role that may call every method of a listener. */
export const ADMIN_ROLE = "admin";
/** A method anyone may call without a token. */
export const PUBLIC = "public";

export const tokenLengthMin = 16;
export const tokenLengthMax = 1024;
/** How often a changed token or digest file is noticed, at most. */
export const defaultRecheckMs = 2000;

// ------------------------------------------------------------ tokens and digests

/** A fresh random token: 32 bytes from the OS, base64url, with a recognizable prefix for secret scanners. */
export function generateToken(): string {
  return `ust_${randomBytes(32).toString("base64url")}`;
}

/** SHA-256 hex digest of a token exactly as sent (what configs hold). */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Why a token (from a file or a header) is not usable as sent; undefined when it is. */
export function tokenProblem(token: string): string | undefined {
  if (token.length < tokenLengthMin) return `a token needs at least ${tokenLengthMin} characters`;
  if (token.length > tokenLengthMax) return `a token has at most ${tokenLengthMax} characters`;
  if (!/^[\x21-\x7e]+$/.test(token))
    return "a token is visible ASCII without spaces (it travels in an HTTP header)";
  return undefined;
}

// ------------------------------------------------------------ token files (client side)

export class TokenFileError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`token file ${path}: ${problem}`);
    this.name = "TokenFileError";
  }
}

const credentialsPrefix = /^\$(\{CREDENTIALS_DIRECTORY\}|CREDENTIALS_DIRECTORY)\//;

/** Token file paths may start with `$CREDENTIALS_DIRECTORY/` (or `${CREDENTIALS_DIRECTORY}/`) (systemd LoadCredential=). */
export const tokenFilePathHint =
  "a token file path (absolute, or $CREDENTIALS_DIRECTORY/NAME with systemd LoadCredential=)";

/** Expands a leading `${CREDENTIALS_DIRECTORY}/`; throws TokenFileError when it is not set. */
export function resolveTokenFilePath(path: string, env = process.env): string {
  if (!credentialsPrefix.test(path)) return path;
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) {
    throw new TokenFileError(
      path,
      "names $CREDENTIALS_DIRECTORY, which is not set: run it under systemd with LoadCredential= (see deploy/systemd) or give a plain path",
    );
  }
  return path.replace(credentialsPrefix, `${dir.replace(/\/+$/, "")}/`);
}

/**
 * Reads one token from a file: it must be a regular file not readable by
 * others, nor by its group, except in systemd's credentials directory: there
 * systemd grants the service user read access with an ACL on a 0400 file, so
 * the mode's group bits show the ACL mask (0440), and the directory itself is
 * private to the service. Surrounding whitespace (a trailing newline) is ignored.
 */
export function readTokenFile(path: string, env = process.env): string {
  const file = resolveTokenFilePath(path, env);
  let st: ReturnType<typeof statSync>;
  let text: string;
  try {
    st = statSync(file);
    if (!st.isFile()) throw new TokenFileError(path, "is not a regular file");
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof TokenFileError) throw err;
    throw new TokenFileError(path, `cannot be read: ${(err as Error).message}`);
  }
  const credentialsDir = env.CREDENTIALS_DIRECTORY?.replace(/\/+$/, "");
  const fromSystemd = credentialsDir !== undefined && file.startsWith(`${credentialsDir}/`);
  const mode = Number(st.mode) & 0o777;
  const open = mode & (fromSystemd ? 0o004 : 0o044);
  if (open) {
    const who = [open & 0o040 ? "group" : "", open & 0o004 ? "others" : ""].filter((w) => w);
    throw new TokenFileError(
      path,
      `is readable by ${who.join(" and ")} (mode 0${mode.toString(8)}); a token is a secret: chmod 600 ${file} (owner = the service user), or hand it in with systemd LoadCredential=`,
    );
  }
  const token = text.trim();
  if (token === "")
    throw new TokenFileError(path, "is empty; put one token in it (`understudy token`)");
  const problem = tokenProblem(token);
  if (problem) throw new TokenFileError(path, `${problem} (one token per file)`);
  return token;
}

/** A token read from a file and re-read when the file changes. */
export interface TokenSource {
  readonly path: string;
  /** The current token; never throws after creation (a bad change keeps the previous token). */
  token(): string;
}

export interface TokenSourceOptions {
  log?: Logger;
  clock?: Clock;
  recheckMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Reads `path` now (throws TokenFileError) and follows later changes of the file. */
export function createTokenFileSource(path: string, opts: TokenSourceOptions = {}): TokenSource {
  const clock = opts.clock ?? systemClock;
  const recheckMs = opts.recheckMs ?? defaultRecheckMs;
  const env = opts.env ?? process.env;
  let current = readTokenFile(path, env);
  let stamp = fileStamp(resolveTokenFilePath(path, env));
  let checkedAt = clock.monotonicMs();
  return {
    path,
    token() {
      const now = clock.monotonicMs();
      if (now - checkedAt < recheckMs) return current;
      checkedAt = now;
      const next = fileStamp(resolveTokenFilePath(path, env));
      if (next === stamp) return current;
      try {
        current = readTokenFile(path, env);
        stamp = next;
        opts.log?.info("token file changed; sending the new token", { file: path });
      } catch (err) {
        stamp = next;
        opts.log?.error("token file changed but cannot be used; still sending the previous token", {
          file: path,
          err,
        });
      }
      return current;
    },
  };
}

/** The `authorization` header value for a token. */
export function bearer(token: string): string {
  return `Bearer ${token}`;
}

function fileStamp(file: string): string {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
  } catch {
    return "missing";
  }
}

// ------------------------------------------------------------ accepted tokens (server side)

export interface TokenEntry {
  /** Who holds it; appears in logs and PERMISSION_DENIED messages. */
  readonly name: string;
  /** SHA-256 hex digest of the token (lowercase). */
  readonly sha256: string;
  readonly roles: readonly string[];
}

const tokenNamePattern = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** Config schema of a list of accepted tokens for a listener whose roles are `roles`. */
export function tokenEntriesSchema(roles: readonly string[]): Schema<TokenEntry[]> {
  const entry = s.object({
    name: s.string({
      pattern: tokenNamePattern,
      hint: "a token name (1–64 chars of [A-Za-z0-9._@-])",
    }),
    sha256: s.string({
      pattern: /^[0-9a-fA-F]{64}$/,
      hint: "the token's SHA-256 hex digest (64 hex chars; `understudy token` prints it, never the token itself)",
    }),
    roles: s.array(s.literal(...roles), { minItems: 1, maxItems: roles.length }),
  });
  const list = s.array(entry, { maxItems: 1000 });
  return {
    expected: list.expected,
    parse(v, path) {
      const out = list.parse(v, path).map((e) => ({ ...e, sha256: e.sha256.toLowerCase() }));
      checkTokenEntries(out, path);
      return out;
    },
  };
}

/** No two entries share a name or a digest. */
export function checkTokenEntries(entries: readonly TokenEntry[], path: string): void {
  const names = new Set<string>();
  const digests = new Set<string>();
  entries.forEach((e, i) => {
    if (names.has(e.name))
      throw new ConfigError(`${path}[${i}].name`, `duplicate token name "${e.name}"`);
    if (digests.has(e.sha256))
      throw new ConfigError(`${path}[${i}].sha256`, "the same digest is listed twice");
    names.add(e.name);
    digests.add(e.sha256);
  });
}

/** Reads a tokens file: YAML `tokens: [{name, sha256, roles}]`; throws ConfigError naming file and field. */
export function loadTokensFile(file: string, roles: readonly string[]): TokenEntry[] {
  const schema = s.object({ tokens: tokenEntriesSchema(roles) });
  return loadConfigFile(schema, file).tokens;
}

/** The tokens a listener accepts. */
export interface TokenSet {
  /** The entry whose digest matches the token's, or undefined. Compares with every entry. */
  lookup(token: string): TokenEntry | undefined;
  /** Accepted tokens right now (0 = authentication is off for this listener). */
  size(): number;
}

export interface TokenSetOptions {
  /** Tokens given inline in the config. */
  entries?: readonly TokenEntry[];
  /** A tokens file (see loadTokensFile), read now and re-read when it changes. */
  file?: string;
  /** Roles a tokens file may use. */
  roles: readonly string[];
  /** Keeps only these entries (e.g. the peer port takes only tokens with role peer). */
  filter?: (e: TokenEntry) => boolean;
  log?: Logger;
  clock?: Clock;
  recheckMs?: number;
}

interface Accepted {
  readonly entry: TokenEntry;
  readonly digest: Buffer;
}

/** Builds the accepted set; a bad tokens file throws ConfigError at once. */
export function createTokenSet(opts: TokenSetOptions): TokenSet {
  const clock = opts.clock ?? systemClock;
  const recheckMs = opts.recheckMs ?? defaultRecheckMs;
  const keep = opts.filter ?? (() => true);
  const build = (fromFile: readonly TokenEntry[]): Accepted[] => {
    const all = [...(opts.entries ?? []), ...fromFile].filter(keep);
    return all.map((entry) => ({ entry, digest: Buffer.from(entry.sha256, "hex") }));
  };
  let accepted = build(opts.file ? loadTokensFile(opts.file, opts.roles) : []);
  let stamp = opts.file ? fileStamp(opts.file) : "";
  let checkedAt = clock.monotonicMs();
  const refresh = () => {
    if (!opts.file) return;
    const now = clock.monotonicMs();
    if (now - checkedAt < recheckMs) return;
    checkedAt = now;
    const next = fileStamp(opts.file);
    if (next === stamp) return;
    stamp = next;
    try {
      accepted = build(loadTokensFile(opts.file, opts.roles));
      opts.log?.info("tokens file changed; accepted tokens reloaded", {
        file: opts.file,
        tokens: accepted.map((a) => a.entry.name),
      });
    } catch (err) {
      opts.log?.error("tokens file changed but does not parse; the previous tokens stay in force", {
        file: opts.file,
        err,
      });
    }
  };
  return {
    lookup(token) {
      refresh();
      const digest = createHash("sha256").update(token, "utf8").digest();
      let found: TokenEntry | undefined;
      // Every entry is compared (no early exit), each in constant time.
      for (const a of accepted) {
        if (timingSafeEqual(a.digest, digest) && !found) found = a.entry;
      }
      return found;
    },
    size() {
      refresh();
      return accepted.length;
    },
  };
}

/** Accepts the token a TokenSource holds now (e.g. a cluster's shared peer token), as `name` with `roles`. */
export function tokenSetOfSource(
  source: TokenSource,
  name: string,
  roles: readonly string[],
): TokenSet {
  let token: string | undefined;
  let entry: TokenEntry = { name, sha256: "", roles };
  let digest = Buffer.alloc(32);
  return {
    lookup(presented) {
      const now = source.token();
      if (now !== token) {
        token = now;
        digest = createHash("sha256").update(now, "utf8").digest();
        entry = { name, sha256: digest.toString("hex"), roles };
      }
      const got = createHash("sha256").update(presented, "utf8").digest();
      return timingSafeEqual(digest, got) ? entry : undefined;
    },
    size: () => 1,
  };
}

/** Accepts what any of `sets` accepts (every set is asked; the first match wins). */
export function unionTokenSets(...sets: readonly TokenSet[]): TokenSet {
  return {
    lookup(token) {
      const found = sets.map((s) => s.lookup(token));
      return found.find((e) => e !== undefined);
    },
    size: () => sets.reduce((n, s) => n + s.size(), 0),
  };
}

// ------------------------------------------------------------ policy

/** Who may call a method: anyone, or a token with any of these roles (or admin). */
export type MethodRule = typeof PUBLIC | readonly [string, ...string[]];

export interface ServiceRules {
  readonly typeName: string;
  /** By proto method name (e.g. "CreateStream"). */
  readonly methods: ReadonlyMap<string, MethodRule>;
}

/**
 * Rules for every method of `service`, keyed by the generated local name; the
 * type requires an entry for each method, so a new RPC cannot be added
 * without deciding who may call it.
 */
export function serviceRules<S extends DescService>(
  service: S,
  rules: { readonly [K in keyof S["method"]]: MethodRule },
): ServiceRules {
  const byLocal = rules as Record<string, MethodRule>;
  const methods = new Map<string, MethodRule>();
  for (const m of service.methods) {
    const rule = byLocal[m.localName];
    if (rule === undefined) throw new Error(`no auth rule for ${service.typeName}/${m.name}`);
    methods.set(m.name, rule);
  }
  return { typeName: service.typeName, methods };
}

/** Health is public on every listener (load balancers, probes); reflection needs `reflection`. */
export function standardServiceRules(reflection: MethodRule): ServiceRules[] {
  return [
    serviceRules(healthPb.Health, { check: PUBLIC, list: PUBLIC, watch: PUBLIC }),
    serviceRules(reflectionV1.ServerReflection, { serverReflectionInfo: reflection }),
    serviceRules(reflectionV1alpha.ServerReflection, { serverReflectionInfo: reflection }),
  ];
}

export interface AuthPolicy {
  /** The rule of `typeName/method`; a method no rule names needs admin. */
  rule(typeName: string, method: string): MethodRule;
  /** Every decided method as "pkg.Service/Method" → rule (documentation, tests). */
  table(): ReadonlyMap<string, MethodRule>;
}

export function createAuthPolicy(services: readonly ServiceRules[]): AuthPolicy {
  const table = new Map<string, MethodRule>();
  for (const s of services) {
    for (const [m, rule] of s.methods) table.set(`${s.typeName}/${m}`, rule);
  }
  return {
    rule: (typeName, method) => table.get(`${typeName}/${method}`) ?? [ADMIN_ROLE],
    table: () => table,
  };
}

// ------------------------------------------------------------ the check

export type AuthOutcome =
  | { readonly ok: true; readonly entry: TokenEntry | undefined }
  | { readonly ok: false; readonly error: ConnectError; readonly reason: string };

/** The UNAUTHENTICATED message for a call without a token; `configHint` names the server's setting. */
export function missingTokenMessage(configHint = "auth.tokens"): string {
  return `missing bearer token: send 'authorization: Bearer <token>' (this node requires auth; see ${configHint})`;
}
export const unknownTokenMessage = "token not recognized";

/**
 * Decides one call. `authorization` is the header as received (null when
 * absent); `method` is "pkg.Service/Method" for messages.
 */
export function checkAccess(
  tokens: TokenSet,
  rule: MethodRule,
  authorization: string | null,
  method: string,
  configHint?: string,
): AuthOutcome {
  if (rule === PUBLIC) return { ok: true, entry: undefined };
  if (authorization === null || authorization.trim() === "") {
    return {
      ok: false,
      reason: "missing token",
      error: new ConnectError(missingTokenMessage(configHint), Code.Unauthenticated),
    };
  }
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  if (!m) {
    return {
      ok: false,
      reason: "malformed authorization header",
      error: new ConnectError(
        "malformed authorization header: send 'authorization: Bearer <token>'",
        Code.Unauthenticated,
      ),
    };
  }
  const entry = tokens.lookup(m[1] as string);
  if (!entry) {
    return {
      ok: false,
      reason: "unknown token",
      error: new ConnectError(unknownTokenMessage, Code.Unauthenticated),
    };
  }
  if (entry.roles.includes(ADMIN_ROLE) || rule.some((r) => entry.roles.includes(r))) {
    return { ok: true, entry };
  }
  return {
    ok: false,
    reason: "missing role",
    error: new ConnectError(
      `token "${entry.name}" (roles: ${entry.roles.join(", ")}) may not call ${method}: it needs role ${rule.join(" or ")}`,
      Code.PermissionDenied,
    ),
  };
}

// ------------------------------------------------------------ refusal log

export interface RefusalLog {
  refused(fields: { peer: string; method: string; reason: string; token?: string }): void;
}

/**
 * At most `perWindowMax` refusals logged per `windowMs`; the count of the
 * ones left out is logged with the next one after the window.
 */
export function createRefusalLog(
  log: Logger,
  opts: { clock?: Clock; windowMs?: number; perWindowMax?: number; listener?: string } = {},
): RefusalLog {
  const clock = opts.clock ?? systemClock;
  const windowMs = opts.windowMs ?? 10_000;
  const perWindowMax = opts.perWindowMax ?? 10;
  let windowStart = Number.NEGATIVE_INFINITY;
  let logged = 0;
  let suppressed = 0;
  return {
    refused(fields) {
      const now = clock.monotonicMs();
      if (now - windowStart >= windowMs) {
        windowStart = now;
        logged = 0;
      }
      if (logged >= perWindowMax) {
        suppressed++;
        return;
      }
      logged++;
      log.warn("call refused by auth", {
        listener: opts.listener,
        ...fields,
        ...(suppressed > 0 ? { notLoggedBefore: suppressed } : {}),
      });
      suppressed = 0;
    },
  };
}

// ------------------------------------------------------------ the interceptor

export interface AuthInterceptorOptions {
  readonly tokens: TokenSet;
  readonly policy: AuthPolicy;
  readonly log: Logger;
  readonly clock?: Clock;
  /** Names the listener in refusal logs ("api", "peer", "control"). */
  readonly listener: string;
  /** The setting that configures this listener's tokens, named in the missing-token message. */
  readonly configHint?: string;
}

/** A connect-node interceptor enforcing `policy` with `tokens` (see common/rpc-server.ts). */
export function createAuthInterceptor(opts: AuthInterceptorOptions): Interceptor {
  const refusals = createRefusalLog(opts.log, {
    listener: opts.listener,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const outcome = checkAccess(
      opts.tokens,
      opts.policy.rule(req.service.typeName, req.method.name),
      req.header.get("authorization"),
      method,
      opts.configHint,
    );
    if (!outcome.ok) {
      refusals.refused({
        peer: req.contextValues.get(peerAddressKey),
        method,
        reason: outcome.reason,
      });
      throw outcome.error;
    }
    return next(req);
  };
}

/**
 * The same check for a plain HTTP route (e.g. /metrics): writes 401/403 with
 * the message and returns false when refused.
 */
export function authorizeHttp(
  tokens: TokenSet,
  rule: MethodRule,
  req: {
    headers: { authorization?: string | undefined };
    url?: string | undefined;
    socket: { remoteAddress?: string | undefined; remotePort?: number | undefined };
  },
  res: {
    writeHead(status: number, headers: Record<string, string>): unknown;
    end(body: string): unknown;
  },
  refusals?: RefusalLog,
): boolean {
  const path = (req.url ?? "/").split("?")[0] as string;
  const outcome = checkAccess(tokens, rule, req.headers.authorization ?? null, `GET ${path}`);
  if (outcome.ok) return true;
  refusals?.refused({
    peer: `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? 0}`,
    method: `HTTP ${path}`,
    reason: outcome.reason,
  });
  const status = outcome.error.code === Code.PermissionDenied ? 403 : 401;
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    ...(status === 401 ? { "www-authenticate": 'Bearer realm="understudy"' } : {}),
  });
  res.end(`${outcome.error.rawMessage}\n`);
  return false;
}
