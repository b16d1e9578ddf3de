import { describe, expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Stream } from "effect"
import * as fc from "fast-check"
import * as fs from "node:fs"
import * as net from "node:net"
import type { Connection } from "../src/index.js"
import { Client, Server, TestKit } from "../src/index.js"
import { hasPrlimit, serve } from "./utils/cli.js"
import { property } from "./utils/property.js"

const runs = Number(process.env.ECHO_PROPERTY_RUNS ?? 12)
// A failure prints its seed and path: set them here to replay it
// (ECHO_PROPERTY_SEED=... ECHO_PROPERTY_PATH=... npx vitest run test/Shutdown.test.ts).
const replay = {
  ...(process.env.ECHO_PROPERTY_SEED === undefined ? {} : { seed: Number(process.env.ECHO_PROPERTY_SEED) }),
  ...(process.env.ECHO_PROPERTY_PATH === undefined ? {} : { path: process.env.ECHO_PROPERTY_PATH, endOnFailure: true })
}
const generation = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const

/** An echo written as a user would, on the pull, with a scoped resource per connection. */
const userEcho: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
  Effect.andThen(Effect.addFinalizer(() => Effect.void), Stream.runForEach(connection.stream, connection.write))

describe("shutdown at arbitrary moments (model-based)", () => {
  it(
    "whatever peers do and whenever shutdown begins, every step and the end match the model",
    property(TestKit.scenario(generation), (scenario) => TestKit.checkShutdown(scenario, generation), {
      numRuns: runs,
      ...replay
    }),
    240_000
  )

  it(
    "on the forced and crash paths too: a forced stop, a defect in the server's fiber",
    property(
      TestKit.scenario({ ...generation, crashes: true }),
      (scenario) => TestKit.checkShutdown(scenario, { ...generation, handler: userEcho, protocol: TestKit.echo }),
      { numRuns: Math.ceil(runs / 3), ...replay }
    ),
    240_000
  )

  it("most generated runs hold a peer the key invariant applies to", () => {
    // Replayed against the model alone: a peer that half-closes while reading, before shutdown,
    // and must then get its whole echo. Fixed seed: the same 500 sequences every time.
    const samples = fc.sample(TestKit.scenario(generation), { seed: 42, numRuns: 500 })
    let applying = 0
    let crossing = 0
    for (const sample of samples) {
      const model = TestKit.initialModel(900)
      for (const op of sample.operations) {
        if (!TestKit.applies(model, op)) continue
        TestKit.step(model, op)
      }
      if (model.peers.some((peer) => peer.verified)) applying++
      if (model.phase === "stopped") crossing++
    }
    // Measured with this seed: see docs/testing.md.
    expect(applying / samples.length).toBeGreaterThan(0.6)
    expect(crossing / samples.length).toBeGreaterThan(0.1)
  })

  it.live("a peer that half-closes right before shutdown still gets its echo", () =>
    Effect.gen(function*() {
      const data = new Uint8Array(12_000).map((_, i) => i & 0xff)
      const outcome = yield* TestKit.checkShutdown({
        operations: [
          { _tag: "Open" },
          { _tag: "Send", peer: 0, data },
          { _tag: "Open" },
          { _tag: "Stall", peer: 1 },
          { _tag: "Send", peer: 1, data },
          { _tag: "HalfClose", peer: 0 },
          { _tag: "Shutdown" }
        ]
      }, generation)
      expect(outcome.peers[0]).toMatchObject({ sent: 12_000, received: 12_000, ending: "eof" })
      expect(outcome.verified).toBe(1)
    }))

  it.live("a stalled peer's echo, cut off at the deadline, ends with a reset, never a clean end", () =>
    Effect.gen(function*() {
      // The server reads what it can echo: the stalled peer's data outgrows the buffers on the way.
      const data = new Uint8Array(32 * 1024 * 1024).map((_, i) => (i * 7) & 0xff)
      const outcome = yield* TestKit.checkShutdown({
        operations: [
          { _tag: "Open" },
          { _tag: "Stall", peer: 0 },
          { _tag: "Send", peer: 0, data },
          { _tag: "HalfClose", peer: 0 },
          { _tag: "Shutdown" },
          { _tag: "Wait", millis: 1_000 }
        ]
      }, generation)
      expect(outcome.peers[0]!.received).toBeLessThan(data.length)
      expect(outcome.peers[0]!.ending).toBe("reset")
    }))
})

