import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { api, serviceConfig } from "@recsys/client";

const services = [api.recsys.v1.Recommender.service, api.recsys.v1.Admin.service];

describe("serviceConfig", () => {
  it("retries UNAVAILABLE on every method of both services", () => {
    const [config] = JSON.parse(serviceConfig(services, 3)).methodConfig;
    assert.deepEqual(config.name, [
      { service: "recsys.v1.Recommender" },
      { service: "recsys.v1.Admin" },
    ]);
    assert.equal(config.retryPolicy.maxAttempts, 4);
    assert.deepEqual(config.retryPolicy.retryableStatusCodes, ["UNAVAILABLE"]);
  });

  it("caps attempts at gRPC's five and has no policy without retries", () => {
    assert.equal(JSON.parse(serviceConfig(services, 9)).methodConfig[0].retryPolicy.maxAttempts, 5);
    assert.equal(JSON.parse(serviceConfig(services, 0)).methodConfig[0].retryPolicy, undefined);
    assert.throws(() => serviceConfig(services, -1), RangeError);
  });
});
