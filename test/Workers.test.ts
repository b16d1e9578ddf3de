/**
 * Several processes on one port: the library's Workers (a primary in this process, workers of a
 * script), and `serve --workers N`, the binary's primary. Real processes, real loopback sockets
 * on port 0; every wait bounded.
 */
import { extendScope } from "#line/kit"
import { callback } from "#line/runtime"
import { fork } from "#test-line/guarantees"
import { tapRecurrences } from "#test-line/workers"
import { afterEach, describe, expect, it, onTestFinished } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Ref, Schedule, Scope } from "effect"
import { spawnSync } from "node:child_process"
import cluster from "node:cluster"
import * as net from "node:net"
import * as path from "node:path"
import { Client, Listener } from "../src/index.js"
import type { TestKit } from "../src/index.js"
import * as MetricsWire from "../src/internal/metricsWire.js"
import * as Prometheus from "../src/Prometheus.js"
import * as Workers from "../src/Workers.js"
import { dist, runAsync, type Running, serve, untilNotReady } from "./utils/cli.js"
import { eventually, rawConnect, readToEnd } from "./utils/peers.js"

const fixture = path.resolve(import.meta.dirname, "fixtures/worker.mjs")

// node:cluster's scheduling is one setting per process, fixed by its first fork. This file's tests
// fork in one process with either sharing (reusePort where Node has it, from 22.12), so each
// worker accepting itself is set before any fork, as a primary that forks with both would: else a
// reusePort fork first fixes round robin, and the test that asks for node:cluster's sharing is refused.
cluster.schedulingPolicy = cluster.SCHED_NONE

const run = (options: Partial<Workers.Options> & { readonly mode?: string } = {}) =>
  Workers.make({
    workers: 2,
    exec: fixture,
    args: [],
    execArgv: [],
    env: { FIXTURE: options.mode ?? "serve" },
    ...options
  })

/** A series without labels, from an exposition. */
const seriesOf = (text: string, name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1])

