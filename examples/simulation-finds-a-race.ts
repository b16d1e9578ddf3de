/**
 * A handler with a bug that only some interleavings show, found by the simulated network, shrunk
 * to a small scenario, and replayed exactly from its seed.
 *
 * The bug (examples/forking-echo.ts): a writer fiber writes back, in order, what the handler
 * queues for it, and the handler returns when its input ends without waiting for the writer. The
 * server then completes the connection (its FIN) and closes the connection's scope, which
 * interrupts the writer: the peer gets a clean end after part of its echo. Whether that happens
 * depends on the order in which the fibers and the network's events run, which in the simulation
 * a seed decides: it is found in a few runs, shrunk to one exchange, and replayed exactly.
 *
 * Run: npx tsx examples/simulation-finds-a-race.ts
 */
import { Effect, Exit, FastCheck as fc, Stream } from "effect"
import type { Scope } from "effect"
import type { Connection, Server } from "../src/index.js"
import { TestKit } from "../src/index.js"
// The bug: each write in a fiber of its own, not awaited.
import forkingEcho from "./forking-echo.js"

/** The fix: each write awaited before the next chunk is read, and before the handler returns. */
const echo: Server.Handler<Connection.ConnectionError> = (connection) =>
  Stream.runForEach(connection.stream, connection.write)

const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const

/** The shutdown property on the simulated network, for one handler. */
const property = (handler: Server.Handler<Connection.ConnectionError, Scope.Scope>, replayPath?: string) =>
  fc.property(TestKit.simulated(replayPath === undefined ? timeouts : { ...timeouts, replayPath }), (run) => {
    const exit = Effect.runSyncExit(
      TestKit.simulate(run.commands, { ...timeouts, seed: run.seed, network: run.network }, handler)
    )
    if (Exit.isFailure(exit)) throw exit.cause._tag === "Fail" ? exit.cause.error : new Error(String(exit.cause))
  })

const found = fc.check(property(forkingEcho), { numRuns: 2000, seed: 1 })
if (!found.failed || found.counterexample === null) {
  console.log("the bug was not found in 2000 runs")
  process.exit(1)
}
const [run] = found.counterexample as [TestKit.Simulated]
const failure = found.errorInstance as TestKit.SimulationFailure
console.log(`found after ${found.numRuns} runs, shrunk ${found.numShrinks} times:`)
console.log(`  scenario: ${String(run.commands)}`)
console.log(`  world seed ${run.seed}, network ${JSON.stringify(run.network)}`)
console.log(`  ${String(failure.cause)}`)
console.log(`  trace ${failure.trace}; the last events:\n    ${failure.lines.slice(-8).join("\n    ")}`)
const replayPath = TestKit.replayPathOf(run.commands)
console.log(`  replay: fast-check seed ${found.seed}, path ${found.counterexamplePath}, replayPath ${replayPath}`)

// The same seed, path and replayPath replay the same shrunk run: the same failure, the same trace.
const replayed = fc.check(property(forkingEcho, replayPath), {
  seed: found.seed,
  path: found.counterexamplePath!,
  endOnFailure: true
})
const again = replayed.errorInstance as TestKit.SimulationFailure | null
console.log(
  `replayed: ${
    again !== null && again.trace === failure.trace ? "the same run, trace " + again.trace : "a different run"
  }`
)

// The fixed handler holds on the same runs.
const fixed = fc.check(property(echo), { numRuns: 500, seed: 1 })
console.log(`with the writes awaited: ${fixed.failed ? "still fails" : `the property holds for ${fixed.numRuns} runs`}`)
process.exit(fixed.failed || again?.trace !== failure.trace ? 1 : 0)
