/**
 * The SDK against the real platform (real Triton, PostgreSQL and gRPC server). The pytest
 * wrapper tests/integration/test_typescript_sdk.py starts it and passes its address:
 *   RECSYS_TARGET, RECSYS_ADMIN_TOKEN, RECSYS_TEST_RUN (a unique prefix for user ids),
 *   RECSYS_TLS_TARGET + RECSYS_TLS_ROOT_CERT (a TLS-only server and its certificate file).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import {
  InvalidArgumentError,
  RecsysClient,
  UnauthenticatedError,
  status,
  type FeedbackEvent,
} from "@recsys/client";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (run through tests/integration/test_typescript_sdk.py)`);
  }
  return value;
}

const target = env("RECSYS_TARGET");
const run = env("RECSYS_TEST_RUN");
const client = new RecsysClient(target, { token: env("RECSYS_ADMIN_TOKEN"), timeoutMs: 10_000 });
after(() => client.close());

describe("the TypeScript SDK on the real platform", () => {
  it("feedback changes the next recommendation", async () => {
    const userId = `${run}-steer`;
    const first = await client.recommend({ userId, k: 10 });
    assert.equal(first.items.length, 10);
    assert.equal(first.degraded, false);
    for (const item of first.items) {
      assert.ok(["relevance", "popularity", "freshness"].every((c) => c in item.components));
      assert.ok(item.propensity > 0 && item.propensity <= 1, `${item.propensity}`);
    }
    const clicked = first.items.slice(0, 3).map((item) => item.itemId);
    const result = await client.logFeedback(
      clicked.map((itemId) => ({
        itemId,
        type: "click",
        userId,
        recommendationId: first.recommendationId,
      })),
    );
    assert.deepEqual(result, { accepted: 3, duplicates: 0 });

    const next = await client.recommend({ userId, k: 10 });
    const ids = next.items.map((item) => item.itemId);
    // Seen items are filtered, and the clicks now explain the relevance of what is shown.
    assert.deepEqual(
      ids.filter((id) => clicked.includes(id)),
      [],
    );
    const because = next.items.flatMap((item) => item.becauseItemIds);
    assert.ok(because.length > 0, "no item is explained by the clicks");
    assert.ok(
      because.every((id) => clicked.includes(id)),
      `because items outside the history: ${because}`,
    );
  });

  it("a retried logFeedback is counted once", async () => {
    const userId = `${run}-retry`;
    const { items } = await client.recommend({ userId, k: 2 });
    // The SDK fills in the ids once: a resend of the same events (what gRPC's retry does)
    // carries them again. The pytest wrapper also counts this user's rows in `events`.
    const events: FeedbackEvent[] = items.map((item) => ({
      itemId: item.itemId,
      type: "like",
      userId,
      eventId: `${userId}-${item.itemId}`,
      timestamp: new Date(),
    }));
    assert.deepEqual(await client.logFeedback(events), { accepted: 2, duplicates: 0 });
    assert.deepEqual(await client.logFeedback(events), { accepted: 0, duplicates: 2 });
  });

  it("bad input is INVALID_ARGUMENT naming the field", async () => {
    const unknown = await client
      .logFeedback([{ itemId: `${run}-no-such-item`, type: "click", userId: `${run}-bad` }])
      .catch((e) => e);
    assert.ok(unknown instanceof InvalidArgumentError, String(unknown));
    assert.equal(unknown.code, status.INVALID_ARGUMENT);
    assert.equal(unknown.field, "events[0].item_id");

    const k = await client.recommend({ userId: `${run}-bad`, k: 0 }).catch((e) => e);
    assert.ok(k instanceof InvalidArgumentError, String(k));
    assert.equal(k.field, "k");
  });

  it("a missing admin token is UNAUTHENTICATED; the token lets the caller in", async () => {
    const anonymous = new RecsysClient(target);
    try {
      const error = await anonymous.getParameters().catch((e) => e);
      assert.ok(error instanceof UnauthenticatedError, String(error));
      assert.equal(error.code, status.UNAUTHENTICATED);
    } finally {
      anonymous.close();
    }
    const current = await client.getParameters();
    assert.ok(current.version >= 1);
    assert.equal(typeof current.parameters.relevanceWeight, "number");
  });

  it("updates and rolls back parameters, audited", async () => {
    const start = await client.getParameters();
    const audit = { changedBy: `${run}`, reason: "TypeScript SDK test" };
    const changed = await client.updateParameters(
      { diversityLambda: start.parameters.diversityLambda === 0.5 ? 0.25 : 0.5 },
      audit,
    );
    assert.equal(changed.version, start.version + 1);
    assert.notEqual(changed.parameters.diversityLambda, start.parameters.diversityLambda);
    const back = await client.rollbackParameters(start.version, audit);
    assert.equal(back.parameters.diversityLambda, start.parameters.diversityLambda);
    const [newest] = await client.parameterHistory(1);
    assert.equal(newest?.version, back.version);
    assert.equal(newest?.changedBy, run);
    assert.ok(newest?.createdAt instanceof Date);
    assert.ok(Array.isArray(await client.listExperiments()));
  });

  it("upserts an item, merges a session and forgets a user", async () => {
    const itemId = `${run}-item`;
    const upserted = await client.upsertItems([
      { itemId, title: "A brand new TypeScript item", categories: ["news"], tags: ["sdk"] },
    ]);
    assert.equal(upserted, 1);
    const sessionId = `${run}-session`;
    const userId = `${run}-merged`;
    await client.logFeedback([{ itemId, type: "click", sessionId }]);
    assert.equal(await client.mergeSession(sessionId, userId), 1);
    assert.equal(await client.forgetUser(userId), 1);
  });

  it("a query, more like this and a take-down", async () => {
    const itemId = `${run}-saturn`;
    const title = "The rings of Saturn through a backyard telescope";
    await client.upsertItems([{ itemId, title, categories: ["science"], tags: ["astronomy"] }]);
    const sessionId = `${run}-stargazer`;

    const asked = await client.recommend({ sessionId, k: 10, query: title });
    const found = asked.items.find((item) => item.itemId === itemId);
    assert.ok(found, `the item named by the query is not in ${JSON.stringify(asked.items)}`);
    assert.ok(found.becauseQuery && (found.components.query ?? 0) > 0, JSON.stringify(found));

    const like = await client.similarItems({ itemId, k: 5 });
    assert.equal(like.items.length, 5);
    assert.ok(!like.items.some((item) => item.itemId === itemId), "the anchor is not listed");
    const byText = await client.similarItems({ text: title, k: 10 });
    assert.ok(byText.items.some((item) => item.itemId === itemId));

    assert.equal(await client.deleteItems([itemId]), 1);
    const after = await client.recommend({ sessionId, k: 10, query: title });
    assert.ok(!after.items.some((item) => item.itemId === itemId), "taken down");
    const unknown = await client.deleteItems([`${run}-no-such-item`]).catch((e) => e);
    assert.ok(unknown instanceof InvalidArgumentError, String(unknown));
    assert.equal(unknown.field, "item_ids[0]");
  });
});

describe("TLS", { skip: !process.env.RECSYS_TLS_TARGET && "no TLS server given" }, () => {
  it("speaks TLS to a server whose certificate it is given", async () => {
    const tls = new RecsysClient(env("RECSYS_TLS_TARGET"), {
      tls: { rootCerts: readFileSync(env("RECSYS_TLS_ROOT_CERT")) },
      timeoutMs: 10_000,
    });
    try {
      const rec = await tls.recommend({ userId: `${run}-tls`, k: 3 });
      assert.equal(rec.items.length, 3);
    } finally {
      tls.close();
    }
  });
});
