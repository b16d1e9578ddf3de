/**
 * What the listener and the server promise at their edges: the typed errors of listening and of
 * the options, what happens to the sockets nobody took, `maxAccepted` and its drops, pause and
 * resume, and what an operator reads in the logs. Real loopback sockets on port 0, and transports
 * that fake what loopback cannot produce (a refused bind, a late accept, an accept error).
 */
import { isInterrupted } from "#line/cause"
import { extendScope } from "#line/cli"
import { callback, deferredDone, timeoutFail } from "#line/runtime"
import { countingStarts, fork, yieldNow } from "#test-line/guarantees"
import { capturing } from "#test-line/logging"
import { counter, withMinimumLogLevel } from "#test-line/serving"
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as net from "node:net"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { Client, Listener, Metrics, Server, TestKit } from "../src/index.js"
import * as Transport from "../src/internal/transport.js"
import { eventually, settled, stallingPeer } from "./utils/peers.js"

const bytes = (text: string) => new Uint8Array(Buffer.from(text))

/** A bound on what must end by itself: a hang fails the test instead of stalling the run. */
const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("did not end") })(effect)

/** Whether the exit is a failure that holds an interruption. */
const interrupted = <A, E>(exit: Exit.Exit<A, E>) => Exit.isFailure(exit) && isInterrupted(exit.cause)

/** `node:net`, with every server it creates kept, for a test to make it say what loopback will not. */
const keepingServers = () => {
  const servers: Array<net.Server> = []
  const transport: Transport.Transport = {
    ...Transport.node,
    createServer: (options) => {
      const server = Transport.node.createServer(options)
      servers.push(server as unknown as net.Server)
      return server
    }
  }
  return { servers, transport }
}

const withTransport = <A, E, R>(effect: Effect.Effect<A, E, R>, transport: Transport.Transport) =>
  Effect.provideService(effect, Transport.CurrentTransport, transport)

/** A transport whose `listen` fails with `error`, as the kernel would refuse a bind. */
const refusingListen = (error: Error): Transport.Transport => ({
  ...Transport.node,
  createServer: (options) => {
    const server = Transport.node.createServer(options) as Transport.Server & net.Server
    server.listen = function(this: net.Server) {
      process.nextTick(() => this.emit("error", error))
      return this
    } as never
    return server
  }
})

const errnoError = (message: string, fields: { code?: string; syscall?: string; errno?: number }) =>
  Object.assign(new Error(message), fields)

/** A connection accepted by a plain `node:net` server: its server side, and the peer at the other end. */
const acceptedElsewhere = Effect.gen(function*() {
  const helper = yield* Effect.acquireRelease(
    callback<net.Server>((resume) => {
      const server = net.createServer({ pauseOnConnect: true })
      server.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(server)))
    }),
    (server) => callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )
  const accepted = yield* Deferred.make<net.Socket>()
  helper.once("connection", (socket: net.Socket) => deferredDone(accepted, Effect.succeed(socket)))
  const peer = yield* TestKit.connect((helper.address() as net.AddressInfo).port)
  const socket = yield* bounded(Deferred.await(accepted))
  return { peer, socket }
})

/** Whether a client can connect to `port` now. */
const connects = (port: number) =>
  Effect.scoped(Effect.match(Client.connect({ port }), {
    onFailure: (error) => {
      expect(error.reason).toBe("Refused")
      return false
    },
    onSuccess: () => true
  }))

