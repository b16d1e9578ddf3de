/**
 * Effect 4 only (effect/socket): code written against `effect/socket`'s SocketServer and Socket,
 * served by this server through PlatformSocketServer: the same bytes back, backpressure through
 * the pull, every end of a pull a typed `SocketError` (the peer's FIN and the shutdown's drain
 * notice a close with 1000, a close the handler wrote with its code, the reader's release 1006),
 * the writer's release a half-close, and the server's judgement of how a connection ended.
 *
 * The line-3 twin is test/PlatformSocketServer.test.ts (@effect/platform's pushed socket). This
 * file imports Effect 4 modules, so only the Effect 4 line's run finds it (`*.effect4.test.ts`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Data, Deferred, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import * as SocketServer from "effect/socket/SocketServer"
import * as net from "node:net"
import { Client, Connection, Metrics, PlatformSocketServer, Server } from "../src/index.js"

const errors = (reason: string) =>
  Effect.map(Metric.value(Metric.withAttributes(Metrics.connectionErrors, { reason })), (state) => state.count)

/** The close code of a pull's end, or the reason's tag when it is not a close. */
const ending = (error: Socket.SocketError): number | string =>
  error.reason._tag === "SocketCloseError" ? error.reason.code : error.reason._tag

/**
 * The platform's echo as an Effect 4 program writes it: pull, write back, until the pull ends;
 * the close that ends it is kept in `ends`. The writer's release then half-closes.
 */
const echo = (ends?: Array<number | string>) => (socket: Socket.Socket) =>
  Effect.scoped(Effect.gen(function*() {
    const writer = yield* socket.writer
    const { pull } = yield* socket.reader
    while (true) {
      const exit = yield* Effect.exit(pull)
      if (Exit.isFailure(exit)) {
        const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
        if (error?._tag === "Fail") ends?.push(ending(error.error))
        return yield* Effect.failCause(exit.cause)
      }
      yield* writer.writeAll(exit.value)
    }
  }))

/** Builds the layer in a scope of its own, so a test can close it (the server's shutdown). */
const start = (options: Parameters<typeof PlatformSocketServer.layer>[0]) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(PlatformSocketServer.layer(options), scope)
    const server = Context.get(context, SocketServer.SocketServer)
    const port = server.address._tag === "UnixPathAddress" ? 0 : server.address.port
    return { scope, server, port }
  })

/** A raw peer: connect, and keep every byte it receives. */
const peer = (port: number, options: { readonly allowHalfOpen?: boolean } = {}) =>
  Effect.callback<{ socket: net.Socket; received: Array<Buffer>; ended: Promise<"end" | "reset"> }>((resume) => {
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: options.allowHalfOpen === true })
    const received: Array<Buffer> = []
    socket.on("data", (data: Buffer) => received.push(data))
    const ended = new Promise<"end" | "reset">((done) => {
      socket.once("end", () => done("end"))
      socket.once("error", () => done("reset"))
    })
    socket.once("connect", () => resume(Effect.succeed({ socket, received, ended })))
  })

const until = (done: () => boolean, times = 200) =>
  Effect.gen(function*() {
    for (let i = 0; i < times && !done(); i++) yield* Effect.sleep("20 millis")
  })

