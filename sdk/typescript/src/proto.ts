/**
 * The recsys.v1 API as @grpc/proto-loader builds it from the shipped .proto files.
 *
 * The types come from `proto-loader-gen-types` (run by `npm run generate`, never committed);
 * the options below must match its flags in scripts/generate.mjs, because the generated
 * types describe the objects the loader produces with them.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import type { ProtoGrpcType } from "./generated/recsys.js";

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false, // camelCase fields, as the generator emits them
  longs: Number, // int64 counts and versions fit a double by far
  enums: String,
  defaults: true,
  oneofs: true,
};

/** dist/protos/, copied there by the build (scripts/copy-protos.mjs). */
const PROTO_ROOT = fileURLToPath(new URL("./protos/", import.meta.url));

function load(): ProtoGrpcType {
  const definition = protoLoader.loadSync("recsys/v1/recsys.proto", {
    ...LOADER_OPTIONS,
    includeDirs: [PROTO_ROOT],
  });
  return grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
}

/** The loaded package: `api.recsys.v1.Recommender.service` is the service definition. */
export const api: ProtoGrpcType = load();
export const recommender = api.recsys.v1.Recommender.service;
export const admin = api.recsys.v1.Admin.service;
