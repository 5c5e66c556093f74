import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { createStreamingScorer } from "../../../coordinator/src/predict/anomaly-score.ts";
import {
  CsvInputError,
  createCsvScorer,
  daysFromCivil,
  parseIso8601,
  parseTimestamp,
} from "../../../coordinator/src/predict/csv-score.ts";
import { main } from "../../../coordinator/src/predict/main.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) },
    out,
    err,
  };
}

function series(n: number, seed = 1): string[] {
  let x = seed;
  const lines = ["timestamp,value"];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const noise = (x / 2147483648 - 0.5) * 2;
    const spike = i === Math.floor(n * 0.7) ? 50 : 0;
    lines.push(`${1_700_000_000 + i},${(10 + noise + spike).toFixed(3)}`);
  }
  return lines;
}

function scoreLines(lines: readonly string[]): string[] {
  const s = createCsvScorer();
  const out: string[] = [];
  lines.forEach((l, i) => {
    const r = s.line(l, i + 1);
    if (r !== undefined) out.push(r);
  });
  s.finish(lines.length);
  return out;
}

describe("predict/score: timestamps", () => {
  it("parses ISO-8601 with zones, fractions and a space separator", () => {
    assert.equal(parseIso8601("2024-05-01T12:00:00Z"), Date.UTC(2024, 4, 1, 12));
    assert.equal(parseIso8601("2024-05-01T14:00:00+02:00"), Date.UTC(2024, 4, 1, 12));
    assert.equal(parseIso8601("2024-05-01T09:30:00-0230"), Date.UTC(2024, 4, 1, 12));
    assert.equal(parseIso8601("2024-05-01 12:00:00.250"), Date.UTC(2024, 4, 1, 12, 0, 0, 250));
    assert.equal(parseIso8601("2024-05-01T12:00"), Date.UTC(2024, 4, 1, 12));
    assert.equal(parseIso8601("2024-02-29"), Date.UTC(2024, 1, 29));
    assert.equal(parseIso8601("1969-12-31T23:59:59Z"), -1000);
    assert.equal(parseIso8601("2023-02-29"), undefined);
    assert.equal(parseIso8601("2024-13-01"), undefined);
    assert.equal(parseIso8601("2024-05-01T25:00:00Z"), undefined);
    assert.equal(parseIso8601("yesterday"), undefined);
    assert.equal(daysFromCivil(1970, 1, 1), 0);
    assert.equal(daysFromCivil(2000, 3, 1), 11_017);
  });

  it("detects unix seconds vs milliseconds by magnitude and refuses a switch", () => {
    assert.deepEqual(parseTimestamp("1700000000", undefined), {
      ms: 1_700_000_000_000,
      format: "unix-s",
    });
    assert.deepEqual(parseTimestamp("1700000000.5", undefined), {
      ms: 1_700_000_000_500,
      format: "unix-s",
    });
    assert.deepEqual(parseTimestamp("1700000000000", undefined), {
      ms: 1_700_000_000_000,
      format: "unix-ms",
    });
    assert.match(
      (parseTimestamp("1700000000000", "unix-s") as { error: string }).error,
      /started with unix-s/,
    );
    assert.match(
      (parseTimestamp("2024-05-01", "unix-ms") as { error: string }).error,
      /started with unix-ms/,
    );
    assert.match(
      (parseTimestamp("12:00", undefined) as { error: string }).error,
      /neither a unix time nor ISO-8601/,
    );
  });
});

describe("predict/score: input checks", () => {
  const bad: [string, string[], RegExp][] = [
    ["empty input", [], /line 1: missing header/],
    ["missing header", ["1700000000,1"], /line 1: missing header/],
    ["wrong header", ["time,value", "1,2"], /line 1: missing header/],
    [
      "non-numeric value",
      ["timestamp,value", "1700000000,1", "1700000001,abc"],
      /line 3: value "abc" is not a number/,
    ],
    ["empty value", ["timestamp,value", "1700000000,"], /line 2: value "" is not a number/],
    [
      "backwards time",
      ["timestamp,value", "1700000005,1", "1700000004,1"],
      /line 3: .*goes backwards/,
    ],
    ["extra field", ["timestamp,value", "1700000000,1,2"], /line 2: expected 2 fields/],
    ["bad timestamp", ["timestamp,value", "tomorrow,1"], /line 2: timestamp "tomorrow"/],
  ];
  for (const [name, lines, re] of bad) {
    it(`rejects ${name}, naming the line`, () => {
      assert.throws(
        () => scoreLines(lines),
        (e: unknown) => e instanceof CsvInputError && re.test(e.message),
      );
    });
  }

  it("accepts a BOM, CRLF, quotes, blank lines and equal timestamps", () => {
    const out = scoreLines([
      "\ufeffTimestamp , Value\r",
      '"2024-05-01T00:00:00Z","1.5"',
      "",
      "2024-05-01T00:00:00Z,2\r",
    ]);
    assert.deepEqual(
      out.map((l) => l.split(",").slice(0, 2).join(",")),
      ["2024-05-01T00:00:00Z,1.5", "2024-05-01T00:00:00Z,2"],
    );
  });
});

