/**
 * Admission, the wait for a slot, and what shutdown and the idle timeout do to the connections
 * they end, to the millisecond: on the simulated network, where time is virtual, so a 300 ms wait
 * is exactly 300 ms and a test reads the server at the moment a timer fires.
 */
import { describe, expect, it } from "@effect/vitest"

import { extendScope } from "#line/kit"
import type { LevelName } from "#line/log"
import { fork } from "#test-line/guarantees"
import { capturing, type LogRecord, recording, withLogger } from "#test-line/logging"
import { counter, logLevel } from "#test-line/serving"
import { Data, Deferred, Effect, Exit, Fiber, Metric, Scope } from "effect"
import type { Connection } from "../src/index.js"
import { Metrics, Server, TestKit } from "../src/index.js"
import * as Sim from "../src/internal/sim/run.js"
import { eventually } from "./utils/peers.js"

/**
 * Plays `body` in a simulated world (seed 1, small buffers unless told otherwise) and returns
 * what it returned, with the log records of the run. An assertion that fails inside fails the test.
 */
const inWorld = <A>(
  body: (world: Sim.Simulation, records: ReadonlyArray<LogRecord>) => Effect.Effect<A, unknown, Scope.Scope>,
  net: Sim.Setup["net"] = {},
  level: LevelName = "Info"
): { readonly value: A; readonly records: ReadonlyArray<LogRecord> } => {
  const records: Array<LogRecord> = []
  const logger = recording(records)
  const world = new Sim.Simulation({ seed: 1, net, logLevel: logLevel(level) })
  const value = world.runSync(
    Effect.scoped(Effect.suspend(() => body(world, records))).pipe(
      withLogger(logger, true)
    )
  )
  return { value, records }
}

const bytes = (text: string) => new Uint8Array(Buffer.from(text))

/** A handler that keeps its connection busy (and so never idle): a byte every 50 ms. */
const busy: Server.Handler<Connection.ConnectionError> = (connection) =>
  Effect.forever(Effect.andThen(connection.write(bytes(".")), Effect.sleep("50 millis")))

/** Connects a peer that reads what it gets, and waits until the server has it (served or waiting). */
const arrive = (server: Server.Server, live: number, waiting: number) =>
  Effect.gen(function*() {
    const peer = yield* TestKit.connect(server.address.port)
    yield* peer.startReading
    yield* until(Effect.zipWith(server.connections, server.pending, (c, p) => c.length === live && p === waiting))
    return peer
  })

/** Steps the world until `done` holds: 10 ms of virtual time per try, 10 s at most. */
const until = (done: Effect.Effect<boolean>) => eventually(done, (holds) => holds, 1_000)

/** Until the server holds no connection. */
const allEnded = (server: Server.Server) => until(Effect.map(server.connections, (live) => live.length === 0))

const now = (world: Sim.Simulation) => Effect.sync(() => world.world.now)

