import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RecsysError, status } from "@recsys/client";

describe("RecsysError", () => {
  it("reads the field from the server's message", () => {
    const cases: Array<[string, string | undefined]> = [
      ["events[3].item_id: unknown item 'x'", "events[3].item_id"],
      ["k: must be in 1..1000", "k"],
      ["variants[1].update_mask: unknown parameter 'x'", "variants[1].update_mask"],
      ["invalid admin token", undefined],
      ["something: with spaces before: no", "something"],
    ];
    for (const [details, field] of cases) {
      assert.equal(new RecsysError(status.INVALID_ARGUMENT, details).field, field, details);
    }
  });
});