describe("predict/score: the scorer", () => {
  it("scores in [0, 1], 0 during warm-up, high on a spike and on a level shift", () => {
    const s = createStreamingScorer({ warmupSamples: 10 });
    const scores: number[] = [];
    for (let i = 0; i < 600; i++) {
      const v = 10 + Math.sin(i) * 0.5 + (i === 300 ? 20 : 0) + (i >= 500 ? 5 : 0);
      scores.push(s.score(i * 1000, v));
    }
    assert.ok(scores.every((x) => x >= 0 && x <= 1));
    assert.deepEqual(scores.slice(0, 10), new Array(10).fill(0));
    assert.ok(scores[300]! > 0.99, `spike ${scores[300]}`);
    assert.ok(Math.max(...scores.slice(100, 299)) < 0.2, "quiet while normal");
    assert.ok(scores[520]! > 0.9, `shift ${scores[520]}`);
  });

  it("is causal: scoring a prefix gives the same scores as the same rows of the whole series", () => {
    const full = scoreLines(series(2000));
    for (const n of [1, 10, 11, 500, 1400, 1999]) {
      assert.deepEqual(scoreLines(series(2000).slice(0, n + 1)), full.slice(0, n));
    }
  });

  it("is causal for arbitrary series and prefixes (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 5000 }),
            fc.double({ min: -1e6, max: 1e6, noNaN: true }),
          ),
          {
            minLength: 1,
            maxLength: 200,
          },
        ),
        fc.nat(),
        (pts, cut) => {
          const lines = ["timestamp,value"];
          let t = 1_700_000_000_000;
          for (const [dt, v] of pts) {
            t += dt;
            lines.push(`${t},${v}`);
          }
          const k = 1 + (cut % pts.length);
          assert.deepEqual(scoreLines(lines.slice(0, k + 1)), scoreLines(lines).slice(0, k));
        },
      ),
      { numRuns: 100, seed: 42 },
    );
  });
});

describe("predict/score: the command", function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "understudy-predict-score-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes timestamp,value,anomaly_score and is causal end to end", async () => {
    const lines = series(3000);
    await writeFile(join(dir, "full.csv"), `${lines.join("\n")}\n`);
    await writeFile(join(dir, "prefix.csv"), `${lines.slice(0, 1201).join("\n")}\n`);
    const c = capture();
    assert.equal(
      await main(
        ["score", "--input", join(dir, "full.csv"), "--output", join(dir, "full.out.csv")],
        c.io,
      ),
      0,
    );
    assert.equal(
      await main(
        ["score", "--input", join(dir, "prefix.csv"), "--output", join(dir, "prefix.out.csv")],
        c.io,
      ),
      0,
    );
    const full = (await readFile(join(dir, "full.out.csv"), "utf8")).trim().split("\n");
    const prefix = (await readFile(join(dir, "prefix.out.csv"), "utf8")).trim().split("\n");
    assert.equal(full[0], "timestamp,value,anomaly_score");
    assert.equal(full.length, 3001);
    assert.deepEqual(prefix, full.slice(0, 1201));
    for (const l of full.slice(1)) {
      const score = Number(l.split(",")[2]);
      assert.ok(score >= 0 && score <= 1);
    }
  });

  it("exits 2 naming the line, and leaves no output, on bad input", async () => {
    await writeFile(join(dir, "bad.csv"), "timestamp,value\n1700000000,1\n1700000001,x\n");
    const c = capture();
    const out = join(dir, "bad.out.csv");
    assert.equal(await main(["score", "--input", join(dir, "bad.csv"), "--output", out], c.io), 2);
    assert.match(c.err.join(""), /bad\.csv:3: value "x" is not a number/);
    await assert.rejects(stat(out), /ENOENT/);
    const m = capture();
    assert.equal(await main(["score", "--input", join(dir, "nope.csv"), "--output", out], m.io), 2);
    assert.match(m.err.join(""), /ENOENT/);
    const u = capture();
    assert.equal(await main(["score", "--input", join(dir, "bad.csv")], u.io), 2);
    assert.match(u.err.join(""), /needs --input FILE and --output FILE/);
  });

  it("streams: a file larger than the heap limit is scored in a child with a small heap", async () => {
    const rows = 1_500_000;
    const input = join(dir, "big.csv");
    const w = createWriteStream(input);
    w.write("timestamp,value\n");
    let chunk = "";
    for (let i = 0; i < rows; i++) {
      chunk += `${1_700_000_000_000 + i * 1000},${(50 + (i % 97) / 10).toFixed(2)}\n`;
      if (chunk.length > 1 << 20) {
        if (!w.write(chunk)) await once(w, "drain");
        chunk = "";
      }
    }
    w.end(chunk);
    await once(w, "finish");
    const size = (await stat(input)).size;
    const heapMb = 24;
    assert.ok(
      size > heapMb * 1024 * 1024,
      `input ${size} bytes should exceed the ${heapMb} MB heap`,
    );
    const mainUrl = new URL("../../../coordinator/src/predict/main.ts", import.meta.url).href;
    const script = `import(${JSON.stringify(mainUrl)}).then((m) => m.main(["score", "--input", ${JSON.stringify(input)}, "--output", ${JSON.stringify(join(dir, "big.out.csv"))}])).then((c) => { process.exitCode = c; });`;
    const child = spawn(
      process.execPath,
      [`--max-old-space-size=${heapMb}`, "--import", "tsx", "--input-type=module", "-e", script],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const [code] = await once(child, "exit");
    assert.equal(code, 0, stderr);
    assert.match(stderr, new RegExp(`${rows} rows scored`));
  });
});
