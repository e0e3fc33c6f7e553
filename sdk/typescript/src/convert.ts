/**
 * Conversions at the edge: SDK objects <-> the messages of recsys.v1. The client calls
 * nothing but these and the generated method definitions.
 */
import { randomUUID } from "node:crypto";
import type { Experiment__Output } from "./generated/recsys/v1/Experiment.js";
import type { EventType } from "./generated/recsys/v1/EventType.js";
import type { FeedbackEvent as FeedbackEventMessage } from "./generated/recsys/v1/FeedbackEvent.js";
import type { Item as ItemMessage } from "./generated/recsys/v1/Item.js";
import type { ParameterVersion__Output } from "./generated/recsys/v1/ParameterVersion.js";
import type { PreviewParametersResponse__Output } from "./generated/recsys/v1/PreviewParametersResponse.js";
import type { RecommendRequest } from "./generated/recsys/v1/RecommendRequest.js";
import type { RecommendResponse__Output } from "./generated/recsys/v1/RecommendResponse.js";
import type { ScoredItem__Output } from "./generated/recsys/v1/ScoredItem.js";
import type { SimilarItemsRequest } from "./generated/recsys/v1/SimilarItemsRequest.js";
import type { SimilarItemsResponse__Output } from "./generated/recsys/v1/SimilarItemsResponse.js";
import type { Timestamp, Timestamp__Output } from "./generated/google/protobuf/Timestamp.js";
import type { Variant as VariantMessage } from "./generated/recsys/v1/Variant.js";
import type * as t from "./types.js";

export function toTimestamp(moment: Date): Timestamp {
  const millis = moment.getTime();
  if (Number.isNaN(millis)) throw new TypeError("invalid Date");
  const seconds = Math.floor(millis / 1000);
  return { seconds, nanos: (millis - seconds * 1000) * 1_000_000 };
}

export function fromTimestamp(stamp: Timestamp__Output | null): Date | undefined {
  return stamp ? new Date(stamp.seconds * 1000 + Math.floor(stamp.nanos / 1_000_000)) : undefined;
}

/** "click" or "EVENT_TYPE_CLICK" -> "EVENT_TYPE_CLICK". */
export function eventType(name: t.EventTypeName): EventType {
  const upper = name.toUpperCase();
  return (upper.startsWith("EVENT_TYPE_") ? upper : `EVENT_TYPE_${upper}`) as EventType;
}

/** Proto field names (as update_mask wants them) of camelCase parameter keys. */
export function protoFieldName(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

function camelCase(name: string): string {
  return name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

export function recommendRequest(options: t.RecommendOptions): RecommendRequest {
  return {
    userId: options.userId ?? "",
    sessionId: options.sessionId ?? "",
    k: options.k ?? 10,
    excludeItemIds: [...(options.exclude ?? [])],
    context: { ...options.context },
    ...(options.query === undefined ? {} : { query: options.query }),
  };
}

export function similarItemsRequest(options: t.SimilarItemsOptions): SimilarItemsRequest {
  return {
    ...(options.itemId === undefined ? { text: options.text } : { itemId: options.itemId }),
    k: options.k ?? 10,
    userId: options.userId ?? "",
    sessionId: options.sessionId ?? "",
    excludeItemIds: [...(options.exclude ?? [])],
    context: { ...options.context },
  };
}

/**
 * The events with ids and timestamps filled in. Called once per logFeedback, before the
 * first attempt, so gRPC's retries resend the same ids.
 */
export function feedbackEvents(events: readonly t.FeedbackEvent[]): FeedbackEventMessage[] {
  return events.map((event) => ({
    eventId: event.eventId ?? randomUUID(),
    userId: event.userId ?? "",
    sessionId: event.sessionId ?? "",
    itemId: event.itemId,
    type: eventType(event.type),
    recommendationId: event.recommendationId ?? "",
    timestamp: toTimestamp(event.timestamp ?? new Date()),
    value: event.value ?? 0,
  }));
}

export function itemMessage(item: t.Item): ItemMessage {
  const optional = (moment: Date | undefined) => (moment ? toTimestamp(moment) : null);
  return {
    itemId: item.itemId,
    title: item.title,
    description: item.description ?? "",
    categories: [...(item.categories ?? [])],
    tags: [...(item.tags ?? [])],
    attributes: { ...item.attributes },
    publishedAt: optional(item.publishedAt),
    availableFrom: optional(item.availableFrom),
    availableUntil: optional(item.availableUntil),
  };
}

/** The changed fields and the mask that names them (only those fields change). */
export function masked(changes: Partial<t.Parameters>): {
  parameters: Partial<t.Parameters>;
  updateMask: string[];
} {
  return { parameters: { ...changes }, updateMask: Object.keys(changes).map(protoFieldName) };
}

export function variantMessage(variant: t.Variant): VariantMessage {
  const { parameters, updateMask } = masked(variant.overrides);
  return { name: variant.name, share: variant.share, parameters, updateMask };
}

function scoredItem(item: ScoredItem__Output): t.ScoredItem {
  return {
    itemId: item.itemId,
    score: item.score,
    components: { ...item.components },
    becauseItemIds: [...item.becauseItemIds],
    becauseQuery: item.becauseQuery,
    propensity: item.propensity,
  };
}

export function similarItems(response: SimilarItemsResponse__Output): t.SimilarItems {
  return {
    items: response.items.map(scoredItem),
    degraded: response.degraded,
    variant: response.variant,
    parameterVersion: response.parameterVersion,
  };
}

export function recommendation(response: RecommendResponse__Output): t.Recommendation {
  return {
    recommendationId: response.recommendationId,
    items: response.items.map(scoredItem),
    modelVersion: response.modelVersion,
    degraded: response.degraded,
    variant: response.variant,
    parameterVersion: response.parameterVersion,
  };
}

export function parameterVersion(message: ParameterVersion__Output | null): t.ParameterVersion {
  if (!message?.parameters) throw new TypeError("the server sent no parameter version");
  return {
    version: message.version,
    parameters: message.parameters,
    changedBy: message.changedBy,
    reason: message.reason,
    createdAt: fromTimestamp(message.createdAt),
  };
}

export function experiment(message: Experiment__Output | null): t.Experiment {
  if (!message) throw new TypeError("the server sent no experiment");
  return {
    name: message.name,
    status: message.status,
    changedBy: message.changedBy,
    reason: message.reason,
    createdAt: fromTimestamp(message.createdAt),
    variants: message.variants.map((variant) => {
      const overrides: Record<string, unknown> = {};
      for (const name of variant.updateMask) {
        const key = camelCase(name) as keyof t.Parameters;
        overrides[key] = variant.parameters?.[key];
      }
      return { name: variant.name, share: variant.share, overrides };
    }),
  };
}

export function preview(response: PreviewParametersResponse__Output): t.ParameterPreview {
  return {
    recommendations: response.recommendations,
    impressions: response.impressions,
    loggedCtr: response.loggedCtr,
    ipsCtr: response.ipsCtr,
    snipsCtr: response.snipsCtr,
    ipsStandardError: response.ipsStandardError,
    effectiveSampleSize: response.effectiveSampleSize,
    users: response.users.map((u) => ({ userId: u.userId, before: u.before, after: u.after })),
  };
}
