#!/usr/bin/env node
// The `understudy` executable: registers tsx so the TypeScript sources run
// directly (no build step), then hands over to common/cli.ts.
import { register } from "tsx/esm/api";

register();
const { run } = await import("../cli.ts");
process.exitCode = await run(process.argv.slice(2));