describe("Listener guarantees", () => {
  it("formatAddress writes HOST:PORT, the form of every message", () => {
    expect(Listener.formatAddress({ host: "10.1.2.3", port: 8080 })).toBe("10.1.2.3:8080")
  })

  it.live("an invalid option's error names the address as requested, with the defaults filled in", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* Effect.flip(Listener.make({ port: 70000 }))
      expect(port.address).toBe("127.0.0.1:70000")
      expect(port.message).toBe("invalid port: 70000 (expected an integer from 0 to 65535)")
      const host = yield* Effect.flip(Listener.make({ host: "::1", port: 8080 }))
      expect(host.address).toBe("::1:8080")
      const both = yield* Effect.flip(Listener.make({ backlog: 0 }))
      expect(both.address).toBe("127.0.0.1:0")
      expect(both.message).toBe("invalid backlog: 0 (expected a positive integer below 2^31)")
    })))

  it.live("EACCES is PermissionDenied, with its code and a message that says why", () =>
    Effect.scoped(Effect.gen(function*() {
      const error = yield* Effect.flip(withTransport(
        Listener.make(),
        refusingListen(errnoError("listen EACCES: permission denied", { code: "EACCES", syscall: "listen" }))
      ))
      expect(error._tag).toBe("ListenError")
      expect(error.reason).toBe("PermissionDenied")
      expect(error.code).toBe("EACCES")
      expect(error.syscall).toBe("listen")
      expect(error.message).toBe("permission denied to listen on 127.0.0.1:0 (ports below 1024 need privileges)")
    })))

  it.live("an errno with no reason of its own is Unknown, and the message names the code", () =>
    Effect.scoped(Effect.gen(function*() {
      const error = yield* Effect.flip(withTransport(
        Listener.make(),
        refusingListen(errnoError("listen EINVAL: invalid argument", { code: "EINVAL", syscall: "listen" }))
      ))
      expect(error.reason).toBe("Unknown")
      expect(error.code).toBe("EINVAL")
      expect(error.syscall).toBe("listen")
      expect(error.message).toBe("cannot listen on 127.0.0.1:0: EINVAL")
    })))

  it.live("an error without errno fields is Unknown with no code or syscall field, and the message shows the cause", () =>
    Effect.scoped(Effect.gen(function*() {
      const cause = new Error("no such thing")
      const error = yield* Effect.flip(withTransport(Listener.make(), refusingListen(cause)))
      expect(error.reason).toBe("Unknown")
      // Absent, not present and undefined: the fields are optional (exactOptionalPropertyTypes).
      expect(Object.hasOwn(error, "code")).toBe(false)
      expect(Object.hasOwn(error, "syscall")).toBe(false)
      expect(error.cause).toBe(cause)
      expect(error.message).toBe("cannot listen on 127.0.0.1:0: Error: no such thing")
    })))

  it.live("an accepted socket arrives paused and with an 'error' listener, and reads once resumed", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const peer = yield* TestKit.connect(listener.address.port)
      yield* peer.send(bytes("hello"))
      const socket = yield* bounded(listener.accept)
      expect(socket.isPaused()).toBe(true)
      expect(socket.readableLength).toBe(0)
      // An error before the consumer installs its own listener must not crash the process.
      expect((socket as unknown as net.Socket).emit("error", new Error("before the consumer"))).toBe(true)
      const received = yield* callback<string>((resume) => {
        socket.once("data", (data: Buffer) => resume(Effect.succeed(data.toString())))
        socket.resume()
      }).pipe(bounded)
      expect(received).toBe("hello")
    })))

  it.live("an accept waiting before the connection arrives gets that very socket", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const waiting = yield* fork(listener.accept)
      yield* yieldNow
      const peer = yield* TestKit.connect(listener.address.port)
      const socket = yield* bounded(Fiber.join(waiting))
      expect(socket.remotePort).toBe(peer.socket.localPort)
      expect(yield* listener.pending).toBe(0)
    })))

  it.live("an accept interrupted while waiting takes nothing: the next connection waits for the next accept", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const waiting = yield* fork(listener.accept)
      yield* yieldNow
      yield* Fiber.interrupt(waiting)
      const peer = yield* TestKit.connect(listener.address.port)
      yield* eventually(listener.pending, (n) => n === 1)
      const socket = yield* bounded(listener.accept)
      expect(socket.remotePort).toBe(peer.socket.localPort)
    })))

  it.live("after close, accept is interrupted at once instead of waiting forever", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const waitingAtClose = yield* fork(listener.accept)
      yield* yieldNow
      yield* listener.close
      const late = yield* bounded(Effect.exit(listener.accept))
      expect(interrupted(late)).toBe(true)
      expect(interrupted(yield* bounded(Fiber.await(waitingAtClose)))).toBe(true)
    })))

  it.live("close frees the port and resets every socket nobody took, counting each as dropped (shutdown)", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const port = listener.address.port
      const peers = [yield* TestKit.connect(port), yield* TestKit.connect(port)]
      yield* eventually(listener.pending, (n) => n === 2)
      const dropped = yield* counter(Metrics.connectionsDropped, "shutdown")
      yield* listener.close
      yield* listener.close
      expect(yield* counter(Metrics.connectionsDropped, "shutdown")).toBe(dropped + 2)
      expect(yield* listener.pending).toBe(0)
      yield* TestKit.expectPortFree(port)
      // A reset, not a FIN: the peer cannot take the end for an answer.
      for (const peer of peers) expect(yield* bounded(peer.readToEnd)).toBe("reset")
    })))

  it.live("the release resets a socket its consumer took and left open", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* extendScope(scope)(Listener.make())
      const peer = yield* TestKit.connect(listener.address.port)
      const socket = yield* bounded(listener.accept)
      expect(socket.destroyed).toBe(false)
      yield* bounded(Scope.close(scope, Exit.void))
      expect(socket.destroyed).toBe(true)
      expect(yield* bounded(peer.readToEnd)).toBe("reset")
    }).pipe(Effect.scoped))

  it.live("a connection delivered after close is reset and counted as dropped (shutdown), never handed out", () =>
    Effect.scoped(Effect.gen(function*() {
      const { servers, transport } = keepingServers()
      const listener = yield* withTransport(Listener.make(), transport)
      const { peer, socket } = yield* acceptedElsewhere
      yield* listener.close
      const dropped = yield* counter(Metrics.connectionsDropped, "shutdown")
      // As a late accept would: the kernel had the connection before the listening socket closed.
      servers[0]!.emit("connection", socket)
      expect(yield* counter(Metrics.connectionsDropped, "shutdown")).toBe(dropped + 1)
      expect(yield* listener.pending).toBe(0)
      expect(interrupted(yield* bounded(Effect.exit(listener.accept)))).toBe(true)
      expect(yield* bounded(peer.readToEnd)).toBe("reset")
    })))

  it.live("beyond maxAccepted a newcomer is dropped, counted and logged with its address; later drops are summed up at close", () =>
    Effect.gen(function*() {
      // The summary window never ends by itself here: only the release writes the summary.
      const transport: Transport.Transport = { ...Transport.node, schedule: () => () => {} }
      const logs = capturing(true)
      const scope = yield* Scope.make()
      const listener = yield* extendScope(scope)(
        withTransport(logs.around(Listener.make({ maxAccepted: 1 })), transport)
      )
      const port = listener.address.port
      const peers = yield* Scope.make()
      yield* extendScope(peers)(TestKit.connect(port))
      yield* bounded(listener.accept) // held: the one socket allowed
      const dropped = yield* counter(Metrics.connectionsDropped, "max_connections")
      const newcomers: Array<number> = []
      for (let i = 1; i <= 3; i++) {
        const peer = yield* extendScope(peers)(TestKit.connect(port))
        newcomers.push(peer.socket.localPort!)
        yield* eventually(counter(Metrics.connectionsDropped, "max_connections"), (n) => n === dropped + i)
        // Closed by the kernel at once: the peer sees its connection end, with nothing in it.
        expect(["eof", "reset"]).toContain(yield* bounded(peer.readToEnd))
        expect(peer.received().length).toBe(0)
      }
      expect(yield* listener.pending).toBe(0)
      // The first drop is logged at once, as it is.
      yield* eventually(Effect.sync(() => logs.records.length), (n) => n >= 1)
      expect(logs.records).toEqual([{
        level: "WARN",
        message: `dropped connection from 127.0.0.1:${newcomers[0]}: 1 connections held`,
        cause: "",
        annotations: {}
      }])
      yield* bounded(Scope.close(scope, Exit.void))
      yield* Scope.close(peers, Exit.void)
      yield* eventually(Effect.sync(() => logs.records.length), (n) => n >= 2)
      expect(logs.records[1]!.level).toBe("WARN")
      expect(logs.records[1]!.message).toBe(
        `dropped connections (1 held): 2 more within 1s, from 127.0.0.1:${newcomers[1]}, 127.0.0.1:${newcomers[2]}`
      )
    }))

  it.live("setMaxAccepted changes the cap from the next connection on", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const port = listener.address.port
      yield* listener.setMaxAccepted(1)
      yield* TestKit.connect(port)
      yield* bounded(listener.accept)
      const dropped = yield* counter(Metrics.connectionsDropped, "max_connections")
      yield* TestKit.connect(port)
      yield* eventually(counter(Metrics.connectionsDropped, "max_connections"), (n) => n === dropped + 1)
      yield* listener.setMaxAccepted(2)
      const third = yield* TestKit.connect(port)
      const socket = yield* bounded(listener.accept)
      expect(socket.remotePort).toBe(third.socket.localPort)
      expect(yield* counter(Metrics.connectionsDropped, "max_connections")).toBe(dropped + 1)
    })))

  it.live("pause refuses new connections and resume accepts again on the same port, as often as asked", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const port = listener.address.port
      // Resume without a pause changes nothing.
      yield* listener.resume
      expect(yield* connects(port)).toBe(true)
      for (let round = 0; round < 2; round++) {
        yield* listener.pause
        yield* listener.pause
        expect(yield* connects(port)).toBe(false)
        yield* listener.resume
        yield* listener.resume
        expect(listener.address.port).toBe(port)
        const peer = yield* TestKit.connect(port)
        let socket = yield* bounded(listener.accept)
        // Sockets from before the pause may come first; the newcomer is among the next few.
        for (let i = 0; i < 4 && socket.remotePort !== peer.socket.localPort; i++) {
          socket = yield* bounded(listener.accept)
        }
        expect(socket.remotePort).toBe(peer.socket.localPort)
      }
    })))

  it.live("resume after close does not listen again: the port stays free", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const port = listener.address.port
      yield* listener.pause
      yield* listener.close
      yield* listener.resume
      expect(yield* connects(port)).toBe(false)
      yield* TestKit.expectPortFree(port)
    })))

  it.live("resume fails with AddressInUse when the port was taken while paused, naming that port, once", () =>
    Effect.scoped(Effect.gen(function*() {
      const log = capturing(true)
      const listener = yield* log.around(Listener.make())
      const port = listener.address.port
      yield* listener.pause
      const other = yield* Listener.make({ port })
      expect(other.address.port).toBe(port)
      const error = yield* Effect.flip(listener.resume)
      expect(error.reason).toBe("AddressInUse")
      expect(error.code).toBe("EADDRINUSE")
      // The port it tried (asked for 0, it was bound to this one), not the one first asked for.
      expect(error.address).toBe(`127.0.0.1:${port}`)
      expect(error.message).toBe(`127.0.0.1:${port} is already in use`)
      // Reported by the failure alone: not also logged as the listening socket's error (which the
      // same 'error' event would have logged before the failure came back).
      expect(log.records.filter((r) => r.message.startsWith("listener on"))).toEqual([])
    })))

  it.live("a socket that closed is not kept: a long-running listener does not hold every socket it ever accepted", () =>
    Effect.gen(function*() {
      // A full collection on demand, as `node --expose-gc` gives it.
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      const listener = yield* Listener.make()
      // Accepted, used and closed in a function of its own, so that only a weak reference is left here.
      const closedOne = () =>
        Effect.gen(function*() {
          const peer = yield* TestKit.connect(listener.address.port)
          const socket = yield* bounded(listener.accept)
          yield* callback<void>((resume) => {
            socket.once("close", () => resume(Effect.void))
            socket.destroy()
          }).pipe(bounded)
          yield* peer.close
          return new WeakRef(socket)
        }).pipe(Effect.scoped)
      const refs = [yield* closedOne(), yield* closedOne()]
      let alive = refs.length
      for (let i = 0; i < 20 && alive > 0; i++) {
        // A new task first: a WeakRef's target is kept until the end of the task that made it.
        yield* Effect.sleep("5 millis")
        gc()
        alive = refs.filter((ref) => ref.deref() !== undefined).length
      }
      expect(alive).toBe(0)
    }).pipe(Effect.scoped))

  it.live("an error of the listening socket after listening is logged as a warning, and accepting goes on", () =>
    Effect.scoped(Effect.gen(function*() {
      const { servers, transport } = keepingServers()
      const logs = capturing(true)
      const listener = yield* withTransport(logs.around(Listener.make()), transport)
      servers[0]!.emit("error", errnoError("accept EMFILE", { code: "EMFILE", syscall: "accept" }))
      yield* eventually(Effect.sync(() => logs.records.length), (n) => n >= 1)
      expect(logs.records.map(({ level }) => level)).toEqual(["WARN"])
      expect(logs.records[0]!.message).toMatch(/^listener on 127\.0\.0\.1:\d+: accept EMFILE$/)
      const peer = yield* TestKit.connect(listener.address.port)
      expect((yield* bounded(listener.accept)).remotePort).toBe(peer.socket.localPort)
    })))
})

