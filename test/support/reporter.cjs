// Mocha reporter: the familiar spec output, then one closing line that CI
// parsers read: "N passed, N failed" (", N skipped" when tests were skipped).
"use strict";
const Mocha = require("mocha");
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END } = Mocha.Runner.constants;

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats ?? this.stats;
      const skipped = s.pending ?? 0;
      const line = `${s.passes} passed, ${s.failures} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`;
      // Spec registered its epilogue first (in super()), so this prints last.
      process.stdout.write(`\n${line}\n`);
    });
  }
}

module.exports = SummaryReporter;
