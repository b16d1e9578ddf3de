/**
 * The suite as Stryker runs it for each mutant: the tests of the library in this process only.
 * The CLI, example and package tests run subprocesses, which a mutant (switched on in this process) never
 * reaches, so they cannot kill one and are left out. Property runs are fewer: each mutant reruns
 * every test that covers it.
 */
import * as path from "node:path"
import { defineConfig } from "vitest/config"

export default defineConfig({
  root: path.resolve(import.meta.dirname, "../.."),
  test: {
    include: ["test/**/*.test.ts"],
    exclude: [
      "test/Cli.test.ts",
      "test/Examples.test.ts",
      "test/ForcedExit.test.ts",
      "test/ProcessFaults.test.ts",
      "test/Package.test.ts",
      // The docs' recipes: type-checked by a tsc subprocess, and run here by the tests they show.
      "test/Docs.test.ts",
      // The Effect 4 line's own tests: its line is not this runner's.
      "test/**/*.effect4.test.ts",
      "**/node_modules/**"
    ],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    sequence: { concurrent: false },
    env: { ECHO_PROPERTY_RUNS: "4", ECHO_SIM_RUNS: "200", ECHO_PROTOCOL_RUNS: "50", ECHO_MUTATION: "1" }
  }
})
