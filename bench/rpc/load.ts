/**
 * The bench's @effect/rpc client: `connections` RpcClients (each its own TCP connection, on
 * @effect/platform-node's socket), each with `inFlight` fibers calling `Echo` one after another,
 * for a warm-up and then `seconds`. The same client for either server.
 *
 *   node dist/bench/rpc/load.js <port> <seconds> [connections] [inFlight]
 *
 * Prints `{"measuring":true}` when the counted window opens, then one JSON line: the calls
 * completed in the window (units), failed calls (errors), and the latency percentiles in ms.
 */
import { NodeSocket } from "@effect/platform-node"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { Api } from "./api.js"

const [portText, secondsText, connectionsText = "8", inFlightText = "8"] = process.argv.slice(2)
const port = Number(portText)
const seconds = Number(secondsText)
const warmup = Number(process.env.BENCH_WARMUP ?? 0.5)
const connections = Number(connectionsText)
const inFlight = Number(inFlightText)

const connect = Effect.gen(function*() {
  const scope = yield* Effect.scope
  const protocol = yield* Layer.buildWithScope(
    RpcClient.layerProtocolSocket().pipe(
      Layer.provide(NodeSocket.layerNet({ host: "127.0.0.1", port })),
      Layer.provide(RpcSerialization.layerNdjson)
    ),
    scope
  )
  return yield* RpcClient.make(Api).pipe(Effect.provide(protocol))
})

const program = Effect.gen(function*() {
  const clients = yield* Effect.all(Array.from({ length: connections }, () => connect), { concurrency: "unbounded" })
  let counting = false
  let done = false
  const latencies: Array<number> = []
  let errors = 0
  const text = "x".repeat(64)
  const caller = (client: (typeof clients)[number]) =>
    Effect.gen(function*() {
      while (!done) {
        const start = performance.now()
        const ok = yield* Effect.match(client.Echo({ text }), { onFailure: () => false, onSuccess: (t) => t === text })
        if (!counting) continue
        if (ok) latencies.push(performance.now() - start)
        else errors++
      }
    })
  const callers = yield* Effect.forkAll(
    clients.flatMap((client) => Array.from({ length: inFlight }, () => caller(client)))
  )
  yield* Effect.sleep(`${warmup} seconds`)
  counting = true
  process.stdout.write(JSON.stringify({ measuring: true }) + "\n")
  yield* Effect.sleep(`${seconds} seconds`)
  counting = false
  done = true
  yield* callers.await
  const sorted = latencies.sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  process.stdout.write(
    JSON.stringify({ mode: "rpc", units: sorted.length, errors, p50: at(0.5), p99: at(0.99) }) + "\n"
  )
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error) => {
    process.stdout.write(JSON.stringify({ error: String(error) }) + "\n")
    process.exit(1)
  }
)
