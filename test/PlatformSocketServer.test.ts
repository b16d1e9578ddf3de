/**
 * Code written against @effect/platform's SocketServer and Socket, served by this server: the
 * same bytes back, the server's backpressure, limits and shutdown, and its judgement of how a
 * connection ended.
 */
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Metric, MetricLabel, Scope } from "effect"
import * as net from "node:net"
import { Client, Metrics, PlatformSocketServer } from "../src/index.js"

const errors = (reason: string) =>
  Effect.map(
    Metric.value(Metric.taggedWithLabels(Metrics.connectionErrors, [MetricLabel.make("reason", reason)])),
    (state) => state.count
  )

/** The platform's echo: every chunk written back, then the writer's release half-closes. */
const echo = (socket: Socket.Socket) => Effect.scoped(Effect.flatMap(socket.writer, (write) => socket.run(write)))

/** Builds the layer in a scope of its own, so a test can close it (the server's shutdown). */
const start = (options: Parameters<typeof PlatformSocketServer.layer>[0]) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(PlatformSocketServer.layer(options), scope)
    const server = Context.get(context, SocketServer.SocketServer)
    const port = server.address._tag === "TcpAddress" ? server.address.port : 0
    return { scope, server, port }
  })

/** A raw peer: connect, and keep every byte it receives. */
const peer = (port: number, options: { readonly allowHalfOpen?: boolean } = {}) =>
  Effect.async<{ socket: net.Socket; received: Array<Buffer>; ended: Promise<"end" | "reset"> }>((resume) => {
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: options.allowHalfOpen === true })
    const received: Array<Buffer> = []
    socket.on("data", (data: Buffer) => received.push(data))
    const ended = new Promise<"end" | "reset">((done) => {
      socket.once("end", () => done("end"))
      socket.once("error", () => done("reset"))
    })
    socket.once("connect", () => resume(Effect.succeed({ socket, received, ended })))
  })

