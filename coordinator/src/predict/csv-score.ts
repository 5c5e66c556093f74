/**
 * Line-level logic of `predict score`, pure: header check, timestamp and
 * value parsing, ordering, and scoring. The file streaming lives in main.ts.
 *
 * Input: a header line `timestamp,value` (case-insensitive, spaces around
 * names allowed, a UTF-8 BOM ignored), then one sample per line. Blank lines
 * are skipped. Fields may be wrapped in double quotes.
 *
 * Timestamps, detected from the first data row and then required of every row:
 * - ISO-8601: `YYYY-MM-DD`, optionally `THH:MM[:SS[.fraction]]` (or a space
 *   instead of `T`), optionally `Z` or `±HH:MM` / `±HHMM`; no zone means UTC.
 * - a plain number: unix milliseconds if |n| >= 1e11, else unix seconds
 *   (fractions allowed). 1e11 ms is 1973 and 1e11 s is the year 5138, so the
 *   two never meet in real data. A file must not switch between the two.
 * Timestamps must not decrease (equal ones are allowed).
 *
 * Output: `timestamp,value,anomaly_score`, the input fields as written, the
 * score with 6 decimals.
 */
import {
  createStreamingScorer,
  type StreamingScorer,
  type StreamingScorerOptions,
} from "./anomaly-score.ts";

export class CsvInputError extends Error {
  override readonly name = "CsvInputError";
  constructor(
    readonly line: number,
    problem: string,
  ) {
    super(`line ${line}: ${problem}`);
  }
}

export type TimestampFormat = "unix-ms" | "unix-s" | "iso8601";

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/** Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/** Parses an ISO-8601 timestamp to unix ms; undefined when it is not one (or not a real date). */
export function parseIso8601(text: string): number | undefined {
  const m = ISO.exec(text);
  if (m === null) return undefined;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const h = m[4] === undefined ? 0 : Number(m[4]);
  const mi = m[5] === undefined ? 0 : Number(m[5]);
  const s = m[6] === undefined ? 0 : Number(m[6]);
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 60) {
    return undefined;
  }
  const frac = m[7] === undefined ? 0 : Number(`0.${m[7]}`) * 1000;
  let offsetMin = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return undefined;
    offsetMin = sign * (oh * 60 + om);
  }
  return (
    ((daysFromCivil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + s * 1000 + frac - offsetMin * 60_000
  );
}

/** Parses one timestamp field given the file's format (or detects it when `format` is undefined). */
export function parseTimestamp(
  text: string,
  format: TimestampFormat | undefined,
): { ms: number; format: TimestampFormat } | { error: string } {
  if (NUMERIC.test(text)) {
    const n = Number(text);
    if (!Number.isFinite(n)) return { error: `timestamp "${text}" is not a finite number` };
    const f: TimestampFormat = Math.abs(n) >= 1e11 ? "unix-ms" : "unix-s";
    if (format !== undefined && format !== f) {
      return { error: `timestamp "${text}" looks like ${f} but the file started with ${format}` };
    }
    return { ms: f === "unix-ms" ? n : n * 1000, format: f };
  }
  const ms = parseIso8601(text);
  if (ms === undefined) {
    return {
      error: `timestamp "${text}" is neither a unix time nor ISO-8601 (e.g. 2024-05-01T12:00:00Z)`,
    };
  }
  if (format !== undefined && format !== "iso8601") {
    return { error: `timestamp "${text}" is ISO-8601 but the file started with ${format}` };
  }
  return { ms, format: "iso8601" };
}

function unquote(field: string): string {
  const f = field.trim();
  return f.length >= 2 && f.startsWith('"') && f.endsWith('"') ? f.slice(1, -1).trim() : f;
}

export const OUTPUT_HEADER = "timestamp,value,anomaly_score";

export interface CsvScorer {
  /**
   * Feeds one input line (without its newline). Returns the output line, or
   * undefined for the header and blank lines. Throws CsvInputError naming
   * the line on bad input.
   */
  line(text: string, lineNo: number): string | undefined;
  readonly format: TimestampFormat | undefined;
  /** Data rows scored so far. */
  readonly rows: number;
  /** Call at end of input; throws if the header never came. */
  finish(lastLineNo: number): void;
}

export function createCsvScorer(opts: StreamingScorerOptions = {}): CsvScorer {
  const scorer: StreamingScorer = createStreamingScorer(opts);
  let sawHeader = false;
  let format: TimestampFormat | undefined;
  let lastMs = Number.NEGATIVE_INFINITY;
  let rows = 0;
  return {
    get format() {
      return format;
    },
    get rows() {
      return rows;
    },
    line(raw, lineNo) {
      let text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (lineNo === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.trim() === "") return undefined;
      const fields = text.split(",");
      if (!sawHeader) {
        const names = fields.map((f) => unquote(f).toLowerCase());
        if (names.length !== 2 || names[0] !== "timestamp" || names[1] !== "value") {
          throw new CsvInputError(
            lineNo,
            `missing header: expected "timestamp,value", got "${text.slice(0, 80)}"`,
          );
        }
        sawHeader = true;
        return undefined;
      }
      if (fields.length !== 2) {
        throw new CsvInputError(
          lineNo,
          `expected 2 fields (timestamp,value), got ${fields.length}`,
        );
      }
      const tsText = unquote(fields[0]!);
      const valueText = unquote(fields[1]!);
      const ts = parseTimestamp(tsText, format);
      if ("error" in ts) throw new CsvInputError(lineNo, ts.error);
      format = ts.format;
      if (!NUMERIC.test(valueText) || !Number.isFinite(Number(valueText))) {
        throw new CsvInputError(lineNo, `value "${valueText.slice(0, 40)}" is not a number`);
      }
      if (ts.ms < lastMs) {
        throw new CsvInputError(
          lineNo,
          `timestamp "${tsText}" goes backwards (earlier than the previous row)`,
        );
      }
      lastMs = ts.ms;
      const score = scorer.score(ts.ms, Number(valueText));
      rows++;
      return `${tsText},${valueText},${score.toFixed(6)}`;
    },
    finish(lastLineNo) {
      if (!sawHeader) {
        throw new CsvInputError(
          Math.max(1, lastLineNo),
          'missing header: expected "timestamp,value"',
        );
      }
    },
  };
}
