/**
 * Behind an L4 load balancer: the PROXY protocol (v1 and v2) from trusted sources only, the real
 * client as each connection's peer, refusals counted; through a real HAProxy when installed. And
 * what an operator controls while the server runs: suspend and resume accepting, maxConnections,
 * readiness and the drain delay.
 */
import { extendScope } from "#line/cli"
import { callback } from "#line/runtime"
import { fork } from "#test-line/guarantees"
import { capturing } from "#test-line/logging"
import { counter } from "#test-line/serving"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Option, Ref, Scope } from "effect"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Command, IPv4Address, IPv4ProxyAddress, TransportProtocol, V2ProxyProtocol } from "proxy-protocol-js"
import type { Connection } from "../src/index.js"
import { Client, Metrics, Server, TestKit } from "../src/index.js"
import * as Proxy from "../src/internal/proxy.js"
import { eventually, rawConnect, readToEnd } from "./utils/peers.js"

const dropped = (reason: string) => counter(Metrics.connectionsDropped, reason)

/** An echo that also records the peer each connection names. */
const recording = (peers: Ref.Ref<Array<string>>): Server.Handler<Connection.ConnectionError> => (connection) =>
  Effect.andThen(Ref.update(peers, (all) => [...all, connection.peer]), connection.echo)

const v2Header = (source: [number, number, number, number], port: number, command = Command.PROXY) =>
  Buffer.from(
    new V2ProxyProtocol(
      command,
      TransportProtocol.STREAM,
      new IPv4ProxyAddress(new IPv4Address(source), port, new IPv4Address([127, 0, 0, 1]), 7)
    ).build()
  )

/** Sends `chunks` one write at a time, half-closes, and reads the echo to its end. */
const exchange = (port: number, chunks: ReadonlyArray<Buffer>) =>
  Effect.scoped(Effect.gen(function*() {
    const peer = yield* rawConnect(port)
    for (const chunk of chunks) peer.write(chunk)
    peer.end()
    return yield* readToEnd(peer)
  }))