describe("the wait for a slot", () => {
  it("a waiting peer is dropped when its wait reaches the idle timeout, to the millisecond, and reset", () => {
    const { value } = inWorld((world) =>
      Effect.gen(function*() {
        const tooLong = yield* counter(Metrics.connectionsDropped, "wait_timeout")
        const server = yield* Server.make({ maxConnections: 1, maxPending: 3, idleTimeout: "300 millis" }, busy)
        yield* arrive(server, 1, 0)
        const first = yield* arrive(server, 1, 1)
        const start = yield* now(world)
        yield* Effect.sleep("100 millis")
        yield* arrive(server, 1, 2)
        // The first waits 300 ms, the second from 100 ms later: each is dropped at its own time.
        yield* Effect.sleep(`${start + 299 - (yield* now(world))} millis`)
        const before = yield* server.pending
        yield* Effect.sleep("1 millis")
        const atFirst = yield* server.pending
        yield* Effect.sleep("99 millis")
        const beforeSecond = yield* server.pending
        yield* Effect.sleep("1 millis")
        const atSecond = yield* server.pending
        return {
          pending: [before, atFirst, beforeSecond, atSecond],
          dropped: (yield* counter(Metrics.connectionsDropped, "wait_timeout")) - tooLong,
          ending: yield* first.readToEnd
        }
      })
    )
    expect(value.pending).toEqual([2, 1, 1, 0])
    expect(value.dropped).toBe(2)
    expect(value.ending).toBe("reset")
  })

  it("when a slot frees, one waiting peer is served and the others keep waiting, with their timer", () => {
    const { value } = inWorld(() =>
      Effect.gen(function*() {
        const tooLong = yield* counter(Metrics.connectionsDropped, "wait_timeout")
        const release = yield* Deferred.make<void>()
        let first = true
        let served = 0
        const handler: Server.Handler<Connection.ConnectionError> = (connection) => {
          served++
          if (!first) return busy(connection)
          first = false
          return Deferred.await(release)
        }
        const server = yield* Server.make({ maxConnections: 1, maxPending: 3, idleTimeout: "300 millis" }, handler)
        yield* arrive(server, 1, 0)
        yield* arrive(server, 1, 1)
        yield* arrive(server, 1, 2)
        yield* Deferred.succeed(release, undefined)
        yield* until(Effect.map(server.pending, (n) => n === 1))
        const live = (yield* server.connections).length
        // The one still waiting is dropped at its time: freeing a slot did not disarm its timer.
        yield* until(Effect.map(server.pending, (n) => n === 0))
        return { live, served, dropped: (yield* counter(Metrics.connectionsDropped, "wait_timeout")) - tooLong }
      })
    )
    expect(value).toEqual({ live: 1, served: 2, dropped: 1 })
  })

  it("a full queue checks its waiting peers for resets: a few in turn per newcomer, all of them every 100 ms", () => {
    const { value } = inWorld((world) =>
      Effect.gen(function*() {
        const gone = yield* counter(Metrics.connectionsDropped, "gone")
        const full = yield* counter(Metrics.connectionsDropped, "max_connections")
        const server = yield* Server.make({ maxConnections: 1, maxPending: 8 }, busy)
        yield* arrive(server, 1, 0)
        const waiting: Array<TestKit.Peer> = []
        for (let i = 0; i < 8; i++) waiting.push(yield* arrive(server, 1, i + 1))
        const counts = () =>
          Effect.all({
            pending: server.pending,
            gone: Effect.map(counter(Metrics.connectionsDropped, "gone"), (n) => n - gone),
            full: Effect.map(counter(Metrics.connectionsDropped, "max_connections"), (n) => n - full)
          })
        const newcomer = Effect.gen(function*() {
          const peer = yield* TestKit.connect(server.address.port)
          yield* peer.startReading
          yield* Effect.sleep("1 millis")
        })
        // The first newcomer to a full queue checks every waiting peer: none is gone, it is dropped.
        const sweptAt = yield* now(world)
        yield* newcomer
        const first = yield* counts()
        // Two peers reset while they wait, one among the next four in turn, one beyond them.
        yield* waiting[1]!.reset
        yield* waiting[6]!.reset
        yield* Effect.sleep("1 millis")
        // Within 100 ms, a newcomer checks the next four (0 to 3): it finds peer 1 gone, takes its place.
        yield* newcomer
        const second = yield* counts()
        // The next one checks the four after them in turn, and finds peer 6.
        yield* newcomer
        const third = yield* counts()
        // Two more reset, side by side; a newcomer after 100 ms checks them all, and frees both.
        yield* waiting[2]!.reset
        yield* waiting[3]!.reset
        yield* Effect.sleep(`${sweptAt + 100 - (yield* now(world))} millis`)
        yield* newcomer
        const fourth = yield* counts()
        return [first, second, third, fourth]
      })
    )
    expect(value).toEqual([
      { pending: 8, gone: 0, full: 1 },
      { pending: 8, gone: 1, full: 1 },
      { pending: 8, gone: 2, full: 1 },
      { pending: 7, gone: 4, full: 1 }
    ])
  })

  it("within 100 ms of a full check, a newcomer checks only the next few: one gone beyond them is not seen", () => {
    const { value } = inWorld(() =>
      Effect.gen(function*() {
        const full = yield* counter(Metrics.connectionsDropped, "max_connections")
        const server = yield* Server.make({ maxConnections: 1, maxPending: 8 }, busy)
        yield* arrive(server, 1, 0)
        const waiting: Array<TestKit.Peer> = []
        for (let i = 0; i < 8; i++) waiting.push(yield* arrive(server, 1, i + 1))
        const newcomer = Effect.andThen(TestKit.connect(server.address.port), Effect.sleep("1 millis"))
        yield* newcomer
        yield* waiting[7]!.reset
        yield* Effect.sleep("1 millis")
        // Checks peers 0 to 3: not 7.
        yield* newcomer
        return {
          pending: yield* server.pending,
          full: (yield* counter(Metrics.connectionsDropped, "max_connections")) - full
        }
      })
    )
    expect(value).toEqual({ pending: 8, full: 2 })
  })
})

