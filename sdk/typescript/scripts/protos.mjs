// Where the API's .proto files are: the repository's protos/ (the one source of the API).
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const PROTO_ROOT = resolve(PACKAGE_ROOT, "..", "..", "protos");
export const PROTO_DIR = join("recsys", "v1");

/** The .proto files of recsys.v1, relative to PROTO_ROOT. */
export function protoFiles() {
  return readdirSync(join(PROTO_ROOT, PROTO_DIR))
    .filter((name) => name.endsWith(".proto"))
    .sort()
    .map((name) => join(PROTO_DIR, name));
}