describe("the PROXY protocol", () => {
  it.live("a v1 header names the client; the echo is exactly what came after it, even split", () =>
    Effect.scoped(Effect.gen(function*() {
      const peers = yield* Ref.make<Array<string>>([])
      const server = yield* Server.make({ proxyProtocol: {} }, recording(peers))
      const header = Buffer.from("PROXY TCP4 127.9.8.7 127.0.0.1 40000 7\r\n")
      // The header in three writes, the payload glued to its end.
      const end = yield* exchange(server.address.port, [
        header.subarray(0, 5),
        header.subarray(5, 20),
        Buffer.concat([header.subarray(20), Buffer.from("hello")])
      ])
      expect(end.data.toString()).toBe("hello")
      expect(yield* Ref.get(peers)).toEqual(["127.9.8.7:40000"])
    })))

  it.live("a v2 header names the client; a v2 LOCAL header (a health check) keeps the socket's peer", () =>
    Effect.scoped(Effect.gen(function*() {
      const peers = yield* Ref.make<Array<string>>([])
      const server = yield* Server.make({ proxyProtocol: {} }, recording(peers))
      const port = server.address.port
      expect((yield* exchange(port, [v2Header([127, 5, 6, 7], 5555), Buffer.from("v2")])).data.toString()).toBe("v2")
      expect((yield* exchange(port, [v2Header([127, 5, 6, 7], 5555, Command.LOCAL)])).data.length).toBe(0)
      const [proxied, local] = yield* Ref.get(peers)
      expect(proxied).toBe("127.5.6.7:5555")
      expect(local).toMatch(/^127\.0\.0\.1:\d+$/)
    })))

  it.live("no header, a malformed one, or one too slow: refused, reset, and counted", () =>
    Effect.scoped(Effect.gen(function*() {
      const served = yield* Ref.make<Array<string>>([])
      const server = yield* Server.make({ proxyProtocol: { headerTimeout: "200 millis" } }, recording(served))
      const port = server.address.port
      const malformed = yield* dropped("proxy_malformed")
      const timeout = yield* dropped("proxy_timeout")
      // Plain bytes where the header should be, and a v1 header that never ends.
      const plain = yield* exchange(port, [Buffer.from("GET / HTTP/1.0\r\n\r\n")])
      expect(plain.data.length).toBe(0)
      expect(plain.error).toBe("ECONNRESET")
      yield* exchange(port, [Buffer.from("PROXY TCP4 " + "9".repeat(200))])
      yield* eventually(dropped("proxy_malformed"), (n) => n === malformed + 2)
      // A peer that says nothing at all.
      const silent = yield* rawConnect(port)
      expect((yield* readToEnd(silent)).error).toBe("ECONNRESET")
      yield* eventually(dropped("proxy_timeout"), (n) => n === timeout + 1)
      expect(yield* Ref.get(served)).toEqual([])
    })))

  it.live("a connection from a source that is not a trusted proxy is refused before it is served", () =>
    Effect.scoped(Effect.gen(function*() {
      const served = yield* Ref.make<Array<string>>([])
      const server = yield* Server.make({ proxyProtocol: { trustedProxies: ["127.0.0.2/32"] } }, recording(served))
      const untrusted = yield* dropped("proxy_untrusted")
      // Reset at once: it may fail to connect at all, or read nothing before the end.
      const peer = yield* Effect.option(rawConnect(server.address.port))
      yield* eventually(dropped("proxy_untrusted"), (n) => n === untrusted + 1)
      if (Option.isSome(peer)) expect((yield* readToEnd(peer.value)).data.length).toBe(0)
      expect(yield* Ref.get(served)).toEqual([])
    })))

  it.live("a peer that resets before its address is read, or before its header, is a reset, not a refusal", () =>
    Effect.scoped(Effect.gen(function*() {
      const served = yield* Ref.make<Array<string>>([])
      const log = capturing()
      const scope = yield* Scope.make()
      const server = yield* log.around(extendScope(scope)(Server.make({ proxyProtocol: {} }, recording(served))))
      const port = server.address.port
      const counts = Effect.all({
        untrusted: dropped("proxy_untrusted"),
        malformed: dropped("proxy_malformed"),
        resets: counter(Metrics.connectionsReset),
        errors: counter(Metrics.connectionErrors, "Reset")
      })
      const before = yield* counts
      // A load balancer's health check, or a proxy that gave up: a whole header, then a reset, all
      // of it while this process cannot accept (its event loop waits for the peer's): the kernel
      // completes the handshake, and the server accepts a connection whose peer is already gone.
      // Two of them, accepted in one turn of the event loop: the second is summed up with the first.
      execFileSync(process.execPath, [
        "-e",
        `for (let i = 0; i < 2; i++) { const s = require("node:net").connect(${port}, "127.0.0.1", () => { ` +
        `s.write("PROXY TCP4 127.9.8.7 127.0.0.1 40000 7\\r\\n"); s.resetAndDestroy() }); s.on("error", () => {}) }`
      ], { timeout: 30_000 })
      yield* eventually(counts, (now) => now.resets === before.resets + 2)
      expect(log.records.filter((r) => r.message.includes("gone before"))).toEqual([
        expect.objectContaining({
          level: "INFO",
          message: "a peer gone before its address was read reset the connection"
        })
      ])
      // The same reset once the server reads, before any header came.
      const peer = yield* rawConnect(port)
      const accepted = yield* eventually(server.connections, (live) => live.length === 1)
      expect(accepted).toHaveLength(1)
      peer.resetAndDestroy()
      const after = yield* eventually(counts, (now) => now.resets === before.resets + 3)
      expect(after).toEqual({ ...before, resets: before.resets + 3, errors: before.errors + 3 })
      expect(yield* Ref.get(served)).toEqual([])
      // Summed up under the kind every reset is, the second gone peer with it.
      yield* Scope.close(scope, Exit.void)
      expect(
        log.records.filter((r) =>
          /^connections ended \(Reset\): \d more within 1s, from a peer gone before its address was read/.test(
            r.message
          )
        )
      ).toHaveLength(1)
    })))

  it.effect("trusted proxies are IPv4 networks or addresses; anything else is a ServerError naming it", () =>
    Effect.gen(function*() {
      for (const bad of [["10.0.0.0/33"], ["::1"], ["10.0.0"], "10.0.0.0/8"]) {
        const error = yield* Effect.flip(
          Server.make({ proxyProtocol: { trustedProxies: bad as ReadonlyArray<string> } })
        )
        expect(error._tag === "ServerError" && error.option).toBe("proxyProtocol.trustedProxies")
      }
      const slow = yield* Effect.flip(Server.make({ proxyProtocol: { headerTimeout: "0 millis" } }))
      expect(slow._tag === "ServerError" && slow.option).toBe("proxyProtocol.headerTimeout")
    }).pipe(Effect.scoped))

  it("frames a header from its first bytes: whole, not yet, or not a header", async () => {
    const v1 = Buffer.from("PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\nrest")
    expect(Proxy.frame(v1)).toBe(v1.indexOf("rest"))
    expect(Proxy.frame(v1.subarray(0, 3))).toBeUndefined()
    expect(Proxy.frame(Buffer.from("PROXY TCP4 1.2.3.4"))).toBeUndefined()
    expect(Proxy.frame(Buffer.from("HELLO"))).toBe("invalid")
    expect(Proxy.frame(Buffer.from("PROXY " + "x".repeat(120)))).toBe("invalid")
    const v2 = Buffer.concat([v2Header([127, 0, 0, 1], 1), Buffer.from("rest")])
    expect(Proxy.frame(v2)).toBe(v2.length - 4)
    expect(Proxy.frame(v2.subarray(0, 15))).toBeUndefined()
    expect(Proxy.frame(v2.subarray(0, v2.length - 5))).toBeUndefined()
    await Effect.runPromise(Proxy.load)
    expect(Proxy.client(Buffer.from("PROXY UNKNOWN\r\n"))).toBeUndefined()
    expect(Proxy.client(Buffer.from("PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n"))).toBe("invalid")
    const tens = Proxy.cidr("10.0.0.0/8")
    if (tens._tag === "Invalid") throw new Error(tens.error)
    const policy: Proxy.Policy = { trusted: [tens.value], timeout: Duration.seconds(1) }
    expect(Proxy.isTrusted(policy, "::ffff:10.2.3.4")).toBe(true)
    expect(Proxy.isTrusted(policy, "11.0.0.1")).toBe(false)
    expect(Proxy.isTrusted(policy, undefined)).toBe(false)
  })

  it("a v1 header whose source or destination is not an address and a TCP port is malformed", async () => {
    await Effect.runPromise(Proxy.load)
    expect(Proxy.client(Buffer.from("PROXY TCP4 127.9.8.7 127.0.0.1 40000 7\r\n"))).toBe("127.9.8.7:40000")
    expect(Proxy.client(Buffer.from("PROXY TCP6 ::1 ::2 40000 7\r\n"))).toBe("[::1]:40000")
    // The destination is checked as the source is: an address of the header's family, a TCP port.
    for (
      const header of [
        "PROXY TCP4 1.1.1.1 not.an.addr.x 1 2",
        "PROXY TCP4 1.1.1.1 2.2.2.2 1 99999",
        "PROXY TCP4 1.1.1.1 2.2.2.2 99999 2",
        "PROXY TCP6 ::1 2.2.2.2 1 2",
        "PROXY TCP6 1.1.1.1 ::2 1 2"
      ]
    ) expect(Proxy.client(Buffer.from(`${header}\r\n`)), header).toBe("invalid")
  })
})

