/** `RecsysClient`: the Recommender and Admin calls as typed, cancellable Promises. */
import * as grpc from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import * as convert from "./convert.js";
import { CancelledError, fromServiceError } from "./errors.js";
import { admin, recommender } from "./proto.js";
import { serviceConfig } from "./retry.js";
import type * as t from "./types.js";

export const DEFAULT_TIMEOUT_MS = 5000;

/** TLS settings: PEM roots to trust instead of the system's (e.g. a private CA). */
export interface TlsOptions {
  rootCerts?: Buffer | string;
  /** A client certificate and key, for servers that ask for one. */
  certChain?: Buffer | string;
  privateKey?: Buffer | string;
}

export interface ClientOptions {
  /** The Admin service's bearer token (`RECSYS_ADMIN_TOKEN`). */
  token?: string;
  /** Default deadline of each call (all its attempts), in milliseconds. */
  timeoutMs?: number;
  /** Retries of an attempt that ended UNAVAILABLE (0..4; default 3). */
  retries?: number;
  /** true: TLS trusting the system's roots; an object: TLS with these settings. */
  tls?: boolean | TlsOptions;
  /** Further grpc-js channel options (they win over the SDK's). */
  channelOptions?: grpc.ChannelOptions;
}

/**
 * A method of the API as the generator types it: the request it serializes and the response
 * it decodes (the server-side halves are not used here, hence never/unknown).
 */
type Method<Request, Response> = MethodDefinition<Request, never, unknown, Response>;

const pem = (value: Buffer | string | undefined) =>
  value === undefined ? null : Buffer.from(value);

function credentials(tls: ClientOptions["tls"]): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const options = tls === true ? {} : tls;
  return grpc.credentials.createSsl(
    pem(options.rootCerts),
    pem(options.privateKey),
    pem(options.certChain),
  );
}

/**
 * ```ts
 * const client = new RecsysClient("localhost:50051", { token: "recsys-dev-token" });
 * const rec = await client.recommend({ userId: "ana", k: 10 });
 * ```
 * Every call has a deadline (`timeoutMs`), is retried on UNAVAILABLE by gRPC's retry
 * policy, can be cancelled with an AbortSignal, and rejects with a typed `RecsysError`.
 */
export class RecsysClient {
  private readonly channel: grpc.Client;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(target: string, options: ClientOptions = {}) {
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // One channel for both services; methods are called by their path.
    this.channel = new grpc.Client(target, credentials(options.tls), {
      "grpc.service_config": serviceConfig([recommender, admin], options.retries ?? 3),
      ...options.channelOptions,
    });
  }

