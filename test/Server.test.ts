import * as LineCause from "#line/cause"
import { extendScope, trackFibers } from "#line/kit"
import { buffersArray } from "#line/types"
import { fork } from "#test-line/guarantees"
import { type LogRecord, recording, withLogger } from "#test-line/logging"
import { bothCauses, counter, layerWithMetricLabel, withMetricLabel, yieldingThroughTimers } from "#test-line/serving"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Data, Deferred, Effect, Exit, Fiber, Layer, Metric, Ref, Scope, Stream } from "effect"
import fc from "fast-check"
import { Client, Connection, Listener, Metrics, Server, TestKit } from "../src/index.js"
import { openSockets } from "./utils/kernel.js"
import { eventually, rawConnect, readToEnd, settled, stallingPeer } from "./utils/peers.js"

const bytes = (text: string) => new Uint8Array(Buffer.from(text))

describe("Server", () => {
  it.live("every client gets back exactly its own bytes, in order, then EOF", () => {
    const clients = fc.array(
      fc.array(
        fc.oneof(
          { weight: 6, arbitrary: fc.uint8Array({ maxLength: 2048, size: "max" }) },
          { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
          {
            weight: 1,
            arbitrary: fc.integer({ min: 64 * 1024, max: 512 * 1024 }).map((n) =>
              new Uint8Array(n).map((_, i) => (i * 13 + n) & 0xff)
            )
          }
        ),
        { maxLength: 12 }
      ),
      { minLength: 1, maxLength: 6 }
    )
    const property = (clients: ReadonlyArray<ReadonlyArray<Uint8Array>>, logged: boolean) =>
      Effect.gen(function*() {
        const server = yield* Server.make({}, logged ? Server.echoLogged : Server.echo)
        const echoes = yield* Effect.forEach(
          clients,
          (chunks) => Client.roundTrip({ port: server.address.port }, chunks),
          { concurrency: "unbounded" }
        )
        clients.forEach((chunks, i) => {
          expect(Buffer.from(echoes[i]!).equals(Buffer.concat(chunks))).toBe(true)
        })
      }).pipe(Effect.scoped)
    // fast-check itself (the same on both lines), each run on a fresh live runtime.
    return Effect.promise(() =>
      fc.assert(
        // The callback echo and the pull loop (its debug path) must be indistinguishable.
        fc.asyncProperty(clients, fc.boolean(), (chunks, logged) => Effect.runPromise(property(chunks, logged))),
        { numRuns: Number(process.env.ECHO_PROPERTY_RUNS ?? 25) }
      )
    )
  })

  it.scopedLive("a handler that answers before reading everything is not cut short by the close", () =>
    Effect.gen(function*() {
      // Answers 4 MiB after the first read, never reads the rest: closing with unread input would
      // make Linux reset the connection and drop what it had not sent yet.
      const answer = Buffer.alloc(4 * 1024 * 1024, 9)
      const early: Server.Handler<Connection.ConnectionError> = (connection) =>
        Effect.andThen(Effect.ignore(connection.read), connection.write(answer))
      const server = yield* Server.make({}, early)
      const client = yield* Client.connect({ port: server.address.port })
      const received = yield* fork(Client.readAll(client))
      for (let i = 0; i < 32; i++) yield* client.write(new Uint8Array(64 * 1024).fill(1))
      yield* client.end
      const echoed = yield* Fiber.join(received)
      expect(echoed.length).toBe(answer.length)
    }))

  it.scopedLive("no wake-up is lost when fibers yield between a check and a wait", () =>
    Effect.gen(function*() {
      // Yielding every few steps, through a timer, opens the gap between a fiber's check of the
      // socket and its parking: an event that fired there used to wake nobody.
      const server = yield* Server.make({}, Server.echoLogged).pipe(yieldingThroughTimers(16))
      const payload = [bytes("x".repeat(3000)), bytes("y".repeat(3000))]
      const echoes = yield* Effect.forEach(
        Array.from({ length: 100 }),
        () => Client.roundTrip({ port: server.address.port }, payload),
        { concurrency: 25 }
      )
      for (const echo of echoes) expect(echo.length).toBe(6000)
      yield* eventually(server.connections, (live) => live.length === 0)
    }))

  it.scopedLive("a handler that works asynchronously loses nothing at half-close", () =>
    Effect.gen(function*() {
      const slow: Server.Handler<Connection.ConnectionError> = (connection) =>
        connection.stream.pipe(
          Stream.mapEffect((chunk) => Effect.as(Effect.sleep("20 millis"), chunk)),
          Stream.runForEach(connection.write)
        )
      const server = yield* Server.make({}, slow)
      const payload = [bytes("one "), bytes("two "), bytes("three")]
      // roundTrip half-closes as soon as it has written: the FIN arrives long before the echo.
      const echoed = yield* Client.roundTrip({ port: server.address.port }, payload)
      expect(Buffer.from(echoed).toString()).toBe("one two three")
    }))

  it.scopedLive("a peer that never reads is not read from either, and does not stop others", () =>
    Effect.gen(function*() {
      const server = yield* Server.make()
      const port = server.address.port
      const sent = 32 * 1024 * 1024
      const { payload, socket } = yield* stallingPeer(port, sent)
      // Wait until the server has stopped reading from it: its counters stop moving.
      const [stalled] = yield* settled(server.connections, 15)
      expect(stalled!.bytesIn).toBeLessThan(sent)
      // What the server holds for it stays within the read-ahead and Node's buffers.
      expect(stalled!.buffered).toBeLessThanOrEqual(Connection.defaults.highWaterMark * 5)
      // Meanwhile another client is served in full.
      const echoed = yield* Client.roundTrip({ port }, [bytes("still served")])
      expect(Buffer.from(echoed).toString()).toBe("still served")
      // Once the peer reads and half-closes, it gets everything back: backpressure lost nothing.
      socket.end()
      const { data } = yield* readToEnd(socket)
      expect(data.length).toBe(sent)
      expect(data.equals(payload)).toBe(true)
    }))

  it.scopedLive("a peer reset is a typed, counted end of that connection only", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<Connection.ConnectionError>()
      const recording: Server.Handler<Connection.ConnectionError> = (connection) =>
        Effect.tapError(Server.echo(connection), (error) => Deferred.succeed(seen, error))
      const server = yield* Server.make({}, recording)
      const port = server.address.port
      const resetsBefore = yield* counter(Metrics.connectionsReset)
      const other = yield* Client.connect({ port })
      yield* other.write(bytes("before "))

      const victim = yield* Client.connect({ port })
      yield* victim.write(bytes("ping"))
      // Wait for the echo so the server is parked in a read when the reset arrives.
      yield* victim.read
      yield* victim.reset

      const error = yield* Deferred.await(seen)
      expect(error).toBeInstanceOf(Connection.ConnectionError)
      expect(error.reason).toBe("Reset")
      expect(error.code).toBe("ECONNRESET")
      // The address is known even though the socket is gone: logs and errors name the peer.
      expect(error.peer).toMatch(/^127\.0\.0\.1:\d+$/)
      yield* eventually(counter(Metrics.connectionsReset), (n) => n > resetsBefore)

      yield* other.write(bytes("after"))
      yield* other.end
      expect(Buffer.from(yield* Client.readAll(other)).toString()).toBe("before after")
    }))

  it.scopedLive("a handler's failure or defect is contained to its connection, and resets it", () =>
    Effect.gen(function*() {
      const picky: Server.Handler<string> = (connection) =>
        Effect.flatMap(Effect.orDie(connection.read), (chunk) => {
          const first = Buffer.from(buffersArray(chunk)[0]!).toString()
          if (first === "fail") return Effect.fail("refused")
          if (first === "die") return Effect.die(new Error("boom"))
          return Effect.orDie(connection.writeAll(chunk))
        })
      const server = yield* Server.make({}, picky)
      const port = server.address.port
      const handlerErrors = yield* counter(Metrics.connectionErrors, "HandlerError")
      const defects = yield* counter(Metrics.connectionErrors, "Defect")
      // The peer sees a reset, not a clean EOF it could take for a complete answer.
      const failed = yield* Effect.flip(Client.roundTrip({ port }, [bytes("fail")]))
      const died = yield* Effect.flip(Client.roundTrip({ port }, [bytes("die")]))
      expect(failed._tag === "ConnectionError" && failed.reason).toBe("Reset")
      expect(died._tag === "ConnectionError" && died.reason).toBe("Reset")
      expect(yield* counter(Metrics.connectionErrors, "HandlerError")).toBe(handlerErrors + 1)
      expect(yield* counter(Metrics.connectionErrors, "Defect")).toBe(defects + 1)
      expect(Buffer.from(yield* Client.roundTrip({ port }, [bytes("fine")])).toString()).toBe("fine")
    }))

  it.scopedLive("a handler error marked as the peer's fault is logged at info, counted under its reason, and closes normally", () =>
    Effect.gen(function*() {
      class Garbage extends Data.TaggedError("Garbage")<{ readonly peer: string }> {
        readonly [Server.PeerFault] = "Garbage"
        override get message() {
          return `${this.peer} sent garbage`
        }
      }
      // "bug" fails with a peer fault and a defect at once: that is the handler's bug, not the peer's.
      const strict: Server.Handler<Garbage> = (connection) =>
        Effect.flatMap(
          Effect.orDie(connection.read),
          (chunk) =>
            Buffer.from(buffersArray(chunk)[0]!).toString() === "bug"
              ? Effect.failCause(bothCauses(Cause.fail(new Garbage({ peer: connection.peer })), Cause.die("bug")))
              : Effect.andThen(
                Effect.orDie(connection.write(bytes("ERR garbage\n"))),
                Effect.fail(new Garbage({ peer: connection.peer }))
              )
        )
      const logged: Array<LogRecord> = []
      const server = yield* Server.make({}, strict).pipe(withLogger(recording(logged)))
      const port = server.address.port
      const garbage = yield* counter(Metrics.connectionErrors, "Garbage")
      const handlerErrors = yield* counter(Metrics.connectionErrors, "HandlerError")
      // The peer gets what the handler wrote, then a clean end: the error said in-band arrives.
      expect(Buffer.from(yield* Client.roundTrip({ port }, [bytes("?!")])).toString()).toBe("ERR garbage\n")
      yield* eventually(counter(Metrics.connectionErrors, "Garbage"), (n) => n === garbage + 1)
      expect(yield* counter(Metrics.connectionErrors, "HandlerError")).toBe(handlerErrors)
      expect(logged.filter((entry) => entry.message.includes("sent garbage")).map((entry) => entry.level)).toEqual([
        "INFO"
      ])
      // A peer fault next to a defect is a defect, with the whole cause, and reset.
      const defects = yield* counter(Metrics.connectionErrors, "Defect")
      const mixed = yield* Effect.exit(Client.roundTrip({ port }, [bytes("bug")]))
      expect(Exit.isFailure(mixed)).toBe(true)
      yield* eventually(counter(Metrics.connectionErrors, "Defect"), (n) => n === defects + 1)
      expect(yield* counter(Metrics.connectionErrors, "Garbage")).toBe(garbage + 1)
      expect(yield* counter(Metrics.connectionErrors, "HandlerError")).toBe(handlerErrors)
      expect(logged.some((entry) => entry.level === "ERROR" && entry.message.includes("handler died"))).toBe(true)
      // A reason must be a name of its own: never empty, never one the server counts itself.
      expect(Server.isPeerFault(new Garbage({ peer: "x" }))).toBe(true)
      expect(Server.isPeerFault(new Error("x"))).toBe(false)
      expect(Server.isPeerFault({ [Server.PeerFault]: "" })).toBe(false)
      expect(Server.isPeerFault({ [Server.PeerFault]: "Reset" })).toBe(false)
    }))

  it.scopedLive("a handler that throws instead of returning an Effect is a defect of its connection only", () =>
    Effect.gen(function*() {
      const throwing: Server.Handler = () => {
        throw new Error("not an Effect")
      }
      const server = yield* Server.make({}, throwing)
      const defects = yield* counter(Metrics.connectionErrors, "Defect")
      const active = yield* Metric.value(Metrics.connectionsActive)
      // Before the fix this threw out of Node's 'connection' callback: an uncaught exception.
      // The peer is reset (so fast that the client may still be connecting): never a clean EOF.
      const answer = yield* Effect.exit(Client.roundTrip({ port: server.address.port }, [bytes("x")]))
      expect(Exit.isFailure(answer)).toBe(true)
      yield* eventually(counter(Metrics.connectionErrors, "Defect"), (n) => n === defects + 1)
      yield* eventually(Metric.value(Metrics.connectionsActive), (state) => state.value === active.value)
      expect(yield* server.connections).toEqual([])
    }))

  it.scopedLive("a socket belongs to one connection: making a second is a defect, not a split stream", () =>
    Effect.gen(function*() {
      const listener = yield* Listener.make({ port: 0 })
      yield* TestKit.connect(listener.address.port)
      const socket = yield* listener.accept
      yield* Connection.make(socket)
      const second = yield* Effect.exit(Connection.make(socket))
      expect(Exit.isFailure(second) && LineCause.defects(second.cause).length > 0).toBe(true)
    }))

  it.scopedLive("each server's metrics carry the metric labels of the fiber that started it", () =>
    Effect.gen(function*() {
      const edge = yield* Server.make({}).pipe(withMetricLabel("server", "edge"))
      const inner = yield* Layer.build(Server.layer({}).pipe(layerWithMetricLabel("server", "inner"))).pipe(
        Effect.map(Context.get(Server.EchoServer))
      )
      // Read the way an Effect application reads its own metrics: under the same labels.
      const read = <A>(server: string, value: Effect.Effect<A>) => withMetricLabel("server", server)(value)
      const accepted = (server: string) => read(server, counter(Metrics.connectionsAccepted))
      const unlabelled = counter(Metrics.connectionsAccepted)
      const before = {
        edge: yield* accepted("edge"),
        inner: yield* accepted("inner"),
        bytes: yield* read("edge", Effect.map(Metric.value(Metrics.bytesReceived), (s) => s.count)),
        unlabelled: yield* unlabelled
      }
      yield* Client.roundTrip({ port: edge.address.port }, [bytes("four")])
      yield* Client.roundTrip({ port: edge.address.port }, [bytes("four")])
      yield* Client.roundTrip({ port: inner.address.port }, [bytes("x")])
      expect(yield* accepted("edge")).toBe(before.edge + 2)
      expect(yield* accepted("inner")).toBe(before.inner + 1)
      expect(yield* read("edge", Effect.map(Metric.value(Metrics.bytesReceived), (s) => s.count))).toBe(
        before.bytes + 8
      )
      expect(yield* unlabelled).toBe(before.unlabelled)
      // A reason is one more label, in the order Metric.tagged gives it.
      const resets = read("edge", counter(Metrics.connectionErrors, "Reset"))
      const resetsBefore = yield* resets
      const victim = yield* Client.connect({ port: edge.address.port })
      yield* victim.write(bytes("ping"))
      yield* victim.read
      yield* victim.reset
      yield* eventually(resets, (n) => n === resetsBefore + 1)
      yield* eventually(read("edge", Metric.value(Metrics.connectionsActive)), (s) => s.value === 0)
    }))

  it.live("shutdown with active, idle and stalled peers completes and leaves nothing behind", () =>
    Effect.gen(function*() {
      const socketsBefore = openSockets()
      const fibers = yield* trackFibers
      const scope = yield* Scope.make()
      const server = yield* extendScope(Server.make({ shutdownTimeout: "1 second" }), scope).pipe(fibers.track)
      const port = server.address.port
      const peers = yield* Scope.make()

      // Half-closed before shutdown and still reading, slowly: must get its full echo.
      const finisher = yield* extendScope(Client.connect({ port, highWaterMark: 1024 }), peers)
      const sentByFinisher = Buffer.alloc(4 * 1024 * 1024, 7)
      yield* fork(Effect.andThen(finisher.write(sentByFinisher), finisher.end))
      const finisherEcho = yield* fork(Client.readAll(finisher))
      // Idle: connected, silent, never half-closes.
      const idle = yield* extendScope(rawConnect(port), peers)
      // Stalled: writes and never reads.
      const { socket: stalled } = yield* extendScope(stallingPeer(port, 16 * 1024 * 1024), peers)
      yield* eventually(server.connections, (live) => live.length === 3)

      yield* Scope.close(scope, Exit.void)

      // The port is free, and the supervised fibers of the server are all done.
      yield* TestKit.expectPortFree(port)
      expect(yield* fibers.alive).toBe(0)
      const echoed = yield* Fiber.join(finisherEcho)
      expect(echoed.length).toBe(sentByFinisher.length)
      expect(Buffer.from(echoed).equals(sentByFinisher)).toBe(true)
      // Peers still connected at the deadline see their connection end (EOF or reset), not a hang.
      const idleEnd = yield* readToEnd(idle)
      expect(idleEnd.data.length).toBe(0)
      yield* readToEnd(stalled)

      yield* Scope.close(peers, Exit.void)
      yield* eventually(Effect.sync(openSockets), (n) => n <= socketsBefore)
    }))

  it.live("shutdown returns only once every connection's fiber has finished, cleanup included", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const cleaned = yield* Ref.make(false)
      // A handler that never ends by itself and takes a while to clean up when interrupted.
      const slowToStop: Server.Handler = () =>
        Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.onInterrupt(() => Effect.sleep("200 millis").pipe(Effect.andThen(Ref.set(cleaned, true))))
        )
      const server = yield* extendScope(Server.make({ shutdownTimeout: "50 millis" }, slowToStop), scope)
      const peers = yield* Scope.make()
      yield* extendScope(TestKit.connect(server.address.port), peers)
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Ref.get(cleaned)).toBe(true)
      yield* Scope.close(peers, Exit.void)
    }))

  it.live("shutdown with no connections returns at once and frees the port", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* extendScope(Server.make({ shutdownTimeout: "1 minute" }), scope)
      yield* Client.roundTrip({ port: server.address.port }, [bytes("x")])
      yield* Scope.close(scope, Exit.void)
      yield* TestKit.expectPortFree(server.address.port)
    }))

  it.scopedLive("beyond maxConnections connections wait unread; beyond maxPending they are dropped", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ maxConnections: 2, maxPending: 1 })
      const port = server.address.port
      const dropped = yield* counter(Metrics.connectionsDropped, "max_connections")
      const first = yield* Client.connect({ port })
      const second = yield* Client.connect({ port })
      yield* eventually(server.connections, (live) => live.length === 2)

      const waiting = yield* Client.connect({ port })
      yield* waiting.write(bytes("queued"))
      yield* eventually(server.pending, (n) => n === 1)
      // Dropped with a reset: it may fail to connect at all, or read nothing before the end.
      const extra = yield* Effect.exit(rawConnect(port))
      if (Exit.isSuccess(extra)) expect((yield* readToEnd(extra.value)).data.length).toBe(0)
      yield* eventually(counter(Metrics.connectionsDropped, "max_connections"), (n) => n === dropped + 1)
      // The waiting connection costs no buffer: nobody reads it.
      expect((yield* server.connections).length).toBe(2)

      // A slot frees: the waiting connection is served in full.
      yield* first.end
      yield* Client.readAll(first)
      yield* waiting.end
      expect(Buffer.from(yield* Client.readAll(waiting)).toString()).toBe("queued")
      yield* second.end
      yield* Client.readAll(second)
    }))

  it.scopedLive("idleTimeout closes a silent connection and counts it", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ idleTimeout: "200 millis" })
      const timeouts = yield* counter(Metrics.connectionErrors, "Timeout")
      const idle = yield* rawConnect(server.address.port)
      const ended = yield* readToEnd(idle)
      expect(ended.data.length).toBe(0)
      yield* eventually(counter(Metrics.connectionErrors, "Timeout"), (n) => n === timeouts + 1)
    }))

  it.scopedLive("with idleTimeout, a connection waits at most that long for a slot", () =>
    Effect.gen(function*() {
      // The one slot is held for good by a handler that never returns and is never idle.
      const busy: Server.Handler<Connection.ConnectionError> = (connection) =>
        Effect.forever(Effect.andThen(connection.write(bytes(".")), Effect.sleep("20 millis")))
      const server = yield* Server.make(
        { idleTimeout: "200 millis", maxConnections: 1, maxPending: 1, shutdownTimeout: "100 millis" },
        busy
      )
      const port = server.address.port
      yield* Client.connect({ port })
      yield* eventually(server.connections, (live) => live.length === 1)
      const waiting = yield* rawConnect(port)
      yield* eventually(server.pending, (n) => n === 1)
      // Closed by the server while waiting: it never got a slot and never sent anything.
      const ended = yield* readToEnd(waiting)
      expect(ended.data.length).toBe(0)
      yield* eventually(server.pending, (n) => n === 0)
      expect((yield* server.connections).length).toBe(1)
    }))

  it.scopedLive("idleTimeout leaves a connection with traffic alone", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ idleTimeout: "2 seconds" })
      const client = yield* Client.connect({ port: server.address.port })
      const received = yield* Ref.make(0)
      // Ten exchanges a tenth of the timeout apart: about five timeouts' worth of time in all.
      for (let i = 0; i < 10; i++) {
        yield* client.write(bytes("tick"))
        const chunk = yield* client.read
        yield* Ref.update(received, (n) => n + buffersArray(chunk).reduce((m, b) => m + b.length, 0))
        yield* Effect.sleep("200 millis")
      }
      yield* client.end
      yield* Client.readAll(client)
      expect(yield* Ref.get(received)).toBe(40)
    }))

  it.scopedLive("invalid server options are typed errors naming the option", () =>
    Effect.gen(function*() {
      for (
        const [options, option] of [
          [{ maxConnections: 0 }, "maxConnections"],
          [{ maxPending: -1 }, "maxPending"],
          [{ shutdownTimeout: "soon" }, "shutdownTimeout"],
          [{ idleTimeout: Number.POSITIVE_INFINITY }, "idleTimeout"],
          [{ highWaterMark: 0 }, "highWaterMark"]
        ] as const
      ) {
        const error = yield* Effect.flip(Server.make(options as Server.Options))
        expect(error.reason).toBe("InvalidOption")
        expect(error.option).toBe(option)
      }
    }))
})