const haproxy = spawnSync("haproxy", ["-v"], { encoding: "utf8" }).status === 0
const required = process.env.ECHO_TEST_REQUIRE_HAPROXY === "1"

/** A port the kernel just gave and took back, for a program that cannot be told port 0. */
const freePort = () =>
  callback<number>((resume) => {
    const probe = net.createServer()
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resume(Effect.succeed(port)))
    })
  })

describe("behind a real HAProxy", () => {
  const title = haproxy
    ? "through HAProxy (send-proxy-v2) the echo is exact and the server sees the real client"
    : "through HAProxy: NOT RUN, haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
  it.live.skipIf(!haproxy && !required)(title, () =>
    Effect.scoped(Effect.gen(function*() {
      expect(haproxy, "haproxy is required here (ECHO_TEST_REQUIRE_HAPROXY=1) but not installed").toBe(true)
      const peers = yield* Ref.make<Array<string>>([])
      const server = yield* Server.make({ proxyProtocol: {} }, recording(peers))
      const front = yield* freePort()
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-tcp-echo-haproxy-"))
      const config = path.join(dir, "haproxy.cfg")
      fs.writeFileSync(
        config,
        [
          "defaults",
          "  mode tcp",
          "  timeout connect 5s",
          "  timeout client 30s",
          "  timeout server 30s",
          "frontend in",
          `  bind 127.0.0.1:${front}`,
          "  default_backend echo",
          "backend echo",
          `  server s1 127.0.0.1:${server.address.port} send-proxy-v2`,
          ""
        ].join("\n")
      )
      const child = spawn("haproxy", ["-f", config, "-db"], { stdio: ["ignore", "ignore", "pipe"] })
      let stderr = ""
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
      yield* Effect.addFinalizer(() =>
        callback<void>((resume) => {
          child.once("exit", () => resume(Effect.void))
          child.kill("SIGKILL")
        }).pipe(Effect.andThen(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))))
      )
      // Until HAProxy listens (bounded): then one exchange through it.
      const peer = yield* eventually(
        Effect.option(TestKit.connect(front)),
        (attempt) => Option.isSome(attempt),
        500
      ).pipe(Effect.flatMap((attempt) =>
        Option.isSome(attempt) ? Effect.succeed(attempt.value) : Effect.fail(new Error(stderr))
      ))
      const client = `127.0.0.1:${peer.socket.localPort}`
      const payload = Buffer.from(new Uint8Array(300_000).map((_, i) =>
        (i * 7) & 0xff
      ))
      yield* peer.startReading
      yield* peer.send(new Uint8Array(payload))
      yield* peer.halfClose
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().equals(payload)).toBe(true)
      // The server saw this client, as HAProxy saw it: its own address and port, not HAProxy's.
      const [seen] = yield* Ref.get(peers)
      expect(seen).toBe(client)
    })))
})

