/**
 * One error type at every edge: ConnectError (code, message, details). GRPC
 * services throw it directly; the HTTP edges (packager-node, steering) map its
 * code to a status with `httpStatusFor`. Expected failures are values of this
 * type; broken invariants are `assert`s that stop the process.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export { Code, ConnectError };

/** A request field is wrong. `field` is a dotted path the caller can find in its request. */
export function invalidArgument(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

export function notFound(what: string, id: string): ConnectError {
  return new ConnectError(`${what} "${id}" not found`, Code.NotFound);
}

export function alreadyExists(what: string, id: string): ConnectError {
  return new ConnectError(`${what} "${id}" already exists`, Code.AlreadyExists);
}

export function failedPrecondition(message: string): ConnectError {
  return new ConnectError(message, Code.FailedPrecondition);
}

export function unavailable(message: string): ConnectError {
  return new ConnectError(message, Code.Unavailable);
}

export function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated);
}

export function resourceExhausted(message: string): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted);
}

/** HTTP status for a code, following the gRPC ↔ HTTP mapping used by Connect. */
export function httpStatusFor(code: Code): number {
  switch (code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return 400;
    case Code.Unauthenticated:
      return 401;
    case Code.PermissionDenied:
      return 403;
    case Code.NotFound:
      return 404;
    case Code.AlreadyExists:
    case Code.Aborted:
      return 409;
    case Code.FailedPrecondition:
      return 412;
    case Code.ResourceExhausted:
      return 429;
    case Code.Canceled:
      return 499;
    case Code.Unimplemented:
      return 501;
    case Code.Unavailable:
      return 503;
    case Code.DeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

/** Stops the process on a broken invariant: these are bugs, never user errors. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${message}`);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
