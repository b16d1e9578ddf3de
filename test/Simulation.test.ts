/**
 * The shutdown property on the simulated network: the same server, handlers and invariants as on
 * loopback, with every timer on virtual time and every interleaving chosen by a seed, so that
 * thousands of runs take seconds and a failure replays exactly.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Exit, FastCheck as fc, Queue, Stream } from "effect"
import type { Connection, Server } from "../src/index.js"
import { TestKit } from "../src/index.js"

const runs = Number(process.env.ECHO_SIM_RUNS ?? 1000)
// A failure prints its seed and path (and the commands' replayPath): set them here to replay it.
// The generator's seed is fixed, so that npm test plays the same runs every time (a test that
// passes or fails by chance is a defect); `npm run simulate -- --seed S` explores others.
const replay = {
  seed: Number(process.env.ECHO_SIM_SEED ?? 20261202),
  ...(process.env.ECHO_SIM_PATH === undefined ? {} : { path: process.env.ECHO_SIM_PATH, endOnFailure: true })
}
const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const
const generation: TestKit.Generation = {
  ...timeouts,
  ...(process.env.ECHO_SIM_REPLAY === undefined ? {} : { replayPath: process.env.ECHO_SIM_REPLAY })
}
const deadline = 400 + 500

/** Plays one generated run, and checks what only virtual time can: the deadline, to the millisecond. */
const check = <E, R>(run: TestKit.Simulated, handler?: Server.Handler<E, R>) =>
  Effect.map(
    TestKit.simulate(run.commands, { ...timeouts, seed: run.seed, network: run.network }, handler),
    (outcome) => {
      expect(outcome.shutdownMillis).toBeLessThanOrEqual(deadline)
    }
  )

describe("the shutdown property on the simulated network", () => {
  it.effect.prop(
    "whatever peers do, whenever shutdown begins, on any network: every step and the end match the model",
    { run: TestKit.simulated(generation) },
    ({ run }) => check(run),
    { timeout: 120_000, fastCheck: { numRuns: runs, ...replay } }
  )

  it.effect.prop(
    "the same holds for a handler of the user's own, on the pull, with a scope per connection",
    { run: TestKit.simulated(generation) },
    ({ run }) => {
      const handler: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
        Effect.zipRight(Effect.addFinalizer(() => Effect.void), Stream.runForEach(connection.stream, connection.write))
      return check(run, handler)
    },
    { timeout: 120_000, fastCheck: { numRuns: Math.ceil(runs / 4), ...replay } }
  )

  it.effect("a burst of connects interrupted before it starts does not leave the run stuck (fiber turns in order)", () =>
    Effect.gen(function*() {
      // Shrunk by the property: with fiber turns in a random order, the interruption of the
      // Flood's forEach ran before the fiber that starts its children, which then waited forever.
      const scenario: TestKit.Scenario = {
        operations: [{ _tag: "Open" }, { _tag: "HalfClose", peer: 0 }, { _tag: "Flood", peers: 1 }]
      }
      const network = { receiveBuffer: 1024, sendBuffer: 1024, maxRead: 64, somaxconn: 1 }
      const handler: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
        Effect.zipRight(Effect.addFinalizer(() => Effect.void), Stream.runForEach(connection.stream, connection.write))
      for (const chosen of [undefined, handler]) {
        const outcome = yield* TestKit.simulate(scenario, { ...timeouts, seed: 2147483628, network }, chosen)
        expect(outcome.peers[0]).toMatchObject({ ending: "eof", halfClosed: "while serving" })
      }
    }))

  it.effect("the same seed and scenario replay the same run: the same trace, event for event", () =>
    Effect.gen(function*() {
      const [run] = fc.sample(TestKit.simulated(generation), { seed: 3, numRuns: 1 })
      const once = (seed: number) =>
        TestKit.simulate(
          TestKit.operations(run!.commands).length > 0
            ? { operations: TestKit.operations(run!.commands) }
            : run!.commands,
          {
            ...timeouts,
            seed,
            network: run!.network
          }
        )
      const first = yield* once(run!.seed)
      const second = yield* once(run!.seed)
      expect(second.trace).toBe(first.trace)
      expect(second.steps).toBe(first.steps)
      expect(second.peers).toEqual(first.peers)
      // Another seed is another interleaving.
      expect((yield* once(run!.seed + 1)).trace).not.toBe(first.trace)
    }))

  it.effect("a failure names its seed and trace, and ends with the events that led to it", () =>
    Effect.gen(function*() {
      // A handler whose writer fiber nothing waits for: it returns when its input ends, and the
      // connection's scope then interrupts the writer with chunks still queued.
      const forking: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
        Effect.gen(function*() {
          const pending = yield* Queue.unbounded<Uint8Array>()
          yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(pending), connection.write)))
          yield* Stream.runForEach(connection.stream, (chunk) => Queue.offer(pending, chunk))
        })
      const scenario: TestKit.Scenario = {
        operations: [{ _tag: "Exchange", data: new Uint8Array(20_000).fill(7) }]
      }
      let failure: TestKit.SimulationFailure | undefined
      for (let seed = 0; seed < 50 && failure === undefined; seed++) {
        const exit = yield* Effect.exit(
          TestKit.simulate(scenario, { ...timeouts, seed, network: { maxRead: 1460 } }, forking)
        )
        if (Exit.isFailure(exit) && exit.cause._tag === "Fail") failure = exit.cause.error
      }
      expect(failure).toBeDefined()
      expect(failure!.message).toMatch(/a clean end after \d+ of 20000 bytes/)
      expect(failure!.message).toMatch(/simulation seed \d+, trace [0-9a-f]{8}/)
      expect(failure!.lines.length).toBeGreaterThan(0)
    }))
})