describe("what an operator controls while the server runs", () => {
  it.live("suspend refuses new connections and keeps the served ones; resume accepts again on the same port", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* Server.make()
      const port = server.address.port
      const held = yield* Client.connect({ port })
      yield* held.write(Buffer.from("a"))
      yield* held.read
      expect(yield* server.ready).toBe(true)
      yield* server.suspend
      expect(yield* server.ready).toBe(false)
      const refused = yield* Effect.flip(Client.connect({ port }))
      expect(refused.reason).toBe("Refused")
      // The connection served before goes on.
      yield* held.write(Buffer.from("b"))
      yield* held.end
      expect(Buffer.from(yield* Client.readAll(held)).toString()).toBe("b")
      yield* server.resume
      expect(yield* server.ready).toBe(true)
      expect(Buffer.from(yield* Client.roundTrip({ port }, [Buffer.from("again")])).toString()).toBe("again")
    })))

  it.live("maxConnections changes while running: lowered, newcomers wait; raised, they are served", () =>
    Effect.scoped(Effect.gen(function*() {
      const go = yield* Deferred.make<void>()
      const gated: Server.Handler<Connection.ConnectionError> = (connection) =>
        Effect.andThen(Deferred.await(go), connection.echo)
      const server = yield* Server.make({ maxConnections: 2 }, gated)
      const port = server.address.port
      yield* rawConnect(port)
      yield* rawConnect(port)
      yield* eventually(server.connections, (live) => live.length === 2)
      yield* server.setMaxConnections(2)
      yield* rawConnect(port)
      yield* eventually(server.pending, (n) => n === 1)
      yield* server.setMaxConnections(3)
      yield* eventually(server.connections, (live) => live.length === 3)
      expect(yield* server.pending).toBe(0)
      const invalid = yield* Effect.flip(server.setMaxConnections(0))
      expect(invalid.option).toBe("maxConnections")
      // With the waiting queue (maxPending, default 1,000), at most 2^31 - 2 in all: a timer's and
      // Node's maxConnections' range.
      const highest = 2 ** 31 - 2 - Server.defaults.maxPending
      const over = yield* Effect.flip(server.setMaxConnections(highest + 1))
      expect([over.option, over.value, over.expected]).toEqual([
        "maxConnections",
        highest + 1,
        "maxConnections + maxPending below 2^31 - 1"
      ])
      yield* server.setMaxConnections(highest)
      yield* server.setMaxConnections(3)
      yield* Deferred.succeed(go, undefined)
    })))

  it.live("during the drain delay the server is not ready, and still accepts and serves", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* extendScope(scope)(Server.make({ drainDelay: "300 millis" }))
      const port = server.address.port
      const closing = yield* fork(Scope.close(scope, Exit.void))
      yield* eventually(server.ready, (ready) => !ready)
      // Not ready, and yet served: the load balancer has not stopped sending yet.
      expect(Buffer.from(yield* Client.roundTrip({ port }, [Buffer.from("late")])).toString()).toBe("late")
      yield* Fiber.await(closing)
      expect((yield* Effect.flip(Effect.scoped(Client.connect({ port })))).reason).toBe("Refused")
    }))
})
