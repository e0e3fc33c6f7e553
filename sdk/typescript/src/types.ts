/** What the SDK takes and returns: plain, typed objects, Dates for timestamps. */
import type { Parameters__Output } from "./generated/recsys/v1/Parameters.js";
import type { EventType__Output } from "./generated/recsys/v1/EventType.js";

/** The ranking blend; every field is present in answers. */
export type Parameters = Parameters__Output;

/** An event type: "click", "like", ... or the proto name "EVENT_TYPE_CLICK". */
export type EventTypeName =
  | "click"
  | "like"
  | "dislike"
  | "skip"
  | "add_to_cart"
  | "purchase"
  | Exclude<EventType__Output, "EVENT_TYPE_UNSPECIFIED">;

/** Per-call options: a deadline and a way to cancel. */
export interface CallOptions {
  /** Deadline of this call in milliseconds (default: the client's `timeoutMs`). */
  timeoutMs?: number;
  /** Aborting it cancels the call; the promise rejects with a CancelledError. */
  signal?: AbortSignal;
}

export interface RecommendOptions {
  /** The signed-in user; empty for an anonymous visitor (then `sessionId`). */
  userId?: string;
  sessionId?: string;
  /** How many items (1..1000, default 10). */
  k?: number;
  /** Items never to return. */
  exclude?: readonly string[];
  /** Request context, e.g. `include_categories: "news,sport"`. */
  context?: Readonly<Record<string, string>>;
  /** What the user wants now, in their own words (1..1000 characters); works without history. */
  query?: string;
}

/** "More like this": of a catalogue item (`itemId`) or of a text, under Recommend's rules. */
export type SimilarItemsOptions = ({ itemId: string; text?: never } | { text: string; itemId?: never }) & {
  k?: number;
  /** Whose seen and disliked items stay out, and whose A/B variant ranks (optional). */
  userId?: string;
  sessionId?: string;
  exclude?: readonly string[];
  context?: Readonly<Record<string, string>>;
};

export interface SimilarItems {
  items: ScoredItem[];
  /** True when a text anchor could not be embedded (the list comes from the prior). */
  degraded: boolean;
  variant: string;
  parameterVersion: number;
}

export interface ScoredItem {
  itemId: string;
  score: number;
  /** Weighted contributions to score: relevance, popularity, freshness, ... */
  components: Record<string, number>;
  /** History items that drove the relevance of this item. */
  becauseItemIds: string[];
  /** True when the request's query (or SimilarItems' anchor) drove it more than the history. */
  becauseQuery: boolean;
  /** Probability that the ranking policy put this item in the list. */
  propensity: number;
}

export interface Recommendation {
  /** Pass it back with feedback on these items. */
  recommendationId: string;
  items: ScoredItem[];
  modelVersion: string;
  /** True when the answer came from the popularity fallback (model unreachable). */
  degraded: boolean;
  /** The A/B variant the user is in ("" without a running experiment). */
  variant: string;
  parameterVersion: number;
}

/**
 * One piece of feedback. `eventId` and `timestamp` are filled in when absent, once, before
 * the first attempt: a retried call carries the same ones and is counted once.
 */
export interface FeedbackEvent {
  itemId: string;
  type: EventTypeName;
  userId?: string;
  sessionId?: string;
  recommendationId?: string;
  value?: number;
  eventId?: string;
  timestamp?: Date;
}

export interface FeedbackResult {
  accepted: number;
  /** Events whose id was already stored (retries). */
  duplicates: number;
}

export interface Item {
  itemId: string;
  title: string;
  description?: string;
  categories?: readonly string[];
  tags?: readonly string[];
  attributes?: Readonly<Record<string, string>>;
  publishedAt?: Date;
  /** Optional availability window: the item is recommended only inside it. */
  availableFrom?: Date;
  availableUntil?: Date;
}

/** Who made a change and why (recorded with every parameter version and experiment). */
export interface Audit {
  changedBy: string;
  reason: string;
}

export interface ParameterVersion extends Audit {
  version: number;
  parameters: Parameters;
  createdAt: Date | undefined;
}

export interface Variant {
  name: string;
  /** Traffic share (all variants add up to 1). */
  share: number;
  /** The parameters this variant overrides. */
  overrides: Partial<Parameters>;
}

export interface Experiment extends Audit {
  name: string;
  /** "running" or "stopped". */
  status: string;
  createdAt: Date | undefined;
  variants: Variant[];
}

export interface PreviewOptions {
  /** Logged lists of the last `hours` (default 24)... */
  hours?: number;
  /** ...at most this many of the newest (default 500). */
  sample?: number;
  /** Users whose top lists are shown before and after (default: recently active). */
  users?: readonly string[];
}

export interface UserPreview {
  userId: string;
  before: string[];
  after: string[];
}

/** A candidate change judged on the logs: off-policy CTR estimates and top lists. */
export interface ParameterPreview {
  recommendations: number;
  impressions: number;
  loggedCtr: number;
  ipsCtr: number;
  snipsCtr: number;
  ipsStandardError: number;
  effectiveSampleSize: number;
  users: UserPreview[];
}
