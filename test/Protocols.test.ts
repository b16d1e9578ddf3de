/**
 * The shutdown property for four protocols, each with its own model of a complete answer, on the
 * simulated network and on loopback with the same model: the echo, uppercase lines
 * (examples/uppercase-lines.ts), a length-prefixed request/response (examples/length-prefixed.ts)
 * and an @effect/rpc server through PlatformSocketServer (examples/rpc-protocol.ts). For each, a
 * deliberately broken variant that the kit finds, shrinks to a few steps, and replays exactly.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import forkingEcho from "../examples/forking-echo.js"
import lengthPrefixed, { protocol as framesProtocol, raceDrain } from "../examples/length-prefixed.js"
import rpc, { onLayer } from "../examples/rpc-protocol.js"
import uppercaseLines, { protocol as linesProtocol, withoutBye } from "../examples/uppercase-lines.js"
import { TestKit } from "../src/index.js"

const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const
const simulatedRuns = Number(process.env.ECHO_PROTOCOL_RUNS ?? 50)
const loopbackRuns = Number(process.env.ECHO_PROPERTY_RUNS ?? 2)

interface Case {
  readonly name: string
  readonly target: TestKit.Target<any, any>
  readonly broken: {
    readonly what: string
    readonly target: TestKit.Target<any, any>
    /** A seed that finds it soon (docs/testing.md has the median over 20 seeds). */
    readonly seed: number
    readonly reason: TestKit.ViolationReason
  }
}

const cases: ReadonlyArray<Case> = [
  {
    name: "the echo",
    target: {},
    broken: {
      what: "a writer fiber nobody waits for (examples/forking-echo.ts)",
      target: { handler: forkingEcho, protocol: TestKit.echo },
      seed: 1,
      reason: "CutOffThenFin"
    }
  },
  {
    name: "uppercase lines",
    target: { handler: uppercaseLines, protocol: linesProtocol },
    broken: { what: "no BYE at the drain notice", target: withoutBye, seed: 1, reason: "CutOffThenFin" }
  },
  {
    name: "length-prefixed request/response",
    target: { handler: lengthPrefixed, protocol: framesProtocol },
    broken: { what: "the loop raced against the drain notice", target: raceDrain, seed: 1, reason: "CutOffThenFin" }
  },
  {
    name: "@effect/rpc through PlatformSocketServer",
    target: rpc,
    broken: {
      what: "the RpcServer on PlatformSocketServer.layer, not serve",
      target: onLayer,
      seed: 20,
      reason: "Hang"
    }
  }
]

// Each target needs nothing but the scope the server gives each connection.
const run = <A, E>(effect: Effect.Effect<A, E, any>) => effect as Effect.Effect<A, E>

for (const { broken, name, target } of cases) {
  const protocol = target.protocol ?? TestKit.echo

  describe(name, () => {
    it.effect(`holds on the simulated network: ${simulatedRuns} generated runs`, () =>
      Effect.gen(function*() {
        const report = yield* run(
          TestKit.runSimulation({ ...timeouts, ...target, runs: simulatedRuns, seed: 20261207 })
        )
        expect(report.failure).toBeUndefined()
        expect(report.runs).toBe(simulatedRuns)
      }), 120_000)

    it.live.prop(
      "holds on loopback, with the same model",
      { scenario: TestKit.scenario({ ...timeouts, protocol }) },
      ({ scenario }) => Effect.asVoid(run(TestKit.checkShutdown(scenario, { ...timeouts, ...target }))),
      { timeout: 120_000, fastCheck: { numRuns: loopbackRuns, seed: 20261207 } }
    )

    it.effect(
      `its broken variant (${broken.what}) is found, shrunk, and replayed to the same trace`,
      () =>
        Effect.gen(function*() {
          const found = yield* run(
            TestKit.runSimulation({ ...timeouts, ...broken.target, runs: 2000, seed: broken.seed })
          )
          const failure = found.failure!
          expect(failure).toBeDefined()
          expect(failure.reason).toBe(broken.reason)
          // Shrunk: a handful of steps, not the dozens generated.
          expect(failure.scenario.split(", ").length).toBeLessThanOrEqual(5)
          const replayed = yield* run(
            TestKit.runSimulation({ ...timeouts, ...broken.target, seed: found.seed, path: failure.path })
          )
          expect(replayed.runs).toBe(1)
          expect(replayed.failure).toMatchObject({
            trace: failure.trace,
            error: failure.error,
            scenario: failure.scenario
          })
        }),
      120_000
    )
  })
}