/** Starts a server in a scope of its own, closed by `shutdown` (forked: the test reads it meanwhile). */
const started = <E, R>(options: Server.Options, handler: Server.Handler<E, R>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const server = yield* extendScope(Server.make(options, handler), scope)
    return { server, shutdown: fork(Scope.close(scope, Exit.void)) }
  })

const messages = (records: ReadonlyArray<LogRecord>) => records.map((r) => `${r.level} ${r.message}`)

describe("shutdown", () => {
  it("resets every waiting peer and counts it", () => {
    const { value } = inWorld(() =>
      Effect.gen(function*() {
        const atShutdown = yield* counter(Metrics.connectionsDropped, "shutdown")
        const { server, shutdown } = yield* started(
          { maxConnections: 1, maxPending: 2, shutdownTimeout: "100 millis" },
          busy
        )
        yield* arrive(server, 1, 0)
        const waiting = [yield* arrive(server, 1, 1), yield* arrive(server, 1, 2)]
        yield* Fiber.join(yield* shutdown)
        return {
          endings: yield* Effect.all(waiting.map((peer) => peer.readToEnd)),
          dropped: (yield* counter(Metrics.connectionsDropped, "shutdown")) - atShutdown
        }
      })
    )
    expect(value).toEqual({ endings: ["reset", "reset"], dropped: 2 })
  })

  it("names ten peers it cut off, and says how long handlers still ran after the cleanup timeout", () => {
    const { records } = inWorld(() =>
      Effect.gen(function*() {
        // Cleanup that never ends: shutdown gives up on it after the cleanup timeout.
        const stubborn: Server.Handler = () => Effect.onInterrupt(Effect.never, () => Effect.never)
        const { server, shutdown } = yield* started(
          { shutdownTimeout: "100 millis", cleanupTimeout: "200 millis" },
          stubborn
        )
        for (let i = 0; i < 10; i++) yield* arrive(server, i + 1, 0)
        yield* Fiber.join(yield* shutdown)
      })
    )
    const logged = messages(records)
    expect(logged).toContain("WARN shutdown deadline passed: cutting off 10 connection(s)")
    expect(logged.find((m) => m.startsWith("INFO closed 10 connection(s) at the shutdown deadline: "))).toMatch(
      /^INFO closed 10 connection\(s\) at the shutdown deadline: (127\.0\.0\.1:\d+, ){9}127\.0\.0\.1:\d+$/
    )
    expect(logged).toContain(
      "ERROR 10 handler(s) still running 200ms after the shutdown deadline, in finalizers that do not end: " +
        "their sockets are closed, their fibers left behind"
    )
  })

  it("does not cut off again a connection the idle timeout cut off already", () => {
    const { records } = inWorld(() =>
      Effect.gen(function*() {
        let first = true
        const handler: Server.Handler<Connection.ConnectionError> = (connection) => {
          if (!first) return busy(connection)
          first = false
          // Cut off by the idle timeout, its cleanup never ends: it stays among the live ones.
          return Effect.onInterrupt(Effect.never, () => Effect.never)
        }
        const { server, shutdown } = yield* started(
          { idleTimeout: "100 millis", shutdownTimeout: "300 millis", cleanupTimeout: "100 millis" },
          handler
        )
        yield* arrive(server, 1, 0)
        yield* Effect.sleep("150 millis")
        yield* arrive(server, 2, 0)
        yield* Fiber.join(yield* shutdown)
      })
    )
    expect(messages(records)).toContain("WARN shutdown deadline passed: cutting off 1 connection(s)")
  })

  it("keeps accepting for the drain delay, says so, and ignores suspend and resume once it began", () => {
    const { records, value } = inWorld((world) =>
      Effect.gen(function*() {
        const { server, shutdown } = yield* started({ drainDelay: "1 second", shutdownTimeout: "100 millis" }, busy)
        const port = server.address.port
        const closing = yield* shutdown
        yield* Effect.sleep("10 millis")
        // Shutdown began: not ready, and a suspend now must not stop the drain delay's accepting.
        const ready = yield* server.ready
        yield* server.suspend
        yield* arrive(server, 1, 0)
        yield* Fiber.join(closing)
        // Over: a resume does not open the port again.
        yield* server.resume
        return { ready, listening: world.network.listeners.has(port) }
      })
    )
    expect(value).toEqual({ ready: false, listening: false })
    expect(messages(records)).toContain("INFO shutting down: accepting for 1s more (drain delay)")
  })

  it("a suspended server accepts again on resume; a second suspend or a resume while serving change nothing", () => {
    const { value } = inWorld(() =>
      Effect.gen(function*() {
        const server = yield* Server.make({}, busy)
        // A resume while accepting is nothing to do.
        yield* server.resume
        yield* arrive(server, 1, 0)
        yield* server.suspend
        yield* server.suspend
        const suspended = yield* server.ready
        yield* server.resume
        yield* arrive(server, 2, 0)
        return { suspended, ready: yield* server.ready }
      })
    )
    expect(value).toEqual({ suspended: false, ready: true })
  })
})