  /** One unary call: deadline, admin token, cancellation, typed error. */
  private unary<Request, Response>(
    method: Method<Request, Response>,
    request: NoInfer<Request>,
    call: t.CallOptions = {},
    asAdmin = false,
  ): Promise<Response> {
    const { signal } = call;
    if (signal?.aborted) {
      return Promise.reject(new CancelledError(grpc.status.CANCELLED, "aborted before the call"));
    }
    const metadata = new grpc.Metadata();
    if (asAdmin && this.token) metadata.set("authorization", `Bearer ${this.token}`);
    const deadline = Date.now() + (call.timeoutMs ?? this.timeoutMs);
    return new Promise((resolve, reject) => {
      const onAbort = () => pending.cancel();
      const pending = this.channel.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadata,
        { deadline },
        (error, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (error) reject(fromServiceError(error));
          else resolve(response as Response);
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  // -- Recommender ---------------------------------------------------------------------

  /** Top-k items for a user (or an anonymous session), with components and explanations. */
  async recommend(options: t.RecommendOptions, call?: t.CallOptions): Promise<t.Recommendation> {
    const request = convert.recommendRequest(options);
    return convert.recommendation(await this.unary(recommender.Recommend, request, call));
  }

  /** "More like this": items like a catalogue item or a text, under Recommend's rules. */
  async similarItems(options: t.SimilarItemsOptions, call?: t.CallOptions): Promise<t.SimilarItems> {
    const request = convert.similarItemsRequest(options);
    return convert.similarItems(await this.unary(recommender.SimilarItems, request, call));
  }

  /** Takes items down (never recommended again; an upsert brings them back). Returns how
   * many were live. */
  async deleteItems(itemIds: readonly string[], call?: t.CallOptions): Promise<number> {
    const request = { itemIds: [...itemIds] };
    return (await this.unary(recommender.DeleteItems, request, call)).deleted;
  }

  /** Durably records feedback; answers after the commit. Retries are counted once. */
  async logFeedback(
    events: readonly t.FeedbackEvent[],
    call?: t.CallOptions,
  ): Promise<t.FeedbackResult> {
    const request = { events: convert.feedbackEvents(events) };
    const { accepted, duplicates } = await this.unary(recommender.LogFeedback, request, call);
    return { accepted, duplicates };
  }

  /** Adds or replaces items; they are recommendable on the next call. Returns the count. */
  async upsertItems(items: readonly t.Item[], call?: t.CallOptions): Promise<number> {
    const request = { items: items.map(convert.itemMessage) };
    return (await this.unary(recommender.UpsertItems, request, call)).upserted;
  }

  /** Deletes everything stored about a user; returns the number of deleted events. */
  async forgetUser(userId: string, call?: t.CallOptions): Promise<number> {
    return (await this.unary(recommender.ForgetUser, { userId }, call)).deletedEvents;
  }

  /** The visitor behind `sessionId` signed in as `userId`; returns the merged events. */
  async mergeSession(sessionId: string, userId: string, call?: t.CallOptions): Promise<number> {
    const request = { sessionId, userId };
    return (await this.unary(recommender.MergeSession, request, call)).mergedEvents;
  }

  // -- Admin (bearer token) ------------------------------------------------------------

  async getParameters(call?: t.CallOptions): Promise<t.ParameterVersion> {
    const response = await this.unary(admin.GetParameters, {}, call, true);
    return convert.parameterVersion(response.current);
  }

  /** A new parameter version with `changes` over the current values. */
  async updateParameters(
    changes: Partial<t.Parameters>,
    audit: t.Audit,
    call?: t.CallOptions,
  ): Promise<t.ParameterVersion> {
    const request = { ...convert.masked(changes), ...audit };
    const response = await this.unary(admin.UpdateParameters, request, call, true);
    return convert.parameterVersion(response.current);
  }

  /** Make the values of an earlier `version` current again (as a new version). */
  async rollbackParameters(
    version: number,
    audit: t.Audit,
    call?: t.CallOptions,
  ): Promise<t.ParameterVersion> {
    const request = { version, ...audit };
    const response = await this.unary(admin.RollbackParameters, request, call, true);
    return convert.parameterVersion(response.current);
  }

  /** The newest `limit` parameter versions, newest first. */
  async parameterHistory(limit = 50, call?: t.CallOptions): Promise<t.ParameterVersion[]> {
    const response = await this.unary(admin.ListParameterHistory, { limit }, call, true);
    return response.versions.map(convert.parameterVersion);
  }

  /** Judge a change before making it: its CTR estimated off-policy, top lists before/after. */
  async previewParameters(
    changes: Partial<t.Parameters>,
    options: t.PreviewOptions = {},
    call?: t.CallOptions,
  ): Promise<t.ParameterPreview> {
    const { parameters, updateMask } = convert.masked(changes);
    const request = {
      // No parameters at all means "the current ones" (an empty message would be zeros).
      parameters: updateMask.length ? parameters : null,
      updateMask,
      hours: options.hours ?? 24,
      sample: options.sample ?? 500,
      userIds: [...(options.users ?? [])],
    };
    return convert.preview(await this.unary(admin.PreviewParameters, request, call, true));
  }

  /** Start an A/B experiment (variants: name, traffic share, parameter overrides). */
  async createExperiment(
    name: string,
    variants: readonly t.Variant[],
    audit: t.Audit,
    call?: t.CallOptions,
  ): Promise<t.Experiment> {
    const request = { name, variants: variants.map(convert.variantMessage), ...audit };
    const response = await this.unary(admin.CreateExperiment, request, call, true);
    return convert.experiment(response.experiment);
  }

  /** New traffic shares by variant name (adding up to 1). */
  async allocateExperiment(
    name: string,
    shares: Readonly<Record<string, number>>,
    audit: t.Audit,
    call?: t.CallOptions,
  ): Promise<t.Experiment> {
    const request = { name, shares: { ...shares }, ...audit };
    const response = await this.unary(admin.AllocateExperiment, request, call, true);
    return convert.experiment(response.experiment);
  }

  async stopExperiment(name: string, audit: t.Audit, call?: t.CallOptions): Promise<t.Experiment> {
    const response = await this.unary(admin.StopExperiment, { name, ...audit }, call, true);
    return convert.experiment(response.experiment);
  }

  async listExperiments(call?: t.CallOptions): Promise<t.Experiment[]> {
    const response = await this.unary(admin.ListExperiments, {}, call, true);
    return response.experiments.map(convert.experiment);
  }

  /** Closes the channel: later calls reject (pass an AbortSignal to cancel calls in flight). */
  close(): void {
    this.channel.close();
  }
}
