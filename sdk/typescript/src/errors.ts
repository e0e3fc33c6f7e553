/**
 * Typed errors: every failed call rejects with a `RecsysError` (or a subclass per status)
 * carrying the gRPC status and the server's message, and the field it names.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

/** A call that ended with a non-OK gRPC status. */
export class RecsysError extends Error {
  /** The gRPC status code (`grpc.status.INVALID_ARGUMENT` ...). */
  readonly code: status;
  /** The status name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The server's message as sent (`events[0].item_id: unknown item 'x'`). */
  readonly details: string;
  /** The field the server's message starts with (`events[0].item_id`), if any. */
  readonly field: string | undefined;
  /** Trailing metadata of the call. */
  readonly metadata: Metadata;

  constructor(code: status, details: string, metadata: Metadata = new Metadata(), cause?: unknown) {
    const codeName = status[code] ?? `STATUS_${code}`;
    super(`${codeName}: ${details}`, { cause });
    this.name = new.target.name;
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.field = fieldOf(details);
    this.metadata = metadata;
  }
}

/** Bad input; `field` names what is wrong. */
export class InvalidArgumentError extends RecsysError {}
/** A missing or wrong admin token. */
export class UnauthenticatedError extends RecsysError {}
/** The server (or its database) is unreachable; already retried per the retry policy. */
export class UnavailableError extends RecsysError {}
/** The call's deadline (`timeoutMs`) passed. */
export class DeadlineExceededError extends RecsysError {}
/** The call was cancelled, e.g. by its AbortSignal. */
export class CancelledError extends RecsysError {}
/** Over a limit: message size, LogFeedback rate. */
export class ResourceExhaustedError extends RecsysError {}

const BY_STATUS: Partial<Record<status, typeof RecsysError>> = {
  [status.INVALID_ARGUMENT]: InvalidArgumentError,
  [status.UNAUTHENTICATED]: UnauthenticatedError,
  [status.UNAVAILABLE]: UnavailableError,
  [status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [status.CANCELLED]: CancelledError,
  [status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
};

// The server's convention: "<field path>: <what is wrong>", e.g. "events[3].item_id: ...".
const FIELD = /^([A-Za-z_][\w]*(?:\[\d+\])?(?:\.[A-Za-z_][\w]*(?:\[\d+\])?)*): /;

/** The field a server message starts with, or undefined. */
export function fieldOf(details: string): string | undefined {
  return FIELD.exec(details)?.[1];
}

/** The typed error for a grpc-js ServiceError. */
export function fromServiceError(error: ServiceError): RecsysError {
  const Kind = BY_STATUS[error.code] ?? RecsysError;
  return new Kind(error.code, error.details, error.metadata ?? new Metadata(), error);
}
