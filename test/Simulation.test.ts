/**
 * The shutdown property on the simulated network: the same server, handlers and invariants as on
 * loopback, with every timer on virtual time and every interleaving chosen by a seed, so that
 * thousands of runs take seconds and a failure replays exactly.
 */
import { firstFailure } from "#line/cause"
import { describe, expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Exit, Option, Stream } from "effect"
import * as fc from "fast-check"
import forkingEcho from "../examples/forking-echo.js"
import type { Connection, Server } from "../src/index.js"
import { TestKit } from "../src/index.js"
import { property } from "./utils/property.js"

const runs = Number(process.env.ECHO_SIM_RUNS ?? 1000)
// A failure prints its seed and path: set them here to replay it. The generator's seed is fixed,
// so that npm test plays the same runs every time (a test that passes or fails by chance is a
// defect); `npm run simulate -- --seed S` explores others.
const replay = {
  seed: Number(process.env.ECHO_SIM_SEED ?? 20261202),
  ...(process.env.ECHO_SIM_PATH === undefined ? {} : { path: process.env.ECHO_SIM_PATH, endOnFailure: true })
}
const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const

/** An echo written as a user would, on the pull, with a scoped resource per connection. */
const userEcho: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
  Effect.andThen(Effect.addFinalizer(() => Effect.void), Stream.runForEach(connection.stream, connection.write))

describe("the shutdown property on the simulated network", () => {
  it(
    "whatever peers do, whenever shutdown begins, on any network: every step and the end match the model",
    property(TestKit.simulation(timeouts), (run) => TestKit.simulate(run, timeouts), { numRuns: runs, ...replay }),
    120_000
  )

  it(
    "the same holds for a handler of the user's own, on the pull, with a scope per connection",
    property(
      TestKit.simulation(timeouts),
      (run) =>
        TestKit.simulate(run, { ...timeouts, handler: userEcho, protocol: TestKit.echo }).pipe(
          Effect.map((outcome) => {
            // The run watched the handlers: each one it started is accounted for.
            expect(outcome.handlers).toBeDefined()
          })
        ),
      { numRuns: Math.ceil(runs / 4), ...replay }
    ),
    120_000
  )

  it(
    "on the forced and crash paths too (a forced stop, a defect in the server's fiber): the echo's and a user's",
    property(
      TestKit.simulation({ ...timeouts, crashes: true }),
      (run) =>
        Effect.andThen(
          TestKit.simulate(run, timeouts),
          TestKit.simulate(run, { ...timeouts, handler: userEcho, protocol: TestKit.echo })
        ),
      { numRuns: Math.ceil(runs / 8), ...replay }
    ),
    120_000
  )

  it.effect("a burst of connects interrupted before it starts does not leave the run stuck (fiber turns in order)", () =>
    Effect.gen(function*() {
      // Shrunk by the property: with fiber turns in a random order, the interruption of the
      // Flood's forEach ran before the fiber that starts its children, which then waited forever.
      const scenario: TestKit.Scenario = {
        operations: [{ _tag: "Open" }, { _tag: "HalfClose", peer: 0 }, { _tag: "Flood", peers: 1 }]
      }
      const network = { receiveBuffer: 1024, sendBuffer: 1024, maxRead: 64, somaxconn: 1 }
      for (const target of [{}, { handler: userEcho, protocol: TestKit.echo }]) {
        const outcome = yield* TestKit.simulate({ scenario, seed: 2147483628, network }, { ...timeouts, ...target })
        expect(outcome.peers[0]).toMatchObject({ ending: "eof", halfClosed: "while serving" })
      }
    }))

  it.effect("the same seed and scenario replay the same run: the same trace, event for event", () =>
    Effect.gen(function*() {
      const [run] = fc.sample(TestKit.simulation(timeouts), { seed: 3, numRuns: 1 })
      for (const strategy of [TestKit.random, TestKit.pct()]) {
        const once = (seed: number) => TestKit.simulate({ ...run!, seed }, { ...timeouts, strategy })
        const first = yield* once(run!.seed)
        const second = yield* once(run!.seed)
        expect(second.trace).toBe(first.trace)
        expect(second.steps).toBe(first.steps)
        expect(second.peers).toEqual(first.peers)
        // Another seed is another interleaving.
        expect((yield* once(run!.seed + 1)).trace).not.toBe(first.trace)
      }
    }))

  it.effect("a failure names its seed, trace and invariant, and ends with the events that led to it", () =>
    Effect.gen(function*() {
      const scenario: TestKit.Scenario = { operations: [{ _tag: "Exchange", data: new Uint8Array(20_000).fill(7) }] }
      let failure: TestKit.SimulationFailure | undefined
      for (let seed = 0; seed < 50 && failure === undefined; seed++) {
        const exit = yield* Effect.exit(
          TestKit.simulate(
            { scenario, seed, network: { maxRead: 1460 } },
            { ...timeouts, handler: forkingEcho, protocol: TestKit.echo }
          )
        )
        if (Exit.isFailure(exit)) failure = Option.getOrUndefined(firstFailure(exit.cause))
      }
      expect(failure).toBeDefined()
      expect(failure!.message).toMatch(/a clean end after \d+ of 20000 bytes: a cut-off answer that looks complete/)
      expect(failure!.message).toMatch(/simulation seed \d+, trace [0-9a-f]{8}/)
      expect(failure!.cause).toMatchObject({ _tag: "ShutdownViolation", reason: "CutOffThenFin" })
      expect(failure!.lines.length).toBeGreaterThan(0)
    }))
})

describe("runSimulation", () => {
  const forking = { ...timeouts, handler: forkingEcho, protocol: TestKit.echo }

  it.effect("reports the failing run's own trace, which its replay prints again", () =>
    Effect.gen(function*() {
      // Shrinking plays many runs after the first failure, passing ones among them: the trace
      // reported is the shrunk counterexample's.
      const found = yield* TestKit.runSimulation({ ...forking, runs: 2000, seed: 1 })
      expect(found.failures).toBe(1)
      const failure = found.failure!
      expect(failure.reason).toBe("CutOffThenFin")
      expect(failure.scenario).toMatch(/^Open, /)
      const replayed = yield* TestKit.runSimulation({ ...forking, seed: found.seed, path: failure.path })
      expect(replayed.runs).toBe(1)
      expect(replayed.failure?.trace).toBe(failure.trace)
      expect(replayed.failure?.error).toBe(failure.error)
    }))

  it.effect("with PCT's scheduler, the same race is found, and replays the same", () =>
    Effect.gen(function*() {
      const strategy = TestKit.pct({ depth: 3, steps: 2000 })
      const found = yield* TestKit.runSimulation({ ...forking, strategy, runs: 2000, seed: 1 })
      expect(found.strategy).toBe("pct(depth 3, 2000 steps)")
      expect(found.failure?.reason).toBe("CutOffThenFin")
      const replayed = yield* TestKit.runSimulation({
        ...forking,
        strategy,
        seed: found.seed,
        path: found.failure!.path
      })
      expect(replayed.failure?.trace).toBe(found.failure!.trace)
    }))

  it.effect("a correct handler holds, and the report counts every run", () =>
    Effect.gen(function*() {
      const held = yield* TestKit.runSimulation({ ...timeouts, handler: userEcho, protocol: TestKit.echo, runs: 50 })
      expect(held).toMatchObject({ runs: 50, failures: 0, strategy: "random" })
      expect(held.failure).toBeUndefined()
    }))
})
