/**
 * Structured JSON logging: one JSON object per line on stderr (stdout stays
 * free for command output). Fields are flat; errors are serialised with their
 * message and code so log pipelines can filter on them.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; defaults to process.stderr. */
  write?: (line: string) => void;
  /** Wall clock for the `ts` field; defaults to Date.now. */
  nowMs?: () => number;
}

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === "string" && v in order;
}

export function createLogger(base: Record<string, unknown>, opts: LoggerOptions = {}): Logger {
  const envLevel = process.env.UNDERSTUDY_LOG_LEVEL;
  const level: LogLevel = opts.level ?? (isLogLevel(envLevel) ? envLevel : "info");
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const nowMs = opts.nowMs ?? Date.now;
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < order[level]) return;
    const rec: Record<string, unknown> = { ts: new Date(nowMs()).toISOString(), level: lvl, msg };
    for (const [k, v] of Object.entries(base)) rec[k] = v;
    if (fields) for (const [k, v] of Object.entries(fields)) rec[k] = serialise(v);
    write(`${JSON.stringify(rec)}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...base, ...fields }, { level, write, nowMs }),
  };
}

function serialise(v: unknown): unknown {
  if (v instanceof Error) {
    const code = (v as { code?: unknown }).code;
    return { message: v.message, name: v.name, ...(code === undefined ? {} : { code }) };
  }
  if (typeof v === "bigint") return v.toString();
  return v;
}

/** A logger that drops everything (tests that do not assert on logs). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
