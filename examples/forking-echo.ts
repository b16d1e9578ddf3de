/**
 * A handler with a race, for the simulation to find. It reads into a queue, and a writer fiber of
 * its own writes from the queue, in order; but the handler returns as soon as its input ends,
 * without waiting for the writer to drain the queue. The server then completes the connection
 * (its FIN) and closes the connection's scope, which interrupts the writer: what it had not
 * written yet is lost, and the peer sees a clean end short of its echo. It shows only when the peer's FIN arrives before the writer has caught up, which the
 * order of fibers and network events decides.
 *
 * It default-exports the handler, as `npm run simulate -- --handler` wants of a module:
 *
 *   npm run simulate -- --runs 2000 --seed 1 --handler examples/forking-echo.ts
 *
 * See examples/simulation-finds-a-race.ts for the same found, shrunk and replayed in code.
 */
import { Effect, Queue, Stream } from "effect"
import type { Scope } from "effect"
import type { Connection, Server } from "../src/index.js"
import { TestKit } from "../src/index.js"

const forkingEcho: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
  Effect.gen(function*() {
    const pending = yield* Queue.unbounded<Uint8Array>()
    // The writer: in order, one chunk after the other, in a fiber of the connection's scope (so
    // it does not outlive the connection), which nothing waits for.
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(pending), connection.write)))
    yield* Stream.runForEach(connection.stream, (chunk) => Queue.offer(pending, chunk))
    // The bug: returning here, with chunks maybe still queued.
  })

export default forkingEcho

/** What it should do: every byte back, then a FIN after the peer's (the model the simulation checks it against). */
export const protocol = TestKit.echo
