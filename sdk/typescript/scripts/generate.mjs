// Generates the TypeScript types of recsys.v1 into src/generated (not committed) with
// @grpc/proto-loader's generator. The flags must match LOADER_OPTIONS in src/proto.ts: the
// generated types describe the objects that the runtime loader builds with those options
// (a unit test decodes a response and checks the shapes).
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { PACKAGE_ROOT, PROTO_ROOT, protoFiles } from "./protos.mjs";

const out = join(PACKAGE_ROOT, "src", "generated");
rmSync(out, { recursive: true, force: true });
const require = createRequire(import.meta.url);
const generator = require.resolve("@grpc/proto-loader/build/bin/proto-loader-gen-types.js");
execFileSync(
  process.execPath,
  [
    generator,
    "--longs=Number",
    "--enums=String",
    "--defaults",
    "--oneofs",
    "--includeComments",
    "--grpcLib=@grpc/grpc-js",
    "--importFileExtension=.js",
    "-I",
    PROTO_ROOT,
    "-O",
    out,
    ...protoFiles(),
  ],
  { stdio: "inherit" },
);
