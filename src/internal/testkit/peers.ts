/**
 * Test peers: plain sockets (`node:net`, or the simulated network's, whichever transport the
 * fiber runs on) that do exactly what they are told, and record every byte each way and how their
 * connection ended. Nothing is read until a peer is told to read, so one never told is a stalled
 * reader.
 */
import { callback } from "#line/runtime"
import { Effect } from "effect"
import type { Scope } from "effect"
import type { Peer } from "../../TestKit.js"
import { connectWith } from "../connect.js"
import * as Socket from "../socket.js"
import * as TcpState from "../tcpState.js"
import * as Transport from "../transport.js"

/**
 * Connects a peer; the scope destroys its socket.
 *
 * @internal
 */
export const connect = (port: number, host = "127.0.0.1"): Effect.Effect<Peer, Error, Scope.Scope> =>
  Effect.flatMap(
    Transport.CurrentTransport,
    (transport) => Effect.map(connectWith(transport, host, port), (socket) => makePeer(socket, transport))
  )

const makePeer = (socket: Transport.Socket, transport: Transport.Transport): Peer => {
  const ends = TcpState.ends(socket)
  const sent: Array<Buffer> = []
  const received: Array<Buffer> = []
  let ending: "eof" | "reset" | "closed" | undefined
  let endedAt: number | undefined
  const waiters: Array<() => void> = []
  const settle = (how: "eof" | "reset" | "closed") => {
    if (ending !== undefined) return
    ending = how
    endedAt = transport.now()
    for (const wake of waiters.splice(0)) wake()
  }
  socket.on("data", (data: Buffer) => received.push(data))
  socket.on("end", () => settle(ends !== undefined && transport.endWasReset(socket, ends) === true ? "reset" : "eof"))
  socket.on("error", (error: NodeJS.ErrnoException) => settle(error.code === "ECONNRESET" ? "reset" : "closed"))
  socket.on("close", () => settle("closed"))
  socket.pause()
  return {
    socket,
    sent: () => Buffer.concat(sent),
    received: () => Buffer.concat(received),
    send: (data) =>
      Effect.sync(() => {
        if (socket.destroyed || socket.writableEnded) return
        sent.push(Buffer.from(data))
        socket.write(data)
      }),
    halfClose: Effect.sync(() => {
      if (!socket.destroyed) socket.end()
    }),
    startReading: Effect.sync(() => {
      socket.resume()
    }),
    stopReading: Effect.sync(() => {
      socket.pause()
    }),
    reset: Effect.sync(() => Socket.close(socket, "reset")),
    close: Effect.sync(() => {
      socket.destroy()
    }),
    endedAt: () => endedAt,
    readToEnd: callback((resume) => {
      socket.resume()
      if (ending !== undefined) return resume(Effect.succeed(ending))
      const wake = () => resume(Effect.succeed(ending!))
      waiters.push(wake)
      return Effect.sync(() => {
        const i = waiters.indexOf(wake)
        if (i >= 0) waiters.splice(i, 1)
      })
    })
  }
}
