/**
 * Config: YAML files validated against a small typed schema. Every error names
 * the file and the dotted path of the bad field, and says what was expected, so
 * an operator can fix it without reading code. Unknown fields are errors too
 * (a typo must not silently fall back to a default).
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
    readonly file?: string,
  ) {
    super(`${file ? `${file}: ` : ""}${field || "(top level)"}: ${problem}`);
    this.name = "ConfigError";
  }
}

export interface Schema<T> {
  parse(value: unknown, path: string): T;
  /** Human description used in messages ("a string", "an integer 1..65535"). */
  readonly expected: string;
  /** True when a missing value is allowed (optional or defaulted). */
  readonly optional?: boolean;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

/** A schema whose field may be absent: the parsed object omits the key. */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

type OptionalKeys<P> = {
  [K in keyof P]: P[K] extends OptionalSchema<unknown> ? K : never;
}[keyof P];
type RequiredKeys<P> = Exclude<keyof P, OptionalKeys<P>>;
type Simplify<T> = { [K in keyof T]: T[K] };
/** Parsed shape of an object schema: optional fields become optional properties. */
export type InferObject<P> = Simplify<
  { [K in RequiredKeys<P>]: Infer<P[K]> } & {
    [K in OptionalKeys<P>]?: Exclude<Infer<P[K]>, undefined>;
  }
>;

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${String(v)}`;
}

function bad(path: string, expected: string, got: unknown): never {
  throw new ConfigError(path, `expected ${expected}, got ${describe(got)}`);
}

export const s = {
  string(opts: { minLength?: number; pattern?: RegExp; hint?: string } = {}): Schema<string> {
    const expected = opts.hint ?? "a string";
    return {
      expected,
      parse(v, path) {
        if (typeof v !== "string") bad(path, expected, v);
        if (opts.minLength !== undefined && v.length < opts.minLength) bad(path, expected, v);
        if (opts.pattern && !opts.pattern.test(v)) bad(path, expected, v);
        return v;
      },
    };
  },
  number(opts: { min?: number; max?: number; integer?: boolean } = {}): Schema<number> {
    const kind = opts.integer ? "an integer" : "a number";
    const range =
      opts.min !== undefined || opts.max !== undefined
        ? ` in ${opts.min ?? "-∞"}..${opts.max ?? "∞"}`
        : "";
    const expected = kind + range;
    return {
      expected,
      parse(v, path) {
        if (typeof v !== "number" || !Number.isFinite(v)) bad(path, expected, v);
        if (opts.integer && !Number.isInteger(v)) bad(path, expected, v);
        if (opts.min !== undefined && v < opts.min) bad(path, expected, v);
        if (opts.max !== undefined && v > opts.max) bad(path, expected, v);
        return v;
      },
    };
  },
  boolean(): Schema<boolean> {
    return {
      expected: "true or false",
      parse(v, path) {
        if (typeof v !== "boolean") bad(path, "true or false", v);
        return v;
      },
    };
  },
  literal<const T extends string>(...values: T[]): Schema<T> {
    const expected = `one of ${values.map((x) => `"${x}"`).join(", ")}`;
    return {
      expected,
      parse(v, path) {
        if (typeof v !== "string" || !(values as string[]).includes(v)) bad(path, expected, v);
        return v as T;
      },
    };
  },
  /** "host:port" with a port in 1..65535 (port 0 allowed when `allowZeroPort`). */
  hostPort(opts: { allowZeroPort?: boolean } = {}): Schema<string> {
    const expected = 'an address "host:port"';
    return {
      expected,
      parse(v, path) {
        if (typeof v !== "string") bad(path, expected, v);
        const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
        const port = m ? Number(m[2]) : -1;
        if (!m || port > 65535 || (port === 0 && !opts.allowZeroPort)) bad(path, expected, v);
        return v;
      },
    };
  },
  array<T>(item: Schema<T>, opts: { minItems?: number; maxItems?: number } = {}): Schema<T[]> {
    const expected = `a list of ${item.expected}`;
    return {
      expected,
      parse(v, path) {
        if (!Array.isArray(v)) bad(path, expected, v);
        if (opts.minItems !== undefined && v.length < opts.minItems) {
          throw new ConfigError(path, `needs at least ${opts.minItems} item(s), got ${v.length}`);
        }
        if (opts.maxItems !== undefined && v.length > opts.maxItems) {
          throw new ConfigError(path, `allows at most ${opts.maxItems} item(s), got ${v.length}`);
        }
        return v.map((x, i) => item.parse(x, `${path}[${i}]`));
      },
    };
  },
  record<T>(value: Schema<T>): Schema<Record<string, T>> {
    const expected = `a mapping of names to ${value.expected}`;
    return {
      expected,
      parse(v, path) {
        if (typeof v !== "object" || v === null || Array.isArray(v)) bad(path, expected, v);
        const out: Record<string, T> = {};
        for (const [k, x] of Object.entries(v)) out[k] = value.parse(x, join(path, k));
        return out;
      },
    };
  },
  object<P extends Record<string, Schema<unknown>>>(props: P): Schema<InferObject<P>> {
    const expected = "a mapping";
    return {
      expected,
      parse(v, path) {
        if (v === undefined || v === null) v = {};
        if (typeof v !== "object" || Array.isArray(v)) bad(path, expected, v);
        const obj = v as Record<string, unknown>;
        for (const k of Object.keys(obj)) {
          if (!(k in props)) {
            throw new ConfigError(
              join(path, k),
              `unknown field (allowed: ${Object.keys(props).join(", ")})`,
            );
          }
        }
        const out: Record<string, unknown> = {};
        for (const [k, schema] of Object.entries(props)) {
          const raw = obj[k];
          if (raw === undefined && !schema.optional) {
            throw new ConfigError(join(path, k), `is required (${schema.expected})`);
          }
          const parsed = schema.parse(raw, join(path, k));
          if (parsed !== undefined) out[k] = parsed;
        }
        return out as InferObject<P>;
      },
    };
  },
  optional<T>(inner: Schema<T>): OptionalSchema<T> {
    return {
      expected: inner.expected,
      optional: true,
      parse: (v, path) => (v === undefined || v === null ? undefined : inner.parse(v, path)),
    };
  },
  default<T>(inner: Schema<T>, fallback: T): Schema<T> {
    return {
      expected: inner.expected,
      optional: true,
      parse: (v, path) => (v === undefined || v === null ? fallback : inner.parse(v, path)),
    };
  },
};

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Validates an already-parsed value; throws ConfigError naming the field. */
export function parseConfig<T>(schema: Schema<T>, value: unknown, file?: string): T {
  try {
    return schema.parse(value, "");
  } catch (err) {
    if (err instanceof ConfigError && file && !err.file) {
      throw new ConfigError(err.field, err.problem, file);
    }
    throw err;
  }
}

/** Reads and validates a YAML config file. */
export function loadConfigFile<T>(schema: Schema<T>, file: string): T {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError("", `cannot read config file: ${(err as Error).message}`, file);
  }
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError("", `not valid YAML: ${(err as Error).message.split("\n")[0]}`, file);
  }
  return parseConfig(schema, value, file);
}
