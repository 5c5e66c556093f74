/**
 * `understudy token`: makes a bearer token and the config entry that accepts
 * it (its SHA-256 digest, never the token), or prints the digest of an
 * existing token. Tokens are written only to files this command creates with
 * mode 0600 (or to stdout when asked), so they do not end up in configs.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import {
  generateToken,
  readTokenFile,
  TokenFileError,
  tokenDigest,
  tokenProblem,
} from "./rpc-auth.ts";

const usage = `Usage: understudy token --name NAME --roles ROLE[,ROLE...] [--out FILE [--force]]
       understudy token --digest [--file FILE]

Makes a random bearer token and prints the entry that accepts it, for the
coordinator's auth.tokens (roles admin, reader, agent, encoder, peer) or a
packager's controlAuth.tokens (roles coordinator, reader):

  - { name: NAME, sha256: <SHA-256 hex of the token>, roles: [ROLE] }

Options:
  --name NAME       who holds the token (appears in logs and refusals)
  --roles LIST      comma-separated roles of the entry
  --out FILE        write the token to FILE (created with mode 0600; an existing
                    file is left alone unless --force); without it the token is
                    printed on stdout, as the first line
  --force           overwrite FILE
  --digest          print the SHA-256 hex digest of a token read from --file FILE
                    (mode checked like every token file) or from stdin
  -h, --help        show this help

Same digest by hand: printf %s "$TOKEN" | sha256sum
`;

export async function main(argv: string[]): Promise<number> {
  const options = {
    name: { type: "string" },
    roles: { type: "string" },
    out: { type: "string" },
    force: { type: "boolean" },
    digest: { type: "boolean" },
    file: { type: "string" },
    help: { type: "boolean", short: "h" },
  } as const;
  let values: ReturnType<typeof parseArgs<{ options: typeof options }>>["values"];
  try {
    values = parseArgs({ args: argv, options, strict: true }).values;
  } catch (err) {
    process.stderr.write(`understudy token: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (values.digest) {
    let token: string;
    try {
      token = values.file ? readTokenFile(values.file) : readFileSync(0, "utf8").trim();
    } catch (err) {
      process.stderr.write(`understudy token: ${(err as Error).message}\n`);
      return err instanceof TokenFileError ? 2 : 1;
    }
    const problem = tokenProblem(token);
    if (problem) {
      process.stderr.write(`understudy token: ${problem}\n`);
      return 2;
    }
    process.stdout.write(`${tokenDigest(token)}\n`);
    return 0;
  }
  const name = values.name ?? "";
  const roles = (values.roles ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r !== "");
  if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(name)) {
    process.stderr.write(
      `understudy token: --name is required: 1–64 chars of [A-Za-z0-9._@-]\n\n${usage}`,
    );
    return 2;
  }
  if (roles.length === 0 || roles.some((r) => !/^[a-z]{1,32}$/.test(r))) {
    process.stderr.write(
      `understudy token: --roles is required: e.g. --roles admin or --roles reader,encoder\n\n${usage}`,
    );
    return 2;
  }
  const token = generateToken();
  const entry = `- { name: ${name}, sha256: ${tokenDigest(token)}, roles: [${roles.join(", ")}] }`;
  if (values.out) {
    let fd: number;
    try {
      mkdirSync(dirname(values.out), { recursive: true, mode: 0o700 });
      // O_EXCL unless --force; the mode applies to a file created here.
      fd = openSync(values.out, values.force ? "w" : "wx", 0o600);
    } catch (err) {
      const exists = (err as NodeJS.ErrnoException).code === "EEXIST";
      process.stderr.write(
        `understudy token: ${values.out}: ${exists ? "exists (use --force to replace it)" : (err as Error).message}\n`,
      );
      return 1;
    }
    try {
      writeSync(fd, `${token}\n`);
    } finally {
      closeSync(fd);
    }
    // An overwritten file keeps its old mode: check it like every reader will.
    try {
      readTokenFile(values.out);
    } catch (err) {
      process.stderr.write(`understudy token: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(
      `# token in ${values.out} (mode 0600); the entry that accepts it:\n${entry}\n`,
    );
    return 0;
  }
  process.stdout.write(`${token}\n${entry}\n`);
  return 0;
}