describe("PlatformSocketServer", () => {
  it.live("SocketServer.run with the platform's echo returns exactly the bytes sent, then EOF", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const running = yield* Effect.forkDaemon(server.run(echo))
      // Bytes that are not UTF-8 (0x80, 0xff) too: a chunk is written as the bytes it holds, never as text.
      const payload = [
        Buffer.from("hello, "),
        Buffer.alloc(256 * 1024, 7),
        Buffer.from([0x80, 0xff, 0]),
        Buffer.from("platform\n")
      ]
      const back = yield* Client.roundTrip({ port }, payload)
      expect(Buffer.from(back).equals(Buffer.concat(payload))).toBe(true)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a handler gets the services of the fiber that called run, whether its peer came before run or after", () =>
    Effect.gen(function*() {
      class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
      const { port, scope, server } = yield* start({ port: 0 })
      const greet = (socket: Socket.Socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          yield* write(`${yield* Greeting}\n`)
        }))
      // This peer arrives before any run: it waits, unread, for one.
      const early = yield* peer(port)
      const running = yield* Effect.forkDaemon(Effect.provideService(server.run(greet), Greeting, "hello"))
      const late = yield* peer(port)
      for (const p of [early, late]) {
        expect(yield* Effect.promise(() => p.ended)).toBe("end")
        expect(Buffer.concat(p.received).toString()).toBe("hello\n")
      }
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("the next chunk is read only after the handler's effect for the previous one completed", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const release = yield* Deferred.make<void>()
      let calls = 0
      let bytes = 0
      const running = yield* Effect.forkDaemon(server.run((socket) =>
        socket.run((data) => {
          calls++
          bytes += data.length
          // The first chunk's effect waits: nothing more may be read meanwhile.
          return calls === 1 ? Deferred.await(release) : Effect.void
        })
      ))
      const { socket } = yield* peer(port)
      const total = 32 * 1024 * 1024
      const flushed = new Promise<void>((done) => socket.write(Buffer.alloc(total, 1), () => done()))
      // Wait until the peer's bytes stop moving (bounded): the kernel's buffers are full.
      let written = -1
      for (let i = 0; i < 100 && socket.bytesWritten !== written; i++) {
        written = socket.bytesWritten
        yield* Effect.sleep("100 millis")
      }
      expect(calls).toBe(1)
      expect(socket.writableLength).toBeGreaterThan(0)
      yield* Deferred.succeed(release, undefined)
      yield* Effect.promise(() => flushed)
      socket.end()
      // Everything arrives once the handler lets go, in as many calls as it takes.
      for (let i = 0; i < 200 && bytes < total; i++) yield* Effect.sleep("50 millis")
      expect(bytes).toBe(total)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("maxConnections holds for platform handlers: a second peer waits, unread, until the first is done", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0, maxConnections: 1 })
      const served: Array<string> = []
      const running = yield* Effect.forkDaemon(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          yield* socket.run((data) => {
            served.push(Buffer.from(data).toString())
            return write(data)
          })
        }))
      ))
      const first = yield* peer(port)
      first.socket.write("first")
      for (let i = 0; i < 100 && served.length === 0; i++) yield* Effect.sleep("20 millis")
      const second = yield* peer(port)
      second.socket.write("second")
      second.socket.end()
      // Bounded wait: the second is not served while the first holds the only slot.
      yield* Effect.sleep("300 millis")
      expect(served).toEqual(["first"])
      first.socket.end()
      expect(yield* Effect.promise(() => second.ended)).toBe("end")
      expect(served).toEqual(["first", "second"])
      expect(Buffer.concat(second.received).toString()).toBe("second")
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a peer's reset, turned into a defect by the handler, is counted as Reset, not as a bug", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const resets = yield* errors("Reset")
      const defects = yield* errors("Defect")
      const started = yield* Deferred.make<void>()
      const running = yield* Effect.forkDaemon(
        server.run((socket) =>
          Effect.andThen(Deferred.succeed(started, undefined), Effect.orDie(socket.run(() => Effect.void)))
        )
      )
      const { socket } = yield* peer(port)
      socket.write("x")
      yield* Deferred.await(started)
      yield* Effect.sleep("50 millis")
      socket.resetAndDestroy()
      for (let i = 0; i < 100 && (yield* errors("Reset")) === resets; i++) yield* Effect.sleep("20 millis")
      expect(yield* errors("Reset")).toBe(resets + 1)
      expect(yield* errors("Defect")).toBe(defects)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("at shutdown socket.run returns between chunks: an idle peer gets a FIN, not a cut-off", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0, shutdownTimeout: "30 seconds" })
      const cut = yield* errors("ShutdownDeadline")
      const running = yield* Effect.forkDaemon(server.run(echo))
      const idle = yield* peer(port)
      idle.socket.write("before shutdown")
      for (let i = 0; i < 100 && idle.received.length === 0; i++) yield* Effect.sleep("20 millis")
      // The peer closes its side once it sees ours, as a well-behaved client does.
      idle.ended.then(() => idle.socket.end())
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.promise(() => idle.ended)).toBe("end")
      expect(Buffer.concat(idle.received).toString()).toBe("before shutdown")
      expect(yield* errors("ShutdownDeadline")).toBe(cut)
    }))

  it.live("a close written from another fiber ends socket.run at once, with no further chunk from the peer", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const returned = yield* Deferred.make<Exit.Exit<void, unknown>>()
      const closes = yield* errors("SocketClosed")
      const failures = yield* errors("HandlerError")
      const running = yield* Effect.forkDaemon(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          // The chunk handler returns at once; the answer and the close come from a fiber of their own.
          // The run then fails with the close (code 1000, a normal close), as the platform's does.
          const ran = yield* Effect.exit(socket.run(() =>
            Effect.asVoid(Effect.forkDaemon(Effect.andThen(write("bye\n"), write(new Socket.CloseEvent(1000)))))
          ))
          yield* Deferred.succeed(returned, ran)
        }))
      ))
      // Half-open: Node's default answers the server's FIN with its own, which would end the run too.
      const quiet = yield* peer(port, { allowHalfOpen: true })
      quiet.socket.write("hello")
      expect(yield* Effect.promise(() => quiet.ended)).toBe("end")
      // The peer sends nothing more and keeps its side open: only the close can end the run.
      const ran = yield* Deferred.await(returned)
      expect(Exit.isFailure(ran) && Cause.pretty(ran.cause)).toContain("1000")
      quiet.socket.end()
      expect(Buffer.concat(quiet.received).toString()).toBe("bye\n")
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
      // A normal close: once the connection is done, it is counted neither as closed by the
      // protocol (SocketClosed) nor as failed.
      expect(yield* errors("SocketClosed")).toBe(closes)
      expect(yield* errors("HandlerError")).toBe(failures)
    }))

  it.live("a CloseEvent other than 1000 ends the connection as the peer's doing, after what was written", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const closes = yield* errors("SocketClosed")
      const running = yield* Effect.forkDaemon(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          yield* socket.run(() =>
            Effect.andThen(write("ERR bad input\n"), write(new Socket.CloseEvent(1009, "bad input")))
          )
        }))
      ))
      const bad = yield* peer(port)
      bad.socket.write("garbage")
      expect(yield* Effect.promise(() => bad.ended)).toBe("end")
      bad.socket.end()
      expect(Buffer.concat(bad.received).toString()).toBe("ERR bad input\n")
      for (let i = 0; i < 100 && (yield* errors("SocketClosed")) === closes; i++) yield* Effect.sleep("20 millis")
      expect(yield* errors("SocketClosed")).toBe(closes + 1)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it("SocketClosed names the peer, the code and the reason the handler gave", () => {
    expect(
      new PlatformSocketServer.SocketClosed({ peer: "127.0.0.1:4242", code: 1009, closeReason: "too big" }).message
    )
      .toBe("closed 127.0.0.1:4242 with code 1009: too big")
    expect(new PlatformSocketServer.SocketClosed({ peer: "127.0.0.1:4242", code: 4000 }).message)
      .toBe("closed 127.0.0.1:4242 with code 4000")
  })
})
