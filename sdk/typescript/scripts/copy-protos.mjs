// The runtime loader reads the .proto files: ship a copy inside dist/ so the built package
// stands alone (installed from a tarball, it has no repository around it).
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { PACKAGE_ROOT, PROTO_ROOT, protoFiles } from "./protos.mjs";

for (const file of protoFiles()) {
  const target = join(PACKAGE_ROOT, "dist", "protos", file);
  mkdirSync(dirname(target), { recursive: true });
  cpSync(join(PROTO_ROOT, file), target);
}
