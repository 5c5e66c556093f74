/**
 * Runs an executable with an argument list: never a shell, never a string
 * that could be split or interpolated. Every call has a timeout and a bounded
 * output size. The only callers pass `systemctl` with unit names from the
 * agent's own config.
 */
import { execFile } from "node:child_process";

export interface CommandResult {
  /** Exit code; null when killed (timeout) or not started. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not run or was killed, e.g. "timed out after 5000 ms". */
  error?: string;
}

export interface CommandRunner {
  run(file: string, args: readonly string[], timeoutMs: number): Promise<CommandResult>;
}

/** Output beyond this is cut (systemctl output is a few lines). */
const outputBytesMax = 64 * 1024;

export const execFileRunner: CommandRunner = {
  run(file, args, timeoutMs) {
    return new Promise((resolve) => {
      execFile(
        file,
        [...args],
        { timeout: timeoutMs, maxBuffer: outputBytesMax, killSignal: "SIGKILL", shell: false },
        (err, stdout, stderr) => {
          if (!err) {
            resolve({ code: 0, stdout, stderr });
            return;
          }
          const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
          const code = typeof e.code === "number" ? e.code : null;
          const error = e.killed
            ? `timed out after ${timeoutMs} ms`
            : typeof e.code === "string"
              ? `${e.code}: ${e.message}`
              : undefined;
          resolve({
            code,
            stdout: String(stdout),
            stderr: String(stderr),
            ...(error ? { error } : {}),
          });
        },
      );
    });
  },
};

/** One-line description of a failed run for logs and DirectiveResult messages. */
export function describeFailure(what: string, r: CommandResult): string {
  const detail = r.error ?? (r.stderr.trim().split("\n").at(-1) || `exit code ${r.code}`);
  return `${what} failed: ${detail}`.slice(0, 1024);
}
