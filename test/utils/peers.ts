/**
 * Peers that misbehave, on plain `node:net` so they do exactly what they are told.
 */
import { callback } from "#line/runtime"
import { Effect } from "effect"
import type { Scope } from "effect"
import { TestKit } from "../../src/index.js"
import * as TcpState from "../../src/internal/tcpState.js"

/** Connects a paused socket that nothing reads; the scope destroys it. */
export const rawConnect = (port: number): Effect.Effect<TestKit.PeerSocket, Error, Scope.Scope> =>
  Effect.map(TestKit.connect(port), (peer) => peer.socket)

/**
 * A peer that writes `bytes` and never reads: its writes pile up once the server stops reading.
 * Returns the socket and the payload (so a later read can check the echo).
 */
export const stallingPeer = (port: number, bytes: number) =>
  Effect.map(rawConnect(port), (socket) => {
    const payload = Buffer.alloc(bytes)
    for (let i = 0; i < bytes; i++) payload[i] = (i * 31 + 7) & 0xff
    socket.write(payload)
    return { socket, payload }
  })

/**
 * Reads everything until EOF (or a reset, which ends the read with what came before it). A reset
 * that Node reports as a clean end is told apart by the kernel, and reported as ECONNRESET.
 */
export const readToEnd = (socket: TestKit.PeerSocket): Effect.Effect<{ data: Buffer; error?: string }> =>
  callback((resume) => {
    if (socket.readableEnded || socket.destroyed) return resume(Effect.succeed({ data: Buffer.alloc(0) }))
    const ends = TcpState.ends(socket)
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.once("end", () =>
      resume(Effect.succeed(
        ends !== undefined && TcpState.wasReset(ends) === true
          ? { data: Buffer.concat(chunks), error: "ECONNRESET" }
          : { data: Buffer.concat(chunks) }
      )))
    socket.once(
      "error",
      (error: NodeJS.ErrnoException) =>
        resume(Effect.succeed({ data: Buffer.concat(chunks), error: error.code ?? error.message }))
    )
    socket.once("close", () => resume(Effect.succeed({ data: Buffer.concat(chunks) })))
    socket.resume()
  })

/** Polls `read` until `done` holds, at most `attempts` times: bounded, never a fixed sleep. */
export const eventually = <A, E, R>(
  read: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  attempts = 500
): Effect.Effect<A, E | Error, R> =>
  Effect.gen(function*() {
    for (let i = 0; i < attempts; i++) {
      const value = yield* read
      if (done(value)) return value
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.fail(new Error(`condition not reached after ${attempts} polls`))
  })

/** Polls `read` until it returns the same value `times` polls in a row: the system is at rest. */
export const settled = <A, E, R>(read: Effect.Effect<A, E, R>, times = 10): Effect.Effect<A, E | Error, R> =>
  Effect.gen(function*() {
    let last = yield* read
    let same = 0
    for (let i = 0; i < 1000 && same < times; i++) {
      yield* Effect.sleep("10 millis")
      const next = yield* read
      same = JSON.stringify(next) === JSON.stringify(last) ? same + 1 : 0
      last = next
    }
    if (same < times) return yield* Effect.fail(new Error("never settled"))
    return last
  })