/** What one worker accepted, from the primary's exposition (0 before it accepted any). */
const acceptedBy = (text: string, worker: string) =>
  Number(
    new RegExp(`^echo_worker_connections_accepted_total\\{worker="${worker}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0
  )

/** Connects two idle peers (in the scope), waits until both are accepted: how many are served. */
const servedOfTwo = (workers: Workers.Workers, port: number) =>
  Effect.gen(function*() {
    const accepted = seriesOf(yield* workers.exposition, "echo_connections_accepted_total")
    yield* rawConnect(port)
    yield* rawConnect(port)
    const text = yield* eventually(
      workers.exposition,
      (t) => seriesOf(t, "echo_connections_accepted_total") - accepted === 2
    )
    return seriesOf(text, "echo_connections_active")
  })

/** `count` exact echoes, one connection each. */
const roundTrips = (port: number, count: number, size = 10) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => Buffer.from(`trip ${i} `.repeat(size))),
    (payload) =>
      Effect.map(Client.roundTrip({ port }, [payload]), (echoed) =>
        expect(Buffer.from(echoed).equals(payload)).toBe(true)),
    {
      discard: true
    }
  )

/**
 * Exact echoes, `batch` connections at a time, until each of `ids` accepted one since the call (at
 * most 8 batches): how many were made. The kernel picks the worker (whichever wakes first on the
 * shared socket, or reusePort's hash), so no fixed number reaches each of them for certain.
 */
const roundTripsUntilEach = (
  workers: Workers.Workers,
  ids: ReadonlyArray<string>,
  batch: number,
  size?: number
) =>
  Effect.gen(function*() {
    const before = yield* workers.exposition
    let made = 0
    for (let i = 0; i < 8; i++) {
      yield* roundTrips(workers.address.port, batch, size)
      made += batch
      const now = yield* workers.exposition
      if (ids.every((id) => acceptedBy(now, id) > acceptedBy(before, id))) break
    }
    return made
  })

describe("the metrics of several processes", () => {
  it("summed series by series: counters, gauges, histograms and frequencies add up; a summary stays per worker", () => {
    const histogram = (counts: [number, number, number]) => ({
      name: "h_seconds",
      description: "h",
      tags: [],
      kind: "histogram" as const,
      buckets: [[0.1, counts[0]], [1, counts[1]], [Number.POSITIVE_INFINITY, counts[2]]] as const,
      count: counts[2],
      min: 0.01,
      max: 2,
      sum: 1.5
    })
    const worker = (n: number): ReadonlyArray<MetricsWire.Series> => [
      { name: "c_total", description: "c", tags: [], kind: "counter", incremental: true, value: n },
      { name: "c_total", description: "c", tags: [["reason", "x"]], kind: "counter", incremental: true, value: 10 * n },
      { name: "g", description: "g", tags: [], kind: "gauge", value: n },
      histogram([n, 2 * n, 3 * n]),
      { name: "f", description: "f", tags: [], kind: "frequency", occurrences: [["a", n]] },
      {
        name: "s",
        description: "s",
        tags: [],
        kind: "summary",
        error: 0.01,
        quantiles: [[0.5, n]],
        count: 1,
        min: n,
        max: n,
        sum: n
      }
    ]
    const text = Prometheus.formatSeries(MetricsWire.sum([
      { label: "1", series: worker(1) },
      { label: "2", series: worker(2) }
    ]))
    expect(text).toMatch(/^c_total 3$/m)
    expect(text).toMatch(/^c_total\{reason="x"\} 30$/m)
    expect(text).toMatch(/^g 3$/m)
    expect(text).toMatch(/^h_seconds_bucket\{le="0\.1"\} 3$/m)
    expect(text).toMatch(/^h_seconds_bucket\{le="\+Inf"\} 9$/m)
    expect(text).toMatch(/^h_seconds_sum 3$/m)
    expect(text).toMatch(/^f_total\{key="a"\} 3$/m)
    expect(text).toMatch(/^s\{worker="1",quantile="0\.5"\} 1$/m)
    expect(text).toMatch(/^s\{worker="2",quantile="0\.5"\} 2$/m)
  })

  it("the sum as series: bigints stay exact, histograms add when their buckets agree and stay apart when not", () => {
    const none = { description: undefined, tags: [] } as const
    const histogram = (les: ReadonlyArray<number>, n: number): MetricsWire.Series => ({
      name: "h",
      ...none,
      kind: "histogram",
      buckets: les.map((le) => [le, n] as const),
      count: n,
      min: n,
      max: 10 * n,
      sum: n
    })
    const summary: MetricsWire.Series = {
      name: "s",
      ...none,
      kind: "summary",
      error: 0.01,
      quantiles: [[0.5, 1]],
      count: 1,
      min: 1,
      max: 1,
      sum: 1
    }
    const summed = MetricsWire.sum([
      {
        label: "1",
        series: [
          { name: "g", description: undefined, tags: [["k", "v"]], kind: "gauge", value: 100 },
          { name: "c", ...none, kind: "counter", incremental: true, value: 2n ** 60n },
          { name: "d", ...none, kind: "counter", incremental: true, value: 1 },
          { name: "g", ...none, kind: "gauge", value: 1 },
          histogram([1, Infinity], 1),
          summary
        ]
      },
      {
        label: "2",
        series: [
          { name: "c", ...none, kind: "counter", incremental: true, value: 1 },
          { name: "d", ...none, kind: "counter", incremental: true, value: 2n },
          { name: "g", ...none, kind: "gauge", value: 2 },
          histogram([1, Infinity], 2)
        ]
      },
      // Other buckets: other boundaries, or fewer of them (what a process sends is not trusted to be whole).
      { label: "3", series: [histogram([2, Infinity], 3), histogram([1], 4)] }
    ])
    expect(summed).toEqual([
      { name: "g", description: undefined, tags: [["k", "v"]], kind: "gauge", value: 100 },
      { name: "c", ...none, kind: "counter", incremental: true, value: 2n ** 60n + 1n },
      { name: "d", ...none, kind: "counter", incremental: true, value: 3n },
      { name: "g", ...none, kind: "gauge", value: 3 },
      { ...histogram([1, Infinity], 3), min: 1, max: 20 },
      { ...summary, tags: [["worker", "1"]] },
      { ...histogram([2, Infinity], 3), tags: [["worker", "3"]] },
      { ...histogram([1], 4), tags: [["worker", "3"]] }
    ])
    // The value of the untagged counter or gauge of that name; 0 for anything else.
    expect([MetricsWire.valueOf(summed, "g"), MetricsWire.valueOf(summed, "c")]).toEqual([3, 2 ** 60 + 1])
    expect([MetricsWire.valueOf(summed, "h"), MetricsWire.valueOf(summed, "s"), MetricsWire.valueOf(summed, "x")])
      .toEqual([0, 0, 0])
  })
})

describe("metrics across processes, written", () => {
  it("bigint counters and gauges stay bigint, and a counter that can go down is a gauge", () => {
    const text = Prometheus.formatSeries([
      { name: "b_total", description: undefined, tags: [], kind: "counter", incremental: true, value: 2n ** 64n },
      { name: "bg", description: "b", tags: [], kind: "gauge", value: 7n },
      { name: "n_total", description: undefined, tags: [["k", "v"]], kind: "counter", incremental: false, value: 3 }
    ])
    expect(text).toBe([
      "# HELP b_total b_total (no description given)",
      "# TYPE b_total counter",
      "b_total 18446744073709551616",
      "# HELP bg b",
      "# TYPE bg gauge",
      "bg 7",
      "# HELP n_total n_total (no description given)",
      "# TYPE n_total gauge",
      "n_total{k=\"v\"} 3",
      ""
    ].join("\n"))
  })
})

describe("Workers (the library)", () => {
  it.live("two workers serve one port: the echo is exact, both serve, and the exposition sums them", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const workers = yield* extendScope(run(), scope)
      expect(workers.sharing).toBe(Listener.reusePortSupported ? "reusePort" : "cluster")
      expect((yield* workers.workers).map((w) => w.state)).toEqual(["listening", "listening"])
      expect(yield* workers.ready).toBe(true)
      const made = yield* roundTripsUntilEach(workers, ["1", "2"], 24, 1000)
      const text = yield* workers.exposition
      expect(text).toMatch(new RegExp(`^echo_connections_accepted_total ${made}$`, "m"))
      for (const worker of ["1", "2"]) {
        const sample = new RegExp(`^echo_worker_connections_accepted_total\\{worker="${worker}"\\} (\\d+)$`, "m").exec(
          text
        )
        expect(Number(sample?.[1])).toBeGreaterThan(0)
      }
      expect(text).toMatch(/^echo_workers_listening 2$/m)
      const summary = yield* workers.shutdown
      expect(summary).toMatchObject({ clean: true, killed: [] })
      expect(summary.exits.map((e) => e.code)).toEqual([0, 0])
      expect(yield* workers.ready).toBe(false)
      yield* Scope.close(scope, Exit.void)
      const refused = yield* Effect.flip(Effect.scoped(Client.connect({ port: workers.address.port })))
      expect(refused.reason).toBe("Refused")
    }))

  it.live("as a layer: built once every worker listens, released as the graceful shutdown of all", () =>
    Effect.gen(function*() {
      const port = yield* Effect.gen(function*() {
        const workers = yield* Workers.WorkersService
        const echoed = yield* Client.roundTrip({ port: workers.address.port }, [Buffer.from("layer")])
        expect(Buffer.from(echoed).toString()).toBe("layer")
        return workers.address.port
      }).pipe(
        Effect.provide(Workers.layer({ workers: 2, exec: fixture, args: [], execArgv: [], env: { FIXTURE: "serve" } }))
      )
      const refused = yield* Effect.flip(Effect.scoped(Client.connect({ port })))
      expect(refused.reason).toBe("Refused")
    }))

  it.live("a worker that cannot listen fails the start, naming what it reported", () =>
    Effect.gen(function*() {
      const taken = net.createServer()
      yield* Effect.promise(() => new Promise<void>((r) => taken.listen(0, "127.0.0.1", r)))
      const port = (taken.address() as net.AddressInfo).port
      const error = yield* Effect.flip(Effect.scoped(run({ port })))
      taken.close()
      expect(error.reason).toBe("StartFailed")
      expect(error.message).toMatch(
        new RegExp(`^worker \\d could not start: 127\\.0\\.0\\.1:${port} is already in use$`)
      )
    }))

  it.live("workers that keep dying are restarted with a backoff, then the primary gives up on the crash loop", () =>
    Effect.gen(function*() {
      const workers = yield* run({ mode: "crash", workers: 1, crashLoop: { restarts: 3, within: "1 minute" } })
      const error = yield* Effect.flip(workers.failed)
      expect(error.reason).toBe("CrashLoop")
      expect(error.message).toMatch(
        /^workers died 4 times within 1m: giving up \(a crash loop\); the last, worker 1, pid \d+, exited with code 3$/
      )
      // Its own fields, under the one tag.
      expect(error).toMatchObject({ _tag: "WorkersError", worker: 1, deaths: 4, limit: "restarts" })
      expect(Workers.isWorkersError(error)).toBe(true)
      expect(yield* workers.exposition).toMatch(/^echo_worker_restarts_total\{worker="1"\} 3$/m)
    }).pipe(Effect.scoped))

  it.live("the restart schedule decides: each restart is one of its steps, and when it ends the primary gives up", () =>
    Effect.gen(function*() {
      // The counters are the process's (earlier tests restarted worker 1 too): read the delta.
      const restartsOf = (text: string) =>
        Number(/^echo_worker_restarts_total\{worker="1"\} (\d+)$/m.exec(text)?.[1] ?? 0)
      const before = restartsOf(yield* Prometheus.exposition)
      const steps: Array<number> = []
      // Two restarts, then the schedule is done: well below the crash loop's count.
      const restart = Schedule.recurs(2).pipe(tapRecurrences((n) => Effect.sync(() => steps.push(n))))
      const workers = yield* run({
        mode: "crash",
        workers: 1,
        restart,
        crashLoop: { restarts: 10, within: "1 minute" }
      })
      const error = yield* Effect.flip(workers.failed)
      // One step per restart; the step that ended the schedule is not one.
      expect(steps).toEqual([0, 1])
      expect(error.reason).toBe("CrashLoop")
      expect(error.message).toMatch(/worker 1, exited with code 3, and the restart schedule ended$/)
      expect(error).toMatchObject({ death: "exited with code 3", deaths: 3, limit: "schedule" })
      // Two restarts happened; the third death found the schedule done.
      expect(restartsOf(yield* workers.exposition) - before).toBe(2)
    }).pipe(Effect.scoped))

  it.live("suspend and resume reach every worker: the port refuses newcomers, then both serve them on the same port", () =>
    Effect.gen(function*() {
      const workers = yield* run()
      const port = workers.address.port
      yield* workers.suspend
      expect(yield* workers.ready).toBe(false)
      // Both workers closed it: with node:cluster the port stays open while any one holds it.
      const refused = yield* Effect.flip(Effect.scoped(Client.connect({ port })))
      expect(refused.reason).toBe("Refused")
      yield* workers.suspend
      const before = yield* workers.exposition
      yield* workers.resume
      expect(yield* workers.ready).toBe(true)
      yield* roundTripsUntilEach(workers, ["1", "2"], 8)
      // Each worker took some: both listen again.
      const after = yield* workers.exposition
      for (const id of ["1", "2"]) expect(acceptedBy(after, id) - acceptedBy(before, id)).toBeGreaterThan(0)
    }).pipe(Effect.scoped))

  it.live("controls asked at once are applied in order: a resume then a suspend leaves the workers suspended", () =>
    Effect.gen(function*() {
      const workers = yield* run()
      yield* workers.suspend
      yield* Effect.all([workers.resume, workers.suspend], { concurrency: "unbounded", discard: true })
      expect(yield* workers.ready).toBe(false)
      const refused = yield* Effect.flip(Effect.scoped(Client.connect({ port: workers.address.port })))
      expect(refused.reason).toBe("Refused")
    }).pipe(Effect.scoped))

  it.live("a control a worker refuses fails, naming the worker and why: a resume on a port taken meanwhile", () =>
    Effect.gen(function*() {
      const workers = yield* run({ workers: 1 })
      const port = workers.address.port
      yield* workers.suspend
      const taken = net.createServer()
      yield* Effect.acquireRelease(
        callback<void>((resume) => {
          taken.listen(port, "127.0.0.1", () => resume(Effect.void))
        }),
        () =>
          callback<void>((resume) => {
            taken.close(() => resume(Effect.void))
          })
      )
      const error = yield* Effect.flip(workers.resume)
      expect(error.reason).toBe("ControlFailed")
      expect(error.message).toBe(`worker 1 could not resume: 127.0.0.1:${port} is already in use`)
      expect(error).toMatchObject({ worker: 1, control: "resume", detail: `127.0.0.1:${port} is already in use` })
      // No worker accepts: not ready.
      expect(yield* workers.ready).toBe(false)
    }).pipe(Effect.scoped))

  it.live("a worker that dies while suspended is restarted once they resume, on the same port (0 asked)", () =>
    Effect.gen(function*() {
      const workers = yield* run()
      yield* workers.suspend
      const first = (yield* workers.workers).find((w) => w.id === 1)!
      process.kill(first.pid, "SIGKILL")
      yield* eventually(workers.workers, (list) => list.every((w) => w.id !== 1))
      yield* workers.resume
      yield* eventually(
        workers.workers,
        (list) => list.some((w) => w.id === 1 && w.restarts === 1 && w.state === "listening")
      )
      yield* roundTripsUntilEach(workers, ["1"], 8)
      // The restarted worker (its counters start at 0) took some: it serves the port the others do.
      expect(acceptedBy(yield* workers.exposition, "1")).toBeGreaterThan(0)
    }).pipe(Effect.scoped))

  it.live("a limit set before a worker died holds in the worker restarted in its place", () =>
    Effect.gen(function*() {
      const workers = yield* run({ workers: 1 })
      const port = workers.address.port
      yield* workers.setMaxConnections(1)
      const [before] = yield* workers.workers
      process.kill(before!.pid, "SIGKILL")
      yield* eventually(workers.workers, ([w]) => w?.restarts === 1 && w.state === "listening")
      // Of two peers, one is served and one waits.
      expect(yield* servedOfTwo(workers, port)).toBe(1)
    }).pipe(Effect.scoped))

  it.live("setMaxConnections reaches the workers: past it, a newcomer is accepted and waits", () =>
    Effect.gen(function*() {
      const workers = yield* run({ workers: 1 })
      const port = workers.address.port
      const invalid = yield* Effect.flip(workers.setMaxConnections(0))
      expect(invalid.message).toBe("invalid maxConnections: 0 (expected a positive integer below 2^31)")
      // What the primary lets through, a worker's server may still refuse: its own rule, its words.
      const refused = yield* Effect.flip(workers.setMaxConnections(2 ** 31 - 2))
      expect(refused.reason).toBe("ControlFailed")
      expect(refused.message).toMatch(/^worker 1 could not set maxConnections: .*maxConnections \+ maxPending/)
      yield* workers.setMaxConnections(1)
      expect(yield* servedOfTwo(workers, port)).toBe(1)
    }).pipe(Effect.scoped))

  it.live("a worker killed with peers in flight to it: each gets its whole echo and a FIN, or a reset; none hangs", () =>
    Effect.gen(function*() {
      // The primary's socket on every Node (reusePort, where Node has it, never involves the primary).
      const workers = yield* run({ sharing: "cluster" })
      const port = workers.address.port
      const activeOf = (text: string, worker: string) =>
        Number(new RegExp(`^echo_worker_connections_active\\{worker="${worker}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0)
      // Idle peers, until worker 2 holds some: what they send once it is stopped stays unread.
      const idle: Array<TestKit.PeerSocket> = []
      for (let i = 0; i < 40 && activeOf(yield* workers.exposition, "2") === 0; i++) {
        const accepted = seriesOf(yield* workers.exposition, "echo_connections_accepted_total")
        idle.push(yield* rawConnect(port))
        yield* eventually(workers.exposition, (t) => seriesOf(t, "echo_connections_accepted_total") > accepted)
      }
      const heldBy2 = activeOf(yield* workers.exposition, "2")
      expect(heldBy2).toBeGreaterThan(0)
      const victim = (yield* workers.workers).find((w) => w.id === 2)!.pid
      // Stopped, then killed: the connections it holds, or that are on their way to it, are in
      // flight for as long as the test needs, not for a moment the kill would have to hit.
      process.kill(victim, "SIGSTOP")
      onTestFinished(() => {
        try {
          process.kill(victim, "SIGKILL")
        } catch {
          // Gone already.
        }
      })
      const ended = yield* Ref.make(0)
      /** Sends, half-closes and reads to the end: what came back and how it ended, or a hang. */
      const exchange = (socket: TestKit.PeerSocket, payload: Buffer) =>
        Effect.gen(function*() {
          // Sent and half-closed once written: the bytes are in the kernel before the kill.
          yield* callback<void>((resume) => {
            socket.once("finish", () => resume(Effect.void))
            socket.write(payload)
            socket.end()
          })
          const read = yield* Effect.timeoutOption(readToEnd(socket), "15 seconds")
          yield* Ref.update(ended, (n) => n + 1)
          return Option.match(read, {
            onNone: () => "hang",
            onSome: ({ data, error }) =>
              error !== undefined
                ? "reset"
                : data.equals(payload)
                ? "whole echo, FIN"
                : `${data.length} of ${payload.length} bytes, FIN`
          })
        })
      const held = yield* Effect.forEach(idle, (socket, i) => exchange(socket, Buffer.from(`idle ${i}`)), {
        concurrency: "unbounded"
      }).pipe(fork)
      const burst = yield* Effect.forEach(
        Array.from({ length: 24 }, (_, i) => i),
        (i) => Effect.flatMap(rawConnect(port), (socket) => exchange(socket, Buffer.from(`burst ${i}`))),
        { concurrency: "unbounded" }
      ).pipe(fork)
      // Every peer but those worker 2 holds, and one more it may have been handed, is answered.
      yield* eventually(Ref.get(ended), (n) => n >= idle.length - heldBy2 + 24 - 1, 3000)
      process.kill(victim, "SIGKILL")
      const outcomes = [...yield* Fiber.join(held), ...yield* Fiber.join(burst)]
      expect(outcomes.filter((o) => o !== "whole echo, FIN" && o !== "reset")).toEqual([])
      // The peers it held, whose bytes it never read, were reset; every other one was answered.
      expect(outcomes.filter((o) => o === "reset")).toHaveLength(heldBy2)
    }).pipe(Effect.scoped))

  it("round robin, asked for or fixed by an earlier fork, is refused before any worker starts", () => {
    // A process of its own each: node:cluster's scheduling is one setting per process.
    const primary = (before: string, env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [
        "--input-type=module",
        "-e",
        `import cluster from "node:cluster"
        import { Effect } from "effect"
        import * as Workers from ${JSON.stringify(path.join(dist, "Workers.js"))}
        ${before}
        const made = Workers.make({ workers: 1, exec: ${JSON.stringify(fixture)}, sharing: "cluster" })
        const error = await Effect.runPromise(Effect.flip(Effect.scoped(made)))
        console.log(error.reason + ": " + error.message)`
      ], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 30_000 }).stdout.trim()
    expect(primary("", { NODE_CLUSTER_SCHED_POLICY: "rr" })).toBe(
      "InvalidOption: invalid NODE_CLUSTER_SCHED_POLICY: \"rr\" (expected none, or unset: with round robin the " +
        "primary holds each connection until a worker takes it, and one on its way to a worker that dies is never " +
        "served nor closed)"
    )
    expect(primary(`cluster.setupPrimary({ exec: ${JSON.stringify(fixture)} })`)).toMatch(
      /^InvalidOption: invalid cluster\.schedulingPolicy: "SCHED_RR" \(expected SCHED_NONE, set before this process forks its first worker: with round robin/
    )
  })

  it.effect("options are checked before any process starts", () =>
    Effect.gen(function*() {
      const invalid = yield* Effect.flip(Effect.scoped(run({ workers: 0 })))
      expect(invalid.message).toBe("invalid workers: 0 (expected an integer from 1 to 1024)")
      expect(invalid).toMatchObject({ reason: "InvalidOption", option: "workers", value: 0 })
      expect(Workers.isWorkersError(invalid) && !Workers.isWorkersError(new Error("other"))).toBe(true)
      if (!Listener.reusePortSupported) {
        const reuse = yield* Effect.flip(Effect.scoped(run({ sharing: "reusePort" })))
        expect(reuse.message).toContain("reusePort needs Node 22.12 or later")
      }
    }))
})