describe("what a connection leaves in the logs and metrics", () => {
  it("a connection that ends well logs nothing and counts no reset; its duration is what it lasted", () => {
    const { records, value } = inWorld(() =>
      Effect.gen(function*() {
        const resets = yield* counter(Metrics.connectionsReset)
        const before = yield* Metric.value(Metrics.connectionDuration)
        const sentBefore = yield* counter(Metrics.bytesSent)
        const answer: Server.Handler<Connection.ConnectionError> = (connection) =>
          Effect.andThen(Effect.sleep("250 millis"), connection.write(bytes("hello")))
        const server = yield* Server.make({}, answer)
        // A second into the run: a duration is the time since the connection began, not since the world did.
        yield* Effect.sleep("1 second")
        const peer = yield* TestKit.connect(server.address.port)
        yield* peer.startReading
        yield* peer.halfClose
        const ending = yield* peer.readToEnd
        yield* allEnded(server)
        const after = yield* Metric.value(Metrics.connectionDuration)
        return {
          ending,
          received: peer.received().toString(),
          resets: (yield* counter(Metrics.connectionsReset)) - resets,
          sent: (yield* counter(Metrics.bytesSent)) - sentBefore,
          durations: after.count - before.count,
          seconds: after.sum - before.sum
        }
      })
    )
    expect(value).toMatchObject({ ending: "eof", received: "hello", resets: 0, sent: 5, durations: 1 })
    // Virtual time: the handler's 250 ms, and the few the connection took to open and close.
    expect(value.seconds).toBeGreaterThanOrEqual(0.25)
    expect(value.seconds).toBeLessThan(0.3)
    expect(records).toEqual([])
  })

  it("a handler that died is logged once at ERROR with its cause", () => {
    const { records } = inWorld(() =>
      Effect.gen(function*() {
        const server = yield* Server.make({}, () => Effect.die(new Error("a bug in the handler")))
        const peer = yield* TestKit.connect(server.address.port)
        yield* peer.startReading
        yield* peer.readToEnd
        yield* allEnded(server)
      })
    )
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ level: "ERROR", message: "handler died" })
    expect(records[0]!.cause).toContain("a bug in the handler")
    expect(records[0]!.annotations.peer).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it("drops within a second are one record naming the peer, then one summary counting the rest", () => {
    const { records, value } = inWorld((_, records) =>
      Effect.gen(function*() {
        const server = yield* Server.make({ maxConnections: 1, maxPending: 0 }, busy)
        yield* arrive(server, 1, 0)
        const dropped: Array<TestKit.Peer> = []
        for (let i = 0; i < 3; i++) {
          dropped.push(yield* TestKit.connect(server.address.port))
          yield* Effect.sleep("10 millis")
        }
        // The summary is written when the second ends, while the server still runs.
        yield* Effect.sleep("1 second")
        return {
          logged: records.filter((r) => r.message.includes("dropped connection")).length,
          endings: yield* Effect.all(dropped.map((peer) => peer.readToEnd))
        }
      })
    )
    expect(value).toEqual({ logged: 2, endings: ["reset", "reset", "reset"] })
    const drops = records.filter((r) => r.message.includes("dropped connection"))
    expect(drops).toHaveLength(2)
    expect(drops[0]!.message).toMatch(
      /^dropped connection from 127\.0\.0\.1:\d+: 1 connections held \(1 served, 0 waiting\)$/
    )
    expect(drops[0]!.annotations.peer).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(drops[1]!.message).toMatch(
      /^dropped connections \(max_connections\): 2 more within 1s, from 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+$/
    )
    // A summary speaks for several peers: it names none as the record's own.
    expect("peer" in drops[1]!.annotations).toBe(false)
  })

  it("an idle timeout is one INFO record naming the peer, and nothing else", () => {
    const { records } = inWorld(() =>
      Effect.gen(function*() {
        const server = yield* Server.make({ idleTimeout: "100 millis" }, () => Effect.never)
        const peer = yield* TestKit.connect(server.address.port)
        yield* peer.startReading
        yield* peer.readToEnd
        yield* allEnded(server)
      })
    )
    expect(records).toHaveLength(1)
    expect(records[0]!.level).toBe("INFO")
    expect(records[0]!.message).toMatch(/^127\.0\.0\.1:\d+ timed out \(idle\)$/)
    expect(records[0]!.cause).toBe("")
  })

  it("at debug level, a connection's closed record has its bytes and how long it lasted", () => {
    const { records } = inWorld(
      () =>
        Effect.gen(function*() {
          const answer: Server.Handler<Connection.ConnectionError> = (connection) =>
            Effect.andThen(Effect.sleep("250 millis"), connection.write(bytes("hello")))
          const server = yield* Server.make({}, answer)
          yield* Effect.sleep("1 second")
          const peer = yield* TestKit.connect(server.address.port)
          yield* peer.startReading
          yield* peer.send(bytes("abc"))
          yield* peer.halfClose
          yield* peer.readToEnd
          yield* allEnded(server)
        }),
      {},
      "Debug"
    )
    const closed = records.filter((r) => r.message === "connection closed")
    expect(closed).toHaveLength(1)
    expect(closed[0]!.annotations).toMatchObject({ bytesIn: 3, bytesOut: 5 })
    expect(closed[0]!.annotations.durationMs).toBeGreaterThanOrEqual(250)
    expect(closed[0]!.annotations.durationMs).toBeLessThan(300)
  })

  it("an answer whole and sent is closed, not reset, when the idle timeout ends the wait for the peer's FIN", () => {
    const { value } = inWorld(() =>
      Effect.gen(function*() {
        const timeouts = yield* counter(Metrics.connectionErrors, "Timeout")
        const answer: Server.Handler<Connection.ConnectionError> = (connection) => connection.write(bytes("hello"))
        const server = yield* Server.make({ idleTimeout: "300 millis" }, answer)
        const peer = yield* TestKit.connect(server.address.port)
        yield* peer.startReading
        // The peer reads the answer and its FIN, and never sends its own.
        const ending = yield* peer.readToEnd
        yield* allEnded(server)
        return {
          ending,
          received: peer.received().toString(),
          timeouts: (yield* counter(Metrics.connectionErrors, "Timeout")) - timeouts
        }
      })
    )
    expect(value).toEqual({ ending: "eof", received: "hello", timeouts: 0 })
  })
})

