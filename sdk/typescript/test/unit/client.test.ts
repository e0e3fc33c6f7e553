import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import {
  CancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  RecsysClient,
  RecsysError,
  UnauthenticatedError,
  UnavailableError,
  status,
} from "@recsys/client";
import { FakeServer, fail } from "./fake.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("RecsysClient against a fake server", () => {
  let server: FakeServer;
  let client: RecsysClient;

  before(async () => {
    server = await new FakeServer().start();
  });
  after(() => server.stop());
  beforeEach(() => {
    server.attempts.length = 0;
    client?.close();
    client = new RecsysClient(server.target, { token: "secret", timeoutMs: 2000 });
  });

  it("decodes a recommendation into typed fields", async () => {
    const item = {
      itemId: "i1",
      score: 0.5,
      components: { relevance: 0.25, popularity: 0.25 },
      becauseItemIds: ["h1"],
      becauseQuery: true,
      propensity: 0.75,
    };
    server.on("Recommend", (request) => ({
      recommendationId: `rec-for-${request.userId}-${request.k}`,
      items: [item],
      modelVersion: "3",
      degraded: true,
      variant: "b",
      parameterVersion: 42,
    }));
    const rec = await client.recommend({ userId: "ana", k: 7, exclude: ["x"], query: "jazz" });
    assert.deepEqual(rec, {
      recommendationId: "rec-for-ana-7",
      items: [item],
      modelVersion: "3",
      degraded: true,
      variant: "b",
      parameterVersion: 42, // int64 arrives as a number (LOADER_OPTIONS matches the types)
    });
    const [attempt] = server.calls("Recommend");
    assert.deepEqual(attempt?.request.excludeItemIds, ["x"]);
    assert.equal(attempt?.request.query, "jazz");
    assert.equal(attempt?.metadata.get("authorization").length, 0, "no token off Admin");
  });

  it("asks for similar items by item or by text, and takes items down", async () => {
    server.on("SimilarItems", (request) => ({
      items: [{ itemId: `like-${request.itemId || request.text}`, score: 1, components: {} }],
      variant: "a",
      parameterVersion: 7,
    }));
    server.on("DeleteItems", (request) => ({ deleted: request.itemIds.length }));
    const byItem = await client.similarItems({ itemId: "i1", k: 3, userId: "ana" });
    assert.equal(byItem.items[0]?.itemId, "like-i1");
    assert.equal(byItem.items[0]?.becauseQuery, false);
    assert.deepEqual([byItem.variant, byItem.parameterVersion, byItem.degraded], ["a", 7, false]);
    const byText = await client.similarItems({ text: "slow jazz" });
    assert.equal(byText.items[0]?.itemId, "like-slow jazz");
    const [first, second] = server.calls("SimilarItems");
    assert.deepEqual([first?.request.anchor, first?.request.k], ["itemId", 3]);
    assert.deepEqual([second?.request.anchor, second?.request.k], ["text", 10]);
    assert.equal(await client.deleteItems(["a", "b"]), 2);
  });

  it("fills in event ids and timestamps only when absent", async () => {
    server.on("LogFeedback", (request) => ({ accepted: request.events.length, duplicates: 0 }));
    const given = new Date("2026-01-02T03:04:05.678Z");
    const started = Date.now();
    const result = await client.logFeedback([
      { itemId: "a", type: "click", userId: "u" },
      { itemId: "b", type: "EVENT_TYPE_ADD_TO_CART", eventId: "mine", timestamp: given },
    ]);
    assert.deepEqual(result, { accepted: 2, duplicates: 0 });
    const [first, second] = server.calls("LogFeedback")[0]?.request.events;
    assert.match(first.eventId, UUID);
    assert.equal(first.type, "EVENT_TYPE_CLICK");
    const stamped = first.timestamp.seconds * 1000 + first.timestamp.nanos / 1e6;
    assert.ok(stamped >= started - 1000 && stamped <= Date.now() + 1000, `${stamped}`);
    assert.equal(second.eventId, "mine");
    assert.equal(second.type, "EVENT_TYPE_ADD_TO_CART");
    assert.deepEqual(second.timestamp, { seconds: 1767323045, nanos: 678_000_000 });
  });

  it("retries UNAVAILABLE through the retry policy, resending the same event ids", async () => {
    server.on("LogFeedback", (request, attempt) => {
      if (attempt < 3) throw fail(status.UNAVAILABLE, "database unavailable");
      return { accepted: request.events.length, duplicates: 0 };
    });
    const result = await client.logFeedback([{ itemId: "a", type: "like", userId: "u" }]);
    assert.equal(result.accepted, 1);
    const attempts = server.calls("LogFeedback");
    assert.equal(attempts.length, 3);
    const ids = new Set(attempts.map((a) => a.request.events[0].eventId));
    assert.equal(ids.size, 1, "every attempt carries the same event id");
  });

  it("gives up after its retries with an UnavailableError", async () => {
    client = new RecsysClient(server.target, { retries: 1 });
    server.on("UpsertItems", () => {
      throw fail(status.UNAVAILABLE, "down");
    });
    const error = await client.upsertItems([{ itemId: "i", title: "t" }]).catch((e) => e);
    assert.ok(error instanceof UnavailableError);
    assert.equal(server.calls("UpsertItems").length, 2);
  });

  it("does not retry other errors; the error names the server's field", async () => {
    server.on("LogFeedback", () => {
      throw fail(status.INVALID_ARGUMENT, "events[0].item_id: unknown item 'zz'");
    });
    const error = await client
      .logFeedback([{ itemId: "zz", type: "click", userId: "u" }])
      .catch((e) => e);
    assert.ok(error instanceof InvalidArgumentError && error instanceof RecsysError);
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.equal(error.field, "events[0].item_id");
    assert.equal(error.details, "events[0].item_id: unknown item 'zz'");
    assert.equal(server.calls("LogFeedback").length, 1);
  });

  it("sends the bearer token on Admin calls", async () => {
    server.on("GetParameters", (_request, attempt) => {
      const auth = server.calls("GetParameters")[attempt - 1]?.metadata.get("authorization");
      if (auth?.[0] !== "Bearer secret") throw fail(status.UNAUTHENTICATED, "missing token");
      return { current: { version: 5, parameters: { relevanceWeight: 1 }, changedBy: "me" } };
    });
    const current = await client.getParameters();
    assert.equal(current.version, 5);
    assert.equal(current.parameters.relevanceWeight, 1);
    assert.equal(current.parameters.excludeSeen, false, "defaults are filled in");
    const anonymous = new RecsysClient(server.target);
    const error = await anonymous.getParameters().catch((e) => e);
    anonymous.close();
    assert.ok(error instanceof UnauthenticatedError);
  });

  it("names changed parameters in update_mask with their proto names", async () => {
    server.on("UpdateParameters", (request) => ({
      current: { version: 6, parameters: request.parameters },
    }));
    const audit = { changedBy: "ana", reason: "test" };
    const current = await client.updateParameters({ popularityWeight: 0.3 }, audit);
    const request = server.calls("UpdateParameters")[0]?.request;
    assert.deepEqual(request.updateMask, ["popularity_weight"]);
    assert.equal(request.changedBy, "ana");
    assert.equal(current.parameters.popularityWeight, 0.3);
  });

  it("maps experiment overrides through the variant's mask", async () => {
    server.on("CreateExperiment", (request) => ({
      experiment: { name: request.name, status: "running", variants: request.variants },
    }));
    const experiment = await client.createExperiment(
      "exp",
      [
        { name: "a", share: 0.5, overrides: {} },
        { name: "b", share: 0.5, overrides: { diversityLambda: 0.5 } },
      ],
      { changedBy: "ana", reason: "test" },
    );
    assert.deepEqual(server.calls("CreateExperiment")[0]?.request.variants[1].updateMask, [
      "diversity_lambda",
    ]);
    assert.deepEqual(
      experiment.variants.map((v) => v.overrides),
      [{}, { diversityLambda: 0.5 }],
    );
  });

  it("ends a call at its deadline", async () => {
    server.on("Recommend", () => new Promise((resolve) => setTimeout(() => resolve({}), 3000)));
    const started = Date.now();
    const error = await client.recommend({ userId: "u" }, { timeoutMs: 100 }).catch((e) => e);
    assert.ok(error instanceof DeadlineExceededError, String(error));
    assert.ok(Date.now() - started < 2000);
  });

  it("is cancelled by its AbortSignal", async () => {
    server.on("Recommend", () => new Promise((resolve) => setTimeout(() => resolve({}), 3000)));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    const error = await client
      .recommend({ userId: "u" }, { signal: controller.signal })
      .catch((e) => e);
    assert.ok(error instanceof CancelledError, String(error));
    assert.ok(Date.now() - started < 2000);
  });

  it("does not start a call whose signal is already aborted", async () => {
    const error = await client
      .forgetUser("u", { signal: AbortSignal.abort() })
      .catch((e) => e);
    assert.ok(error instanceof CancelledError);
    assert.equal(server.calls("ForgetUser").length, 0);
  });
});
