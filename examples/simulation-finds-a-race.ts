/**
 * A handler with a bug that only some interleavings show, found by the simulated network, shrunk
 * to a small scenario, and replayed exactly from its seed and path.
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
import { Effect, Stream } from "effect"
import type { Connection, Server } from "../src/index.js"
import { TestKit } from "../src/index.js"
// The bug: the writer fiber, not awaited.
import forkingEcho from "./forking-echo.js"

/** The fix: each write awaited before the next chunk is read, and before the handler returns. */
const echo: Server.Handler<Connection.ConnectionError> = (connection) =>
  Stream.runForEach(connection.stream, connection.write)

const options = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis", protocol: TestKit.echo } as const

const program = Effect.gen(function*() {
  const found = yield* TestKit.runSimulation({ ...options, handler: forkingEcho, runs: 2000, seed: 1 })
  if (found.failure === undefined) {
    console.log("the bug was not found in 2000 runs")
    return 1
  }
  const { failure } = found
  console.log(`found after ${found.runs} runs, shrunk ${failure.shrinks} times:`)
  console.log(`  scenario: ${failure.scenario}`)
  console.log(`  world seed ${failure.world.seed}, network ${JSON.stringify(failure.world.network)}`)
  console.log(`  ${failure.error}`)
  console.log(`  trace ${failure.trace}; the last events:\n    ${failure.lastEvents.slice(-8).join("\n    ")}`)
  console.log(`  replay: seed ${found.seed}, path ${failure.path}`)

  // The same seed and path replay the same shrunk run: the same failure, the same trace.
  const again = yield* TestKit.runSimulation({ ...options, handler: forkingEcho, seed: found.seed, path: failure.path })
  const same = again.failure?.trace === failure.trace
  console.log(`replayed: ${same ? `the same run, trace ${failure.trace}` : "a different run"}`)

  // The fixed handler holds on the same runs.
  const fixed = yield* TestKit.runSimulation({ ...options, handler: echo, runs: 500, seed: 1 })
  console.log(
    `with the writes awaited: ${fixed.failures > 0 ? "still fails" : `the property holds for ${fixed.runs} runs`}`
  )
  return fixed.failures > 0 || !same ? 1 : 0
})

process.exitCode = Effect.runSync(program)