// --- serve --workers N: the binary's primary.

const started: Array<Running> = []
const start = async (args: ReadonlyArray<string>) => {
  const running = await serve(args)
  started.push(running)
  return running
}
afterEach(() => {
  for (const running of started.splice(0)) running.child.kill("SIGKILL")
})

/** Waits (bounded) until `count` lines of the output match `pattern`; returns them. */
const lines = async (server: Running, pattern: RegExp, count = 1) => {
  for (let i = 0; i < 1000; i++) {
    const found = server.lines.filter((line) => pattern.test(line))
    if (found.length >= count) return found
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`fewer than ${count} lines match ${pattern}:\n${server.lines.join("\n")}`)
}

/** The pid of each worker now, from the primary's records (started, then restarted). */
const pids = async (server: Running) => {
  const [line] = await lines(server, /listening on \S+ with workers/)
  const now = new Map<number, number>()
  for (const [, id, pid] of line!.matchAll(/(\d+) \(pid (\d+)\)/g)) now.set(Number(id), Number(pid))
  for (const restarted of server.lines) {
    const match = /worker (\d+) \(pid (\d+)\) restarted/.exec(restarted)
    if (match !== null) now.set(Number(match[1]), Number(match[2]))
  }
  return now
}

const scrape = async (url: string) => (await fetch(url)).text()
const metricsUrl = async (server: Running) =>
  /http:\/\/\S+\/metrics/.exec((await lines(server, /metrics of all workers on http/))[0]!)![0]