describe("Server guarantees", () => {
  it.live("setMaxConnections refuses a value whose sum with maxPending reaches 2^31 - 1, naming option, value and bound", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* Server.make({ maxPending: 10 })
      const address = `127.0.0.1:${server.address.port}`
      // The largest allowed: maxConnections + maxPending = 2^31 - 2.
      yield* server.setMaxConnections(2 ** 31 - 12)
      const error = yield* Effect.flip(server.setMaxConnections(2 ** 31 - 11))
      expect(error._tag).toBe("ServerError")
      expect(error.reason).toBe("InvalidOption")
      expect(error.address).toBe(address)
      expect(error.option).toBe("maxConnections")
      expect(error.value).toBe(2 ** 31 - 11)
      expect(error.expected).toBe("maxConnections + maxPending below 2^31 - 1")
      expect(error.message).toBe(
        `invalid maxConnections: ${2 ** 31 - 11} (expected maxConnections + maxPending below 2^31 - 1)`
      )
      const zero = yield* Effect.flip(server.setMaxConnections(0))
      expect(zero.address).toBe(address)
      expect(zero.message).toBe("invalid maxConnections: 0 (expected a positive integer below 2^31)")
      // Still serving, with a sane limit again.
      yield* server.setMaxConnections(2)
      const echoed = yield* Client.roundTrip({ port: server.address.port }, [bytes("still")])
      expect(Buffer.from(echoed).toString()).toBe("still")
    })))

  it.live("make allows maxConnections + maxPending up to 2^31 - 2, and refuses more with a typed error", () =>
    Effect.scoped(Effect.gen(function*() {
      const largest = yield* Server.make({ maxConnections: 2 ** 31 - 2, maxPending: 0 })
      expect(largest.address.port).toBeGreaterThan(0)
      const error = yield* Effect.flip(Server.make({ maxConnections: 2 ** 31 - 2, maxPending: 1 }))
      expect(error._tag).toBe("ServerError")
      expect(error.reason).toBe("InvalidOption")
      expect(error.address).toBe("127.0.0.1:0")
      expect(error.option).toBe("maxConnections")
      expect(error.value).toBe(2 ** 31 - 2)
      expect(error.expected).toBe("maxConnections + maxPending below 2^31 - 1")
    })))

  it.live("shutdownTimeout, cleanupTimeout and drainDelay may be zero; an invalid one is named in the error", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* Server.make({ shutdownTimeout: 0, cleanupTimeout: "0 millis", drainDelay: 0 })
      expect(server.address.port).toBeGreaterThan(0)
      for (const option of ["shutdownTimeout", "cleanupTimeout", "drainDelay"] as const) {
        const error = yield* Effect.flip(Server.make({ [option]: "soon" }))
        expect(error.reason).toBe("InvalidOption")
        expect(error.option).toBe(option)
        expect(error.value).toBe("soon")
        expect(error.message).toBe(
          `invalid ${option}: "soon" (expected a duration from 0ms to 24d 20h 31m 23s 647ms, such as 500ms, 5s or 1m)`
        )
      }
    })))

  it.live("trustedProxies must be a list of IPv4 networks: a lone string, a non-string or a bad network is refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const cases: ReadonlyArray<[unknown, unknown, string]> = [
        ["10.0.0.0/8", "10.0.0.0/8", "a list of IPv4 networks such as 10.0.0.0/8, or addresses"],
        [["127.0.0.0/8", 42], 42, "an IPv4 network such as 10.0.0.0/8, or an address"],
        [["10.0.0.0/33"], "10.0.0.0/33", "an IPv4 network such as 10.0.0.0/8, or an address"]
      ]
      for (const [trustedProxies, value, expected] of cases) {
        const error = yield* Effect.flip(Server.make({ proxyProtocol: { trustedProxies: trustedProxies as never } }))
        expect(error._tag).toBe("ServerError")
        expect(error.reason).toBe("InvalidOption")
        expect(error.option).toBe("proxyProtocol.trustedProxies")
        expect(error.value).toEqual(value)
        expect(error.expected).toBe(expected)
      }
    })))

  it.live("highWaterMark sets how far a connection reads ahead of a handler that stopped reading", () =>
    Effect.gen(function*() {
      const highWaterMark = 512 * 1024
      const readsOnce: Server.Handler = (connection) => Effect.andThen(Effect.ignore(connection.read), Effect.never)
      const server = yield* Server.make({ highWaterMark, shutdownTimeout: 0 }, readsOnce)
      yield* stallingPeer(server.address.port, 4 * 1024 * 1024)
      const [connection] = yield* settled(server.connections, 15)
      // Up to the mark, plus at most a read or two of 64 KiB beyond it; far short of what was sent.
      expect(connection!.bytesIn).toBeGreaterThanOrEqual(highWaterMark)
      expect(connection!.bytesIn).toBeLessThanOrEqual(highWaterMark + 3 * 64 * 1024)
    }).pipe(Effect.scoped))

  it.live("at debug level the default echo logs every receive with its size, and the half-close", () =>
    Effect.scoped(Effect.gen(function*() {
      const logs = capturing(true)
      const server = yield* logs.around(Server.make()).pipe(
        withMinimumLogLevel("Debug")
      )
      const echoed = yield* Client.roundTrip({ port: server.address.port }, [bytes("hello"), bytes(" world")])
      expect(Buffer.from(echoed).toString()).toBe("hello world")
      const done = yield* eventually(
        Effect.sync(() => logs.records.filter(({ message }) => message.includes("half-closed, echo complete"))),
        (found) => found.length === 1
      )
      expect(done[0]!.level).toBe("DEBUG")
      expect(done[0]!.message).toMatch(/^no data from 127\.0\.0\.1:\d+: half-closed, echo complete$/)
      const receives = logs.records.filter(({ message }) => message.startsWith("receive data from "))
      expect(receives.length).toBeGreaterThanOrEqual(1)
      for (const { level, message } of receives) {
        expect(level).toBe("DEBUG")
        expect(message).toMatch(/^receive data from 127\.0\.0\.1:\d+$/)
      }
      expect(receives.reduce((n, { annotations }) => n + (annotations.bytes as number), 0)).toBe(11)
    })))

  it.live("the default echo serves a connection without a fiber of its own; a handler gets one per connection", () =>
    Effect.scoped(Effect.gen(function*() {
      const run = (handler: Server.Handler<unknown> | undefined) =>
        Effect.gen(function*() {
          const starts = countingStarts()
          const server = yield* starts.track(handler === undefined ? Server.make() : Server.make({}, handler))
          const before = starts.count()
          for (let i = 0; i < 3; i++) {
            yield* Client.roundTrip({ port: server.address.port }, [bytes("x")])
          }
          yield* eventually(server.connections, (live) => live.length === 0)
          return starts.count() - before
        }).pipe(Effect.scoped)
      expect(yield* run(undefined)).toBe(0)
      expect(yield* run(Server.echo)).toBe(0)
      expect(yield* run((connection) => Server.echo(connection))).toBeGreaterThanOrEqual(3)
    })))

  it.live("Server.layer provides the running server as EchoServer, and its release frees the port", () =>
    Effect.scoped(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* extendScope(scope)(Layer.build(Server.layer({ maxConnections: 3 })))
      const server = Context.get(context, Server.EchoServer)
      const echoed = yield* Client.roundTrip({ port: server.address.port }, [bytes("layer")])
      expect(Buffer.from(echoed).toString()).toBe("layer")
      yield* bounded(Scope.close(scope, Exit.void))
      yield* TestKit.expectPortFree(server.address.port)
    })))
})