describe("faults are contained to their connection", () => {
  it.live("a reset storm leaves the listener and other clients unaffected, and nothing leaked", () =>
    Effect.gen(function*() {
      const before = yield* TestKit.holdings
      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* Server.make()
        const port = server.address.port
        const steady = yield* Client.connect({ port })
        // 200 peers send, then reset, 20 at a time.
        yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) =>
          Effect.scoped(Effect.gen(function*() {
            const peer = yield* TestKit.connect(port)
            yield* peer.send(new Uint8Array(1000).fill(i & 0xff))
            if (i % 2 === 0) yield* peer.startReading
            yield* peer.reset
          })), { concurrency: 20, discard: true })
        // Peers that connect and close at once, and half-open peers that never send.
        yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.scoped(TestKit.connect(port)), {
          concurrency: 10,
          discard: true
        })
        yield* steady.write(new Uint8Array([1, 2, 3]))
        yield* steady.end
        expect([...(yield* Client.readAll(steady))]).toEqual([1, 2, 3])
      }))
      yield* TestKit.expectNoLeaks(before)
    }))

  it.live("connection churn returns descriptors to their baseline", () =>
    Effect.gen(function*() {
      const before = yield* TestKit.holdings
      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* Server.make()
        const payload = [new Uint8Array(100).fill(7)]
        // Fewer under mutation testing, where every mutant that reaches this code runs it again.
        yield* Effect.forEach(Array.from({ length: process.env.ECHO_MUTATION === undefined ? 2000 : 300 }), () =>
          // Without the kernel's check of each end: the table it reads grows with every TIME_WAIT here.
          Effect.flatMap(
            Client.roundTrip({ port: server.address.port, verifyEnd: false }, payload),
            (echo) => Effect.sync(() => expect(echo.length).toBe(100))
          ), { concurrency: 32, discard: true })
      }))
      yield* TestKit.expectNoLeaks(before)
    }))
})

describe("descriptor exhaustion", () => {
  it.skipIf(!hasPrlimit)(
    "a server at its open-files limit drops the excess, logs and survives, and leaks nothing",
    async () => {
      // serve needs 212 descriptors to start (measured, docs/kernel-limits.md); 400 leaves room for connections.
      const server = await serve([], {}, ["prlimit", "--nofile=400:400"])
      try {
        const fds = () => fs.readdirSync(`/proc/${server.child.pid}/fd`).length
        const baseline = fds()
        const peers: Array<net.Socket> = []
        await Promise.all(Array.from({ length: 500 }, () =>
          new Promise<void>((resolve) => {
            const socket = net.connect(server.address.port, "127.0.0.1", () => resolve())
            socket.on("error", () => resolve())
            peers.push(socket)
          })))
        const dropped = await server.waitFor(/dropped connection from 127\.0\.0\.1:\d+/)
        expect(dropped).toContain("connections held")
        expect(server.lines.some((line) => line.includes("too low, at most"))).toBe(true)
        for (const peer of peers) peer.destroy()
        // Served normally once descriptors free up, and back to its baseline.
        const echo = await Effect.runPromise(Client.roundTrip({ port: server.address.port }, [Buffer.from("ok")]))
        expect(Buffer.from(echo).toString()).toBe("ok")
        for (let i = 0; i < 500 && fds() > baseline; i++) await new Promise((r) => setTimeout(r, 10))
        expect(fds()).toBeLessThanOrEqual(baseline)
      } finally {
        server.child.kill("SIGKILL")
      }
    }
  )
})
