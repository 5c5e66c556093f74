/**
 * Runs the agent command without the shared CLI dispatcher:
 * `node --import tsx agent/src/standalone.ts --config FILE`. Used by tests
 * and the bench to run the agent as a real separate process.
 */
import { main } from "./main.ts";

process.exitCode = await main(process.argv.slice(2));
