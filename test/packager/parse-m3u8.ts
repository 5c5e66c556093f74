/** Parses a playlist with m3u8-parser (an independent parser) and fails on any warning. */
import assert from "node:assert/strict";
import { Parser } from "m3u8-parser";

export function parseStrict(text: string): Parser["manifest"] {
  const parser = new Parser();
  const warnings: string[] = [];
  parser.on("warn", (w) => warnings.push(w.message));
  parser.push(text);
  parser.end();
  assert.deepEqual(warnings, [], `m3u8-parser warned on:\n${text}`);
  return parser.manifest;
}