describe("PlatformSocketServer on Effect 4 (effect/socket)", () => {
  it.live("its address is the listener's, as an InetAddress", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      expect(server.address._tag).toBe("InetAddressV4")
      expect(port).toBeGreaterThan(0)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("the platform's echo returns exactly the bytes sent; the peer's FIN ends the pull with 1000", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const failures = yield* errors("HandlerError")
      const ends: Array<number | string> = []
      const running = yield* Effect.forkDetach(server.run(echo(ends)))
      // Bytes that are not UTF-8 (0x80, 0xff) too: a chunk is written as the bytes it holds.
      const payload = [
        Buffer.from("hello, "),
        Buffer.alloc(256 * 1024, 7),
        Buffer.from([0x80, 0xff, 0]),
        Buffer.from("platform\n")
      ]
      const back = yield* Client.roundTrip({ port }, payload)
      expect(Buffer.from(back).equals(Buffer.concat(payload))).toBe(true)
      yield* until(() => ends.length > 0)
      expect(ends).toEqual([1000])
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
      // The handler let the close through: a normal end, not its failure.
      expect(yield* errors("HandlerError")).toBe(failures)
    }))

  it.live("a handler gets the services of the fiber that called run, whether its peer came before run or after", () =>
    Effect.gen(function*() {
      class Greeting extends Context.Service<Greeting, string>()("test/Greeting") {}
      const { port, scope, server } = yield* start({ port: 0 })
      const greet = (socket: Socket.Socket) =>
        Effect.scoped(Effect.gen(function*() {
          const writer = yield* socket.writer
          yield* writer.write(`${yield* Greeting}\n`)
        }))
      // This peer arrives before any run: it waits, unread, for one.
      const early = yield* peer(port)
      const running = yield* Effect.forkDetach(Effect.provideService(server.run(greet), Greeting, "hello"))
      const late = yield* peer(port)
      for (const p of [early, late]) {
        expect(yield* Effect.promise(() => p.ended)).toBe("end")
        expect(Buffer.concat(p.received).toString()).toBe("hello\n")
      }
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("nothing is read beyond the high-water mark ahead of the pulls: a consumer that stops pulling stops its peer", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const release = yield* Deferred.make<void>()
      let pulls = 0
      let bytes = 0
      const running = yield* Effect.forkDetach(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const { pull } = yield* socket.reader
          while (true) {
            const chunk = yield* pull
            pulls++
            for (const data of chunk) bytes += data.length
            // After the first pull, the consumer waits: nothing more may be read meanwhile.
            if (pulls === 1) yield* Deferred.await(release)
          }
        }))
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
      expect(pulls).toBe(1)
      expect(socket.writableLength).toBeGreaterThan(0)
      yield* Deferred.succeed(release, undefined)
      yield* Effect.promise(() => flushed)
      socket.end()
      // Everything arrives once the consumer pulls again, in as many pulls as it takes.
      yield* until(() => bytes >= total, 400)
      expect(bytes).toBe(total)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("closing the reader's scope fails a pull waiting in another fiber (1006), and the connection goes on", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const woken = yield* Deferred.make<number | string>()
      const running = yield* Effect.forkDetach(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const writer = yield* socket.writer
          const readerScope = yield* Scope.make()
          const { pull } = yield* Scope.provide(socket.reader, readerScope)
          // The peer sends nothing: this pull waits until the scope closes under it.
          const waiting = yield* Effect.forkChild(pull, { startImmediately: true })
          yield* Scope.close(readerScope, Exit.void)
          const exit = yield* Fiber.await(waiting)
          const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
          yield* Deferred.succeed(woken, reason?._tag === "Fail" ? ending(reason.error) : "none")
          // A new reader reads on: the connection itself was not closed.
          const again = yield* socket.reader
          yield* writer.writeAll(yield* again.pull)
        }))
      ))
      const quiet = yield* peer(port)
      expect(yield* Deferred.await(woken)).toBe(1006)
      quiet.socket.write("still open")
      expect(yield* Effect.promise(() => quiet.ended)).toBe("end")
      expect(Buffer.concat(quiet.received).toString()).toBe("still open")
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("the writer's release half-closes: the peer sees the FIN and can still send, and the reader still reads", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const read: Array<string> = []
      const ends: Array<number | string> = []
      const running = yield* Effect.forkDetach(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          yield* Effect.scoped(Effect.flatMap(socket.writer, (writer) => writer.write("bye\n")))
          const { pull } = yield* socket.reader
          while (true) {
            const exit = yield* Effect.exit(pull)
            if (Exit.isSuccess(exit)) {
              for (const data of exit.value) read.push(Buffer.from(data).toString())
              continue
            }
            const reason = exit.cause.reasons[0]
            if (reason?._tag === "Fail") ends.push(ending(reason.error))
            return
          }
        }))
      ))
      // Half-open: Node's default would answer the server's FIN with its own at once.
      const half = yield* peer(port, { allowHalfOpen: true })
      expect(yield* Effect.promise(() => half.ended)).toBe("end")
      expect(Buffer.concat(half.received).toString()).toBe("bye\n")
      half.socket.end("after your FIN")
      yield* until(() => ends.length > 0)
      expect(read.join("")).toBe("after your FIN")
      expect(ends).toEqual([1000])
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a peer's reset is a SocketReadError caused by the ConnectionError, counted as Reset even as a defect", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const resets = yield* errors("Reset")
      const defects = yield* errors("Defect")
      const started = yield* Deferred.make<void>()
      const seen: Array<Socket.SocketError> = []
      const running = yield* Effect.forkDetach(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const { pull } = yield* socket.reader
          yield* Deferred.succeed(started, undefined)
          while (true) yield* pull
        })).pipe(
          Effect.tapError((error) => Effect.sync(() => seen.push(error))),
          // As effect/rpc does with every error but a close.
          Effect.orDie
        )
      ))
      const { socket } = yield* peer(port)
      socket.write("x")
      yield* Deferred.await(started)
      yield* Effect.sleep("50 millis")
      socket.resetAndDestroy()
      yield* until(() => seen.length > 0)
      for (let i = 0; i < 100 && (yield* errors("Reset")) === resets; i++) yield* Effect.sleep("20 millis")
      expect(yield* errors("Reset")).toBe(resets + 1)
      expect(yield* errors("Defect")).toBe(defects)
      const reason = seen[0]?.reason
      expect(reason?._tag).toBe("SocketReadError")
      const cause = reason?._tag === "SocketReadError" ? reason.cause : undefined
      expect(cause).toBeInstanceOf(Connection.ConnectionError)
      expect((cause as Connection.ConnectionError).reason).toBe("Reset")
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a handler's own failure and defect are its own: counted as HandlerError and Defect", () =>
    Effect.gen(function*() {
      class Refused extends Data.TaggedError("Refused")<{ readonly what: string }> {}
      const { port, scope, server } = yield* start({ port: 0 })
      const failures = yield* errors("HandlerError")
      const defects = yield* errors("Defect")
      const running = yield* Effect.forkDetach(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const { pull } = yield* socket.reader
          const what = Buffer.from((yield* pull)[0]).toString()
          return yield* what === "fail" ? Effect.fail(new Refused({ what })) : Effect.die(new Error("a bug"))
        }))
      ))
      for (const what of ["fail", "die"]) {
        const p = yield* peer(port)
        p.socket.write(what)
        yield* Effect.promise(() => p.ended)
      }
      for (let i = 0; i < 100 && (yield* errors("Defect")) === defects; i++) yield* Effect.sleep("20 millis")
      for (let i = 0; i < 100 && (yield* errors("HandlerError")) === failures; i++) yield* Effect.sleep("20 millis")
      expect(yield* errors("HandlerError")).toBe(failures + 1)
      expect(yield* errors("Defect")).toBe(defects + 1)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("at shutdown a waiting pull ends with 1000: an idle peer gets a FIN, not a cut-off", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0, shutdownTimeout: "30 seconds" })
      const cut = yield* errors("ShutdownDeadline")
      const ends: Array<number | string> = []
      const running = yield* Effect.forkDetach(server.run(echo(ends)))
      const idle = yield* peer(port)
      idle.socket.write("before shutdown")
      yield* until(() => idle.received.length > 0)
      // The peer closes its side once it sees ours, as a well-behaved client does.
      void idle.ended.then(() => idle.socket.end())
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.promise(() => idle.ended)).toBe("end")
      expect(Buffer.concat(idle.received).toString()).toBe("before shutdown")
      expect(ends).toEqual([1000])
      expect(yield* errors("ShutdownDeadline")).toBe(cut)
    }))

  it.live("a handler that never lets go is cut off at the shutdown deadline, and shutdown returns", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0, shutdownTimeout: "500 millis" })
      const cut = yield* errors("ShutdownDeadline")
      const started = yield* Deferred.make<void>()
      const running = yield* Effect.forkDetach(
        server.run(() => Effect.andThen(Deferred.succeed(started, undefined), Effect.never))
      )
      const stuck = yield* peer(port)
      yield* Deferred.await(started)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
      expect(yield* errors("ShutdownDeadline")).toBe(cut + 1)
      expect(["end", "reset"]).toContain(yield* Effect.promise(() => stuck.ended))
    }))

  it.live("a close written from another fiber fails the waiting pull with its code (1000: a normal end)", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const ends: Array<number | string> = []
      const closes = yield* errors("SocketClosed")
      const failures = yield* errors("HandlerError")
      const running = yield* Effect.forkDetach(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const writer = yield* socket.writer
          const { pull } = yield* socket.reader
          yield* pull
          // The answer and the close come from a fiber of their own while this one pulls again.
          yield* Effect.forkDetach(Effect.andThen(writer.write("bye\n"), writer.write(new Socket.CloseEvent(1000))))
          const exit = yield* Effect.exit(pull)
          const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
          if (reason?._tag === "Fail") ends.push(ending(reason.error))
          // Let through: the close is this module's, a normal end.
          return yield* exit
        }))
      ))
      // Half-open: Node's default answers the server's FIN with its own, which would end the pull too.
      const quiet = yield* peer(port, { allowHalfOpen: true })
      quiet.socket.write("hello")
      expect(yield* Effect.promise(() => quiet.ended)).toBe("end")
      yield* until(() => ends.length > 0)
      expect(ends).toEqual([1000])
      quiet.socket.end()
      expect(Buffer.concat(quiet.received).toString()).toBe("bye\n")
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
      expect(yield* errors("SocketClosed")).toBe(closes)
      expect(yield* errors("HandlerError")).toBe(failures)
    }))

  it.live("a CloseEvent other than 1000 ends the connection as the peer's doing, after what was written", () =>
    Effect.gen(function*() {
      const { port, scope, server } = yield* start({ port: 0 })
      const closes = yield* errors("SocketClosed")
      const ends: Array<number | string> = []
      const running = yield* Effect.forkDetach(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const writer = yield* socket.writer
          const { pull } = yield* socket.reader
          // As effect/rpc does on a frame too large: write the close, then pull on, which fails
          // with it; the handler catches every close.
          while (true) {
            yield* pull
            yield* writer.write("ERR bad input\n")
            yield* writer.write(new Socket.CloseEvent(1009, "bad input"))
          }
        })).pipe(
          Effect.catchReason("SocketError", "SocketCloseError", (reason) => Effect.sync(() => ends.push(reason.code)))
        )
      ))
      const bad = yield* peer(port)
      bad.socket.write("garbage")
      expect(yield* Effect.promise(() => bad.ended)).toBe("end")
      bad.socket.end()
      expect(Buffer.concat(bad.received).toString()).toBe("ERR bad input\n")
      expect(ends).toEqual([1009])
      for (let i = 0; i < 100 && (yield* errors("SocketClosed")) === closes; i++) yield* Effect.sleep("20 millis")
      expect(yield* errors("SocketClosed")).toBe(closes + 1)
      yield* Fiber.interrupt(running)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("toSocket of a connection made elsewhere (a decorated one) reads, closes and drains the same way", () =>
    Effect.gen(function*() {
      const ends: Array<number | string> = []
      const scope = yield* Scope.make()
      // A connection decorated by delegation: the module cannot reach its internals, only its API.
      const decorated = (c: Connection.Connection): Connection.Connection => ({
        peer: c.peer,
        read: c.read,
        stream: c.stream,
        write: c.write,
        writeAll: c.writeAll,
        end: c.end,
        echo: c.echo,
        run: (f, options) => c.run(f, options),
        draining: c.draining,
        stats: c.stats
      })
      const server = yield* Scope.provide(
        Server.make(
          { port: 0, shutdownTimeout: "30 seconds" },
          (connection) =>
            Effect.catch(echo(ends)(PlatformSocketServer.toSocket(decorated(connection))), () => Effect.void)
        ),
        scope
      )
      const port = server.address.port
      const payload = [Buffer.from("decorated "), Buffer.alloc(128 * 1024, 3)]
      const back = yield* Client.roundTrip({ port }, payload)
      expect(Buffer.from(back).equals(Buffer.concat(payload))).toBe(true)
      // At shutdown, a waiting pull of such a connection ends too (the drain notice).
      const idle = yield* peer(port)
      idle.socket.write("idle")
      yield* until(() => idle.received.length > 0)
      void idle.ended.then(() => idle.socket.end())
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.promise(() => idle.ended)).toBe("end")
      expect(ends).toEqual([1000, 1000])
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
