/** The TypeScript SDK of the recsys platform (recsys.v1 over @grpc/grpc-js). */
export { RecsysClient, DEFAULT_TIMEOUT_MS } from "./client.js";
export type { ClientOptions, TlsOptions } from "./client.js";
export {
  CancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  RecsysError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from "./errors.js";
export { serviceConfig } from "./retry.js";
export { api } from "./proto.js";
export type * from "./types.js";
export { status } from "@grpc/grpc-js";
