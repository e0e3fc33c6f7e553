/**
 * A fake recsys.v1 server for unit tests: a real grpc-js server on a free port, with
 * handlers the test scripts. It records every attempt (request and metadata).
 */
import * as grpc from "@grpc/grpc-js";
import { api } from "@recsys/client";

export interface Attempt {
  method: string;
  request: any;
  metadata: grpc.Metadata;
}

/** A handler answers a request, or throws a `{ code, details }` to fail the attempt. */
export type Handler = (request: any, attempt: number) => unknown | Promise<unknown>;

export class FakeServer {
  readonly attempts: Attempt[] = [];
  private readonly server = new grpc.Server();
  private readonly handlers = new Map<string, Handler>();
  target = "";

  /** Script `method` (e.g. "LogFeedback"); unscripted methods answer an empty message. */
  on(method: string, handler: Handler): this {
    this.handlers.set(method, handler);
    return this;
  }

  async start(): Promise<this> {
    for (const service of [api.recsys.v1.Recommender.service, api.recsys.v1.Admin.service]) {
      const implementation: grpc.UntypedServiceImplementation = {};
      for (const method of Object.keys(service)) {
        implementation[method] = (call: any, callback: grpc.sendUnaryData<unknown>) => {
          this.attempts.push({ method, request: call.request, metadata: call.metadata });
          const count = this.attempts.filter((a) => a.method === method).length;
          const handler = this.handlers.get(method) ?? (() => ({}));
          Promise.resolve()
            .then(() => handler(call.request, count))
            .then(
              (response) => callback(null, response as object),
              (error: grpc.ServiceError) => callback(error, null),
            );
        };
      }
      this.server.addService(service, implementation);
    }
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    this.target = `127.0.0.1:${port}`;
    return this;
  }

  calls(method: string): Attempt[] {
    return this.attempts.filter((a) => a.method === method);
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

/** The error a handler throws to end an attempt with `code`. */
export function fail(code: grpc.status, details: string): Partial<grpc.ServiceError> {
  return { code, details, metadata: new grpc.Metadata() };
}
