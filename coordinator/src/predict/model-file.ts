/**
 * Edge: model files on disk (the bytes of serializeModel, see model.ts).
 *
 * The coordinator starts from a model file (config `predict.modelFile`,
 * default DEFAULT_MODEL_FILE, the model committed with the source) and
 * `understudy predict train --out FILE` writes one. A file that is missing,
 * unreadable, corrupt or made for another feature set is refused with a
 * message saying which of these it is: a node must not start predicting with
 * a model it cannot use.
 */
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { deserializeModel, ModelFormatError, type PredictorModel } from "./model.ts";
import { checkModelCompatible } from "./predictor.ts";

/**
 * The default model, trained on synthetic traces. It was made with
 *
 *   understudy predict train --seeds 1000..1099 --out coordinator/src/predict/models/default.uspm
 *
 * which fits on the same seeds (and the same split) as
 * `understudy predict eval --seeds 1000..1099`, so that eval's table
 * describes this very model on held-out seeds. Training is deterministic:
 * rerunning the command reproduces the file byte for byte.
 */
export const DEFAULT_MODEL_FILE = fileURLToPath(new URL("./models/default.uspm", import.meta.url));

export class ModelFileError extends Error {
  override readonly name = "ModelFileError";
}

/** Reads, parses and checks a model file against this build's feature vector. */
export function readModelFile(path: string): PredictorModel {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory, not a model file"
          : code === "EACCES"
            ? "permission denied"
            : (e as Error).message;
    throw new ModelFileError(`cannot read model file ${path}: ${why}`);
  }
  let model: PredictorModel;
  try {
    model = deserializeModel(bytes);
  } catch (e) {
    if (e instanceof ModelFormatError) {
      throw new ModelFileError(`${path} is not a usable model: ${e.message}`);
    }
    throw e;
  }
  try {
    checkModelCompatible(model);
  } catch (e) {
    throw new ModelFileError(`${path} does not fit this build: ${(e as Error).message}`);
  }
  return model;
}

/** Writes model bytes durably: a temporary file, fsync, rename, fsync of the directory. */
export function writeModelFile(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.partial-${process.pid}`;
  try {
    const fd = openSync(tmp, "w", 0o644);
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  const dir = openSync(dirname(path), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