class TooLong extends Data.TaggedError("TooLong")<{ readonly limit: number }> {
  readonly [Server.PeerFault] = "TooLong"
}

describe("a peer's fault", () => {
  it("ends the connection normally: what the handler said arrives whole, then a FIN, counted under its reason", () => {
    const { value } = inWorld(() =>
      Effect.gen(function*() {
        const faults = yield* counter(Metrics.connectionErrors, "TooLong")
        const strict: Server.Handler<Connection.ConnectionError | TooLong> = (connection) =>
          Effect.andThen(connection.write(bytes("ERR too long\n")), Effect.fail(new TooLong({ limit: 10 })))
        const server = yield* Server.make({}, strict)
        const peer = yield* TestKit.connect(server.address.port)
        yield* peer.startReading
        yield* peer.send(bytes("x".repeat(100)))
        // The peer half-closes only once it has the answer and its end.
        const ending = yield* peer.readToEnd
        yield* peer.halfClose
        yield* allEnded(server)
        return {
          ending,
          received: peer.received().toString(),
          faults: (yield* counter(Metrics.connectionErrors, "TooLong")) - faults
        }
      })
    )
    expect(value).toEqual({ ending: "eof", received: "ERR too long\n", faults: 1 })
  })
})

describe("a peer that resets", () => {
  it("wakes a write waiting for room, though the handler does not read: it fails as a reset", () => {
    const { value } = inWorld(() =>
      Effect.gen(function*() {
        const failed = yield* Deferred.make<string>()
        // Writes more than the buffers hold and never reads.
        const writer: Server.Handler<Connection.ConnectionError> = (connection) =>
          connection.write(new Uint8Array(1024 * 1024)).pipe(
            Effect.tapError((error) => Deferred.succeed(failed, error.reason))
          )
        const server = yield* Server.make({}, writer)
        const peer = yield* TestKit.connect(server.address.port)
        yield* Effect.sleep("10 millis")
        yield* peer.reset
        return yield* Deferred.await(failed)
      }), { receiveBuffer: 8192, sendBuffer: 8192 })
    expect(value).toBe("Reset")
  })

  it.scopedLive("on loopback too: the simulation models what a paused socket with writes waiting sees", () =>
    Effect.gen(function*() {
      const failed = yield* Deferred.make<string>()
      const writer: Server.Handler<Connection.ConnectionError> = (connection) =>
        connection.write(new Uint8Array(32 * 1024 * 1024)).pipe(
          Effect.tapError((error) => Deferred.succeed(failed, error.reason))
        )
      const server = yield* Server.make({}, writer)
      const peer = yield* TestKit.connect(server.address.port)
      yield* until(Effect.map(server.connections, (live) => live.length === 1))
      yield* peer.reset
      expect(yield* Deferred.await(failed)).toBe("Reset")
    }))
})

