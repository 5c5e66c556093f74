/**
 * Runs every test/unit/plan/testdata/*.txt scenario and compares the whole
 * trace. UPDATE_SCENARIOS=1 rewrites the files with the actual traces; review
 * the diff like any code change.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runScenario } from "./scenario.ts";

const dir = fileURLToPath(new URL("./testdata/", import.meta.url));
const update = process.env.UPDATE_SCENARIOS === "1";

describe("planner scenarios (testdata/*.txt)", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".txt"));

  it("has scenario files", () => {
    assert.ok(files.length >= 3, `found ${files.length}`);
  });

  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const source = readFileSync(path, "utf8");
      const actual = runScenario(source, file);
      if (update) writeFileSync(path, actual);
      else
        assert.equal(actual, source, `${file} differs; rerun with UPDATE_SCENARIOS=1 and review`);
    });
  }
});