const sample = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.split(" ").pop())
}

const echo = (port: number, text: string) =>
  Effect.runPromise(Client.roundTrip({ port }, [Buffer.from(text)])).then((bytes) => Buffer.from(bytes).toString())

/** A peer that writes 4 MiB and never reads: its echo stalls once the buffers are full. */
const stalled = (port: number) =>
  new Promise<net.Socket>((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.pause()
      socket.write(Buffer.alloc(4 << 20, 7))
      resolve(socket)
    })
    socket.on("error", () => {})
  })

describe("serve --workers N", () => {
  it("two workers on one port (0 asked): one stdout line, the echo exact, one /metrics summing both", async () => {
    const server = await start(["--workers", "2", "--metrics-port", "0"])
    expect(
      await lines(
        server,
        /2 workers sharing the primary's listening socket \(node:cluster|2 workers, each listening on the port itself \(reusePort/
      )
    ).toHaveLength(1)
    // Both workers bound the one port the primary announced.
    const bound = await lines(server, /listening on 127\.0\.0\.1:\d+$/, 2)
    for (const line of bound) expect(line).toContain(`127.0.0.1:${server.address.port}`)
    // Rounds of 24 until both took some (at most 8): the kernel picks which worker accepts.
    const url = await metricsUrl(server)
    let made = 0
    let text = ""
    const each = () => [1, 2].map((id) => sample(text, `echo_worker_connections_accepted_total{worker="${id}"}`) ?? 0)
    while (made < 8 * 24 && (made === 0 || each().some((served) => served === 0))) {
      for (let i = 0; i < 24; i++) expect(await echo(server.address.port, `exact ${i % 10}`)).toBe(`exact ${i % 10}`)
      made += 24
      text = await scrape(url)
    }
    expect(sample(text, "echo_connections_accepted_total")).toBe(made)
    expect(sample(text, "echo_sent_bytes_total")).toBe(made * "exact 0".length)
    // Both served, and between them every connection.
    expect(each()[0]! + each()[1]!).toBe(made)
    for (const served of each()) expect(served).toBeGreaterThan(0)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    expect(server.stdout).toEqual([
      `listening on 127.0.0.1:${server.address.port}`,
      expect.stringMatching(/^metrics on 127\.0\.0\.1:\d+$/)
    ])
    expect(await lines(server, /workers stopped: worker 1 exited 0, worker 2 exited 0/)).toHaveLength(1)
  })

  it("a port in use: the workers cannot start, and the primary says so in one line, status 1", async () => {
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = (taken.address() as net.AddressInfo).port
    const result = await runAsync(["serve", "--workers", "2", "--port", String(port)])
    taken.close()
    expect(result.status).toBe(1)
    expect(result.stdout).toBe("")
    const lines = result.stderr.split("\n").filter((line) => line.startsWith("effect-tcp-echo: "))
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^effect-tcp-echo: worker \\d could not start: 127\\.0\\.0\\.1:${port} is already in use \\(address from --port\\)$`
        )
      )
    ])
  })

  it("SIGTERM to the primary with stalled peers: every worker drains under the deadline, one exit status", async () => {
    const server = await start(["--workers", "2", "--shutdown-timeout", "1s", "--metrics-port", "0"])
    const url = await metricsUrl(server)
    // Peers that send and never read: their echo stalls, and the shutdown must cut them off.
    const held = await Promise.all(Array.from({ length: 4 }, () => stalled(server.address.port)))
    for (let i = 0; i < 200 && sample(await scrape(url), "echo_connections_active") !== 4; i++) {
      await new Promise((r) => setTimeout(r, 10))
    }
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    // Each worker cut its own off at its deadline; the primary stopped once, after the last.
    expect((await lines(server, /shutdown deadline passed: cutting off/)).length).toBeGreaterThanOrEqual(1)
    expect(await lines(server, /workers stopped: /)).toHaveLength(1)
    for (const socket of held) socket.destroy()
  })

  it("SIGTERM with --drain-delay: the primary's /readyz fails at once, the workers still serve during the delay, then one exit", async () => {
    const server = await start(["--workers", "2", "--metrics-port", "0", "--drain-delay", "3s"])
    const base = (await metricsUrl(server)).replace(/\/metrics$/, "")
    expect((await fetch(`${base}/readyz`)).status).toBe(200)
    server.child.kill("SIGTERM")
    expect(await untilNotReady(base)).toBe(503)
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    // The workers still take connections.
    for (let i = 0; i < 2; i++) expect(await echo(server.address.port, `draining ${i}`)).toBe(`draining ${i}`)
    expect(await server.exited).toBe(0)
    expect(await lines(server, /accepting for 3s more \(drain delay\)/, 2)).toHaveLength(2)
  })

  it("a worker killed (SIGKILL) is restarted on the same port, logged and counted; the service goes on", async () => {
    const server = await start(["--workers", "2", "--metrics-port", "0"])
    const url = await metricsUrl(server)
    const before = await pids(server)
    process.kill(before.get(1)!, "SIGKILL")
    await lines(server, /worker 1 \(pid \d+\) was killed by SIGKILL: restarting it/)
    const [restarted] = await lines(server, /worker 1 \(pid \d+\) restarted, listening on/)
    expect(restarted).toContain(`127.0.0.1:${server.address.port}`)
    const after = await pids(server)
    expect(after.get(1)).not.toBe(before.get(1))
    expect(after.get(2)).toBe(before.get(2))
    const text = await scrape(url)
    expect(sample(text, "echo_worker_restarts_total{worker=\"1\"}")).toBe(1)
    expect(sample(text, "echo_worker_restarts_total{worker=\"2\"}")).toBe(0)
    expect(sample(text, "echo_workers_listening")).toBe(2)
    for (let i = 0; i < 4; i++) expect(await echo(server.address.port, `after ${i}`)).toBe(`after ${i}`)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
  })

  it("workers killed again and again: the primary gives up on the crash loop with one line and status 1", async () => {
    const server = await start(["--workers", "2"])
    // Both workers, three rounds: the fifth restart is the last allowed, the sixth death ends it.
    for (let round = 1; round <= 3; round++) {
      const now = await pids(server)
      for (const pid of now.values()) process.kill(pid, "SIGKILL")
      if (round < 3) await lines(server, /restarted, listening on/, 2 * round)
    }
    expect(await server.exited).toBe(1)
    expect(server.stderr.filter((line) => line.startsWith("effect-tcp-echo: "))).toEqual([
      expect.stringMatching(
        /^effect-tcp-echo: workers died 6 times within 1m: giving up \(a crash loop\); the last, worker \d, pid \d+, was killed by SIGKILL$/
      )
    ])
  })

  it("a worker that hangs (SIGSTOP) is killed at the shutdown's one deadline: status 1, naming it", async () => {
    const server = await start(["--workers", "2", "--shutdown-timeout", "0s"])
    const hung = (await pids(server)).get(2)!
    process.kill(hung, "SIGSTOP")
    // Whatever happens, no stopped process is left behind.
    onTestFinished(() => {
      try {
        process.kill(hung, "SIGKILL")
      } catch {
        // Gone already: the primary killed it.
      }
    })
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(1)
    expect(server.stderr.filter((line) => line.startsWith("effect-tcp-echo: "))).toEqual([
      "effect-tcp-echo: shutdown: worker 2 still running 3s after the signal, killed"
    ])
    expect(await lines(server, /shutdown deadline \(3s\) passed: killed worker 2/)).toHaveLength(1)
  })
})
