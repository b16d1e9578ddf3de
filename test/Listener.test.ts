import { extendScope } from "#line/cli"
import { callback } from "#line/runtime"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Scope } from "effect"
import type * as net from "node:net"
import { Client, KernelLimits, Listener, TestKit } from "../src/index.js"
import * as Transport from "../src/internal/transport.js"
import { listenBacklog, timeWaitCount } from "./utils/kernel.js"

const readLimits = KernelLimits.read.pipe(Effect.provide(KernelLimits.layer), Effect.provide(NodeFileSystem.layer))

describe("Listener", () => {
  it.effect("port 0 binds a real ephemeral port on the requested IPv4 address", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      expect(listener.address.host).toBe("127.0.0.1")
      expect(listener.address.port).toBeGreaterThan(0)
      const limits = yield* readLimits
      if (limits.ipLocalPortRange) {
        expect(listener.address.port).toBeGreaterThanOrEqual(limits.ipLocalPortRange.low)
        expect(listener.address.port).toBeLessThanOrEqual(limits.ipLocalPortRange.high)
      }
      expect(listenBacklog(listener.address.port)).toBeDefined()
    })))

  it.effect("localhost means 127.0.0.1", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make({ host: "localhost" })
      expect(listener.address.host).toBe("127.0.0.1")
    })))

  it.live("after the scope closes the same port can be bound again at once", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* extendScope(scope)(Listener.make())
      const port = listener.address.port
      yield* Scope.close(scope, Exit.void)
      expect(listenBacklog(port)).toBeUndefined()
      yield* TestKit.expectPortFree(port)
    }))

  it.effect(
    Listener.reusePortSupported
      ? "reusePort: a second listener with it binds the same port (Node 22.12 and later)"
      : `reusePort is refused as an invalid option on Node ${process.versions.node}, naming the version it needs`,
    () =>
      Effect.scoped(Effect.gen(function*() {
        if (!Listener.reusePortSupported) {
          const error = yield* Effect.flip(Listener.make({ reusePort: true }))
          expect(error.reason).toBe("InvalidOption")
          expect(error.option).toBe("reusePort")
          expect(error.message).toContain("reusePort needs Node 22.12 or later")
          return
        }
        const first = yield* Listener.make({ reusePort: true })
        const second = yield* Listener.make({ reusePort: true, port: first.address.port })
        expect(second.address.port).toBe(first.address.port)
      }))
  )

  it.effect("a second listener on a taken port fails with AddressInUse", () =>
    Effect.scoped(Effect.gen(function*() {
      const first = yield* Listener.make()
      const error = yield* Effect.flip(Listener.make({ port: first.address.port }))
      expect(error._tag).toBe("ListenError")
      expect(error.reason).toBe("AddressInUse")
      expect(error.code).toBe("EADDRINUSE")
      expect(error.syscall).toBe("listen")
      expect(error.address).toBe(`127.0.0.1:${first.address.port}`)
      expect(error.message).toBe(`127.0.0.1:${first.address.port} is already in use`)
    })))

  it.effect("an address that is not this machine's fails with AddressNotAvailable", () =>
    Effect.scoped(Effect.gen(function*() {
      // What Linux answers for a bind to an address no interface has (EADDRNOTAVAIL), given by the
      // transport, so that no test binds outside 127.0.0.0/8 (which is all local on Linux).
      const notHere: Transport.Transport = {
        ...Transport.node,
        createServer: (options) => {
          const server = Transport.node.createServer(options) as Transport.Server & net.Server
          server.listen = function(this: net.Server, listen: net.ListenOptions) {
            const error = Object.assign(new Error(`listen EADDRNOTAVAIL: address not available ${listen.host}`), {
              code: "EADDRNOTAVAIL",
              errno: -99,
              syscall: "listen",
              address: listen.host,
              port: listen.port
            })
            process.nextTick(() => this.emit("error", error))
            return this
          } as never
          return server
        }
      }
      const error = yield* Effect.flip(
        Effect.provideService(Listener.make({ host: "192.0.2.1" }), Transport.CurrentTransport, notHere)
      )
      expect(error.reason).toBe("AddressNotAvailable")
      expect(error.code).toBe("EADDRNOTAVAIL")
      expect(error.message).toBe("192.0.2.1:0 is not an address of this machine")
    })))

  describe("invalid options fail before any socket exists", () => {
    const cases: ReadonlyArray<[Listener.Options, string, unknown]> = [
      [{ host: "::1" }, "host", "::1"],
      [{ host: "example.com" }, "host", "example.com"],
      [{ host: "256.1.1.1" }, "host", "256.1.1.1"],
      [{ port: 70000 }, "port", 70000],
      [{ port: -1 }, "port", -1],
      [{ port: 80.5 }, "port", 80.5],
      [{ backlog: 0 }, "backlog", 0],
      [{ backlog: Number.NaN }, "backlog", Number.NaN],
      [{ keepAliveInitialDelay: "forever" as never }, "keepAliveInitialDelay", "forever"],
      // TCP_KEEPIDLE takes whole seconds from 1 to 32767: Node would pass 0 for these, which Linux
      // refuses, leaving the kernel's 7200 s in place without a word.
      [{ keepAliveInitialDelay: 0 }, "keepAliveInitialDelay", 0],
      [{ keepAliveInitialDelay: "500 millis" }, "keepAliveInitialDelay", "500 millis"],
      [{ keepAliveInitialDelay: "1500 millis" }, "keepAliveInitialDelay", "1500 millis"],
      [{ keepAliveInitialDelay: "32768 seconds" }, "keepAliveInitialDelay", "32768 seconds"]
    ]
    for (const [options, option, value] of cases) {
      it.effect(`${option} = ${String(value)}`, () =>
        Effect.scoped(Effect.gen(function*() {
          const error = yield* Effect.flip(Listener.make(options))
          expect(error.reason).toBe("InvalidOption")
          expect(error.option).toBe(option)
          expect(error.value).toEqual(value)
          expect(error.message).toContain(`invalid ${option}`)
        })))
    }
  })

  it.effect("an invalid Duration is shown as people write one, not as its JSON", () =>
    Effect.scoped(Effect.gen(function*() {
      const error = yield* Effect.flip(Listener.make({ keepAliveInitialDelay: Duration.millis(1500) }))
      expect(error.message).toBe(
        "invalid keepAliveInitialDelay: 1s 500ms (expected a whole number of seconds from 1s to 32767s (TCP_KEEPIDLE))"
      )
    })))

  it.effect("the kernel's backlog is min(requested, somaxconn), small or huge", () =>
    Effect.scoped(Effect.gen(function*() {
      const limits = yield* readLimits
      for (const requested of [7, 100_000]) {
        const listener = yield* Listener.make({ backlog: requested })
        const expected = KernelLimits.effectiveBacklog(requested, limits).effective
        expect(listenBacklog(listener.address.port)).toBe(expected)
      }
      const listener = yield* Listener.make()
      expect(listenBacklog(listener.address.port)).toBe(KernelLimits.effectiveBacklog(undefined, limits).effective)
    })))

  it.live("SO_REUSEADDR lets a new listener take a port whose connection sits in TIME_WAIT", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* extendScope(scope)(Listener.make())
      const port = listener.address.port
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Client.connect({ port })
        const socket = yield* listener.accept
        // The server closes first, so the server's end (on `port`) goes to TIME_WAIT.
        yield* callback<void>((resume) => {
          socket.end(() => resume(Effect.void))
        })
        yield* Client.readAll(client)
        yield* client.end
        yield* callback<void>((resume) => {
          socket.once("close", () => resume(Effect.void))
          socket.resume()
        })
      }))
      yield* Scope.close(scope, Exit.void)
      expect(timeWaitCount(port)).toBeGreaterThan(0)
      const again = yield* Listener.make({ port })
      expect(again.address.port).toBe(port)
    }).pipe(Effect.scoped))

  it.live("release destroys sockets accepted and never taken, and ones a consumer forgot", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* extendScope(scope)(Listener.make())
      const port = listener.address.port
      const clients = yield* Effect.all([1, 2, 3].map(() => Client.connect({ port })))
      yield* listener.accept // taken and forgotten
      while ((yield* listener.pending) < 2) yield* Effect.sleep("5 millis")
      yield* Scope.close(scope, Exit.void)
      // Every client sees its connection end: the server kept nothing open.
      for (const client of clients) {
        const ended = yield* Effect.match(Client.readAll(client), {
          onFailure: () => 0,
          onSuccess: (data) => data.length
        })
        expect(ended).toBe(0)
      }
    }).pipe(Effect.scoped))
})