describe("behind a proxy (loopback)", () => {
  it.scopedLive("the built-in echo reads the PROXY header first: it echoes what came after it, and logs under the client", () =>
    Effect.gen(function*() {
      const log = capturing()
      const logging: Server.Handler<Connection.ConnectionError> = (connection) =>
        Effect.andThen(Effect.logInfo("serving"), connection.echo)
      const echo = yield* Server.make({ proxyProtocol: {} })
      const custom = yield* log.around(Server.make({ proxyProtocol: {} }, logging))
      const exchange = (port: number, header: string) =>
        Effect.scoped(Effect.gen(function*() {
          const peer = yield* TestKit.connect(port)
          yield* peer.startReading
          yield* peer.send(Buffer.from(`${header}hello`))
          yield* peer.halfClose
          yield* peer.readToEnd
          return peer.received().toString()
        }))
      expect(yield* exchange(echo.address.port, "PROXY TCP4 127.9.8.7 127.0.0.1 40000 7\r\n")).toBe("hello")
      expect(yield* exchange(custom.address.port, "PROXY TCP4 127.9.8.7 127.0.0.1 40000 7\r\n")).toBe("hello")
      // A header that names no client (a health check): the socket's own peer.
      expect(yield* exchange(custom.address.port, "PROXY UNKNOWN\r\n")).toBe("hello")
      const serving = log.records.filter((r) => r.message === "serving").map((r) => r.annotations.peer)
      expect(serving).toHaveLength(2)
      expect(serving[0]).toBe("127.9.8.7:40000")
      expect(serving[1]).toMatch(/^127\.0\.0\.1:\d+$/)
    }))
})
