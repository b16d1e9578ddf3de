import * as path from "node:path"
import { defineConfig } from "vitest/config"

export default defineConfig({
  root: path.resolve(import.meta.dirname, "../.."),
  test: {
    include: ["test/Workers.test.ts", "test/Lifecycle.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    sequence: { concurrent: false },
    env: { ECHO_PROPERTY_RUNS: "4", ECHO_SIM_RUNS: "200", ECHO_MUTATION: "1" }
  }
})
