/**
 * Retries are gRPC's own (the channel's service config), not a loop in the SDK: grpc-js
 * resends an attempt that ended UNAVAILABLE with exponential backoff, inside the call's
 * one deadline, and keeps the retry throttling of the spec (gRFC A6).
 */
import type { ServiceDefinition } from "@grpc/grpc-js";

export const RETRYABLE_STATUS_CODES = ["UNAVAILABLE"] as const;
/** gRPC caps maxAttempts at 5 (the first try and four retries). */
export const MAX_ATTEMPTS = 5;

/** "recsys.v1.Recommender" of a service definition (its methods' paths start with it). */
export function serviceName(service: ServiceDefinition): string {
  const [method] = Object.values(service);
  if (!method) throw new TypeError("a service without methods");
  return method.path.split("/")[1] ?? "";
}

/**
 * The `grpc.service_config` JSON: `retries` retries on UNAVAILABLE (0: none) for every
 * method of `services`, waiting 0.1 s, 0.2 s, ... at most 2 s (jittered by gRPC).
 */
export function serviceConfig(services: readonly ServiceDefinition[], retries: number): string {
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError("retries: not >= 0");
  const retryPolicy =
    retries > 0
      ? {
          maxAttempts: Math.min(retries + 1, MAX_ATTEMPTS),
          initialBackoff: "0.1s",
          maxBackoff: "2s",
          backoffMultiplier: 2,
          retryableStatusCodes: [...RETRYABLE_STATUS_CODES],
        }
      : undefined;
  return JSON.stringify({
    methodConfig: [
      {
        name: services.map((service) => ({ service: serviceName(service) })),
        ...(retryPolicy && { retryPolicy }),
      },
    ],
  });
}
