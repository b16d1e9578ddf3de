/**
 * The suite as Stryker runs it for each mutant of the test kit's own modules
 * (`test/stryker/testkit.config.json`): the tests of the kit, with fewer runs per property (each
 * mutant reruns every test that covers it). The kit's subprocess tests cannot kill a mutant of
 * this process, and are not covered by one. test/Protocols.test.ts and test/Parity.test.ts are left
 * out: every mutant of the runner is covered by them, and their loopback runs and searches for
 * broken variants made a run of the kit's mutants last hours on a shared 2-core machine.
 */
import * as path from "node:path"
import { defineConfig } from "vitest/config"

export default defineConfig({
  root: path.resolve(import.meta.dirname, "../.."),
  test: {
    include: [
      "test/TestKit.test.ts",
      "test/Simulation.test.ts",
      "test/Shutdown.test.ts"
    ],
    // Not the kit's: the fault-containment tests of Shutdown.test.ts use its peers only, at length;
    // the loopback property's runs wait out real deadlines, which the fixed scenarios cover.
    testNamePattern:
      /^(?!.*(reset storm|connection churn|open-files limit|do and whenever shutdown begins, every step))/,
    testTimeout: 60_000,
    hookTimeout: 30_000,
    sequence: { concurrent: false },
    env: { ECHO_PROPERTY_RUNS: "1", ECHO_SIM_RUNS: "50", ECHO_PROTOCOL_RUNS: "10", ECHO_MUTATION: "1" }
  }
})
