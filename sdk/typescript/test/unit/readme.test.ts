/** The README's TypeScript example type-checks against the built SDK (it stays true). */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";

// build/test/test/unit -> the package root, and the repository's README above it.
const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const README = join(PACKAGE, "..", "..", "README.md");

it("the README's TypeScript examples compile", () => {
  const blocks = [...readFileSync(README, "utf8").matchAll(/```ts\n(.*?)```/gs)];
  assert.ok(blocks.length > 0, "no TypeScript example in the README");
  // Inside the package, so that "@recsys/client" resolves to this package (self-reference).
  const files = blocks.map((block, index) => {
    const file = join(PACKAGE, "build", "readme", `example${index}.ts`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, block[1]!);
    return file;
  });
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const args = ["--noEmit", "--strict", "--noUncheckedIndexedAccess", "--skipLibCheck"];
  const module = ["--module", "NodeNext", "--moduleResolution", "NodeNext", "--target", "ES2022"];
  try {
    execFileSync(process.execPath, [tsc, ...args, ...module, "--types", "node", ...files], {
      cwd: PACKAGE,
      encoding: "utf8",
    });
  } catch (error) {
    assert.fail(`tsc rejected the README example:\n${(error as { stdout: string }).stdout}`);
  }
});
