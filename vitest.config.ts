import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The Effect 4 line's own tests: test/effect4/vitest.config.ts runs them.
    exclude: [...configDefaults.exclude, "test/**/*.effect4.test.ts"],
    // Real sockets and subprocesses: isolate files in their own processes, and give slow
    // CI machines room without making any test depend on timing.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 30_000,
    sequence: { concurrent: false },
    // The servers under test log what they are built to log (resets, drops, defects with their
    // stack): shown for a test that fails, kept out of a passing run.
    silent: "passed-only"
  }
})
