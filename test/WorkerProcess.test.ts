/**
 * The primary's parts of Workers without forking (internal/workers/): a worker process driven by
 * a fake cluster worker (its state, requests and replies, how it is told to end), the table of
 * processes and the port each asks for, who a worker is, and the exposition of several answers.
 */
import { poll } from "#line/runtime"
import { fork, yieldNow } from "#test-line/guarantees"
import { withLogger } from "#test-line/logging"
import { adjustClock } from "#test-line/workers"
import { describe, expect, it, onTestFinished } from "@effect/vitest"
import { Duration, Effect, Fiber, Logger, Option } from "effect"
import cluster from "node:cluster"
import { EventEmitter } from "node:events"
import * as Checked from "../src/internal/checked.js"
import * as MetricsWire from "../src/internal/metricsWire.js"
import * as Exposition from "../src/internal/workers/exposition.js"
import * as Pool from "../src/internal/workers/pool.js"
import * as Process from "../src/internal/workers/process.js"
import * as Protocol from "../src/internal/workers/protocol.js"
import * as Scheduling from "../src/internal/workers/scheduling.js"
import type * as Listener from "../src/Listener.js"

/** A cluster worker that records what it is sent and the signals it gets. */
class FakeWorker extends EventEmitter {
  readonly sent: Array<Protocol.ToWorker> = []
  readonly signals: Array<NodeJS.Signals> = []
  connected = true
  readonly process = {
    pid: 4242,
    kill: (signal: NodeJS.Signals) => {
      this.signals.push(signal)
      return true
    }
  }
  send(message: Protocol.ToWorker) {
    this.sent.push(message)
    return true
  }
  isConnected() {
    return this.connected
  }
  /** What the worker says to the primary. */
  say(message: Protocol.ToPrimary | unknown) {
    this.emit("message", message)
  }
  exit(code: number | null, signal: string | null = null) {
    this.emit("exit", code, signal)
  }
  /** The request number of the last message sent. */
  get request(): number {
    const last = this.sent.at(-1)
    return last !== undefined && "request" in last ? last.request : -1
  }
}

const tag = Protocol.tag
const address: Listener.Address = { host: "127.0.0.1", port: 7000 }
const second = Duration.seconds(1)

/** A process on a fake worker; `now` the clock it reads, `changes` how often its state changed. */
const processOf = (now = () => 1_000, id = 3) => {
  const worker = new FakeWorker()
  let changes = 0
  const p = new Process.WorkerProcess(id, worker, now, () => changes++)
  return { worker, p, changes: () => changes }
}

const listening = (id = 3) => {
  const made = processOf(undefined, id)
  made.worker.say({ [tag]: "listening", address })
  return made
}

describe("a worker process (process.ts)", () => {
  it.effect("starting, then listening once it says so: its address, since when, accepting", () =>
    Effect.gen(function*() {
      const { changes, p, worker } = processOf(() => 5_000)
      expect(p.state._tag).toBe("Starting")
      expect(p.pid).toBe(4242)
      worker.say({ [tag]: "failed" })
      worker.say({ other: "a message of the user's own" })
      worker.say(null)
      expect(p.state._tag).toBe("Starting")
      worker.say({ [tag]: "listening", address })
      expect(p.state).toEqual(Process.State.Listening({ address, since: 5_000, accepting: true }))
      expect(p.accepting).toBe(true)
      expect(changes()).toBe(1)
      expect(yield* p.listening(second)).toEqual(address)
      // Said again: nothing changes.
      worker.say({ [tag]: "listening", address: { host: "127.0.0.1", port: 1 } })
      expect(changes()).toBe(1)
    }))

  it.effect("one that does not listen in time is killed, and the start says why", () =>
    Effect.gen(function*() {
      const { p, worker } = processOf()
      const waiting = yield* fork(Effect.flip(p.listening(Duration.seconds(10))))
      yield* adjustClock("10 seconds")
      expect(yield* Fiber.join(waiting)).toBe("did not listen within 10s, and was killed")
      expect(worker.signals).toEqual(["SIGKILL"])
    }))

  it.effect("its end: what it reported, or how it ended; the start fails with it, its exit tells since when it listened", () =>
    Effect.gen(function*() {
      const reported = processOf()
      reported.worker.say({ [tag]: "failed", message: "127.0.0.1:7000 is already in use" })
      reported.worker.say({ [tag]: "failed" })
      reported.worker.exit(1)
      expect(yield* Effect.flip(reported.p.listening(second))).toBe("127.0.0.1:7000 is already in use")
      expect(yield* reported.p.exited).toEqual(
        Process.State.Exited({
          ended: { code: 1, signal: null },
          detail: "127.0.0.1:7000 is already in use",
          since: undefined
        })
      )
      const killed = listening()
      killed.worker.exit(null, "SIGKILL")
      expect(yield* killed.p.exited).toEqual(
        Process.State.Exited({
          ended: { code: null, signal: "SIGKILL" },
          detail: "was killed by SIGKILL",
          since: 1_000
        })
      )
      expect(killed.p.accepting).toBe(false)
      expect(Process.describe({ code: 3, signal: null })).toBe("exited with code 3")
    }))

  it.effect("a control is sent with its own number and answered: a suspend it applied stops it accepting, a resume again", () =>
    Effect.gen(function*() {
      const { changes, p, worker } = listening()
      const suspending = yield* fork(p.control({ action: "suspend" }, second))
      yield* yieldNow
      expect(worker.sent).toEqual([{ [tag]: "control", request: 1, control: { action: "suspend" } }])
      worker.say({ [tag]: "controlled", request: 1 })
      expect(yield* Fiber.join(suspending)).toBeUndefined()
      expect(p.accepting).toBe(false)
      expect(p.state._tag).toBe("Listening")
      const resuming = yield* fork(p.control({ action: "resume" }, second))
      yield* yieldNow
      worker.say({ [tag]: "controlled", request: 2 })
      yield* Fiber.join(resuming)
      expect(p.accepting).toBe(true)
      const limiting = yield* fork(p.control({ action: "setMaxConnections", maxConnections: 1 }, second))
      yield* yieldNow
      worker.say({ [tag]: "controlled", request: 3 })
      yield* Fiber.join(limiting)
      expect(p.accepting).toBe(true)
      expect(changes()).toBe(3)
    }))

  it.effect("a refused control answers why and changes nothing; one not answered in time says so", () =>
    Effect.gen(function*() {
      const { p, worker } = listening()
      const refused = yield* fork(p.control({ action: "suspend" }, second))
      yield* yieldNow
      // A reply to another request, or to none, is not this one's.
      worker.say({ [tag]: "controlled", request: 99, error: "not mine" })
      worker.say({ [tag]: "controlled", error: "no number" })
      worker.say({ [tag]: "controlled", request: worker.request, error: "it cannot" })
      expect(yield* Fiber.join(refused)).toBe("it cannot")
      expect(p.accepting).toBe(true)
      const silent = yield* fork(p.control({ action: "suspend" }, Duration.seconds(2)))
      yield* adjustClock("2 seconds")
      expect(yield* Fiber.join(silent)).toBe("did not answer within 2s")
      // Answered too late: nobody waits, nothing changes.
      worker.say({ [tag]: "controlled", request: worker.request })
      expect(p.accepting).toBe(true)
    }))

  it.effect("a worker not listening, or whose channel closed, is not asked: nothing to apply, nothing to scrape", () =>
    Effect.gen(function*() {
      const starting = processOf()
      expect(yield* starting.p.control({ action: "suspend" }, second)).toBeUndefined()
      expect(yield* starting.p.scrape(second)).toBeUndefined()
      const closed = listening()
      closed.worker.connected = false
      expect(closed.p.reachable).toBe(false)
      expect(yield* closed.p.control({ action: "suspend" }, second)).toBeUndefined()
      expect(yield* closed.p.scrape(second)).toBeUndefined()
      expect([...starting.worker.sent, ...closed.worker.sent]).toEqual([])
    }))

  it.effect("a scrape is answered with its series, or none in time; a worker that dies answers what is waiting", () =>
    Effect.gen(function*() {
      const { p, worker } = listening()
      const series: ReadonlyArray<MetricsWire.Series> = [
        { name: "g", description: undefined, tags: [], kind: "gauge", value: 2 }
      ]
      const scraped = yield* fork(p.scrape(second))
      yield* yieldNow
      expect(worker.sent).toEqual([{ [tag]: "metrics", request: 1 }])
      worker.say({ [tag]: "metrics", request: 1 })
      worker.say({ [tag]: "metrics", request: 1, series })
      expect(yield* Fiber.join(scraped)).toEqual(Option.some(series))
      const late = yield* fork(p.scrape(second))
      yield* adjustClock("1 second")
      expect(yield* Fiber.join(late)).toEqual(Option.none())
      const dying = yield* fork(p.scrape(second))
      const controlled = yield* fork(p.control({ action: "resume" }, second))
      yield* yieldNow
      worker.exit(0)
      expect(yield* Fiber.join(dying)).toEqual(Option.some([]))
      expect(yield* Fiber.join(controlled)).toBeUndefined()
      // Nothing was applied: it stays exited.
      expect(p.state._tag).toBe("Exited")
    }))

  it("told to stop: one listening runs its own shutdown, one starting gets SIGTERM; once, and not once exited", () => {
    const running = listening()
    running.p.stop()
    running.p.stop()
    expect(running.worker.sent).toEqual([{ [tag]: "shutdown" }])
    expect(running.worker.signals).toEqual([])
    expect(running.p.state).toEqual(Process.State.Stopping({ since: 1_000 }))
    running.worker.exit(0)
    expect(running.p.state).toMatchObject({ _tag: "Exited", since: 1_000 })
    running.p.stop()
    running.p.kill()
    expect(running.worker.signals).toEqual([])
    const starting = processOf()
    starting.p.stop()
    expect(starting.worker.signals).toEqual(["SIGTERM"])
    expect(starting.worker.sent).toEqual([])
    expect(starting.p.state._tag).toBe("Stopping")
    starting.p.kill()
    expect(starting.worker.signals).toEqual(["SIGTERM", "SIGKILL"])
    // Listening, but its channel closed: it cannot hear the message.
    const deaf = listening()
    deaf.worker.connected = false
    deaf.p.stop()
    expect(deaf.worker.signals).toEqual(["SIGTERM"])
  })

  it("a worker whose process has no pid (it could not be spawned) is pid -1", () => {
    const worker = new FakeWorker()
    ;(worker.process as { pid: number | undefined }).pid = undefined
    expect(new Process.WorkerProcess(1, worker, () => 0, () => {}).pid).toBe(-1)
  })

  it("a send to a worker that just died is no error: its exit tells the rest", () => {
    const { worker } = listening()
    expect(() => worker.emit("error", new Error("channel closed"))).not.toThrow()
  })
})

describe("requests and their replies (protocol.ts)", () => {
  it.effect("each request waits for its own number; none is left waiting, answered or not", () =>
    Effect.gen(function*() {
      const requests = new Protocol.Requests<string>()
      const numbers: Array<number> = []
      const first = yield* fork(requests.ask((n) => numbers.push(n), second))
      const next = yield* fork(requests.ask((n) => numbers.push(n), second))
      yield* yieldNow
      expect(numbers).toEqual([1, 2])
      expect(requests.pending).toBe(2)
      requests.answer(2, "two")
      requests.answer(3, "nobody's")
      expect(yield* Fiber.join(next)).toEqual(Option.some("two"))
      yield* adjustClock("1 second")
      expect(yield* Fiber.join(first)).toEqual(Option.none())
      expect(requests.pending).toBe(0)
      const gone = yield* fork(requests.ask(() => {}, second))
      yield* yieldNow
      requests.answerAll("gone")
      expect(yield* Fiber.join(gone)).toEqual(Option.some("gone"))
      expect(requests.pending).toBe(0)
    }))

  it("who a worker is, as the primary writes it; anything else is no worker", () => {
    const identity = { id: 2, restarts: 1, port: 7000, sharing: "cluster" } as const
    expect(Protocol.decodeIdentity(Protocol.encodeIdentity(identity))).toEqual(Option.some(identity))
    expect(Protocol.decodeIdentity(Protocol.encodeIdentity({ ...identity, sharing: "reusePort" }))).toEqual(
      Option.some({ ...identity, sharing: "reusePort" })
    )
    for (
      const text of [
        undefined,
        "not json",
        "null",
        JSON.stringify({ ...identity, id: "2" }),
        JSON.stringify({ ...identity, restarts: undefined }),
        JSON.stringify({ ...identity, port: "7000" }),
        JSON.stringify({ ...identity, sharing: "other" })
      ]
    ) expect(Protocol.decodeIdentity(text)).toEqual(Option.none())
    expect(Protocol.isMessage({ [tag]: "shutdown" })).toBe(true)
    expect(Protocol.isMessage({ cmd: "NODE_CLUSTER" })).toBe(false)
    expect(Protocol.isMessage("text")).toBe(false)
  })
})

describe("the table of workers and the port each asks for (pool.ts)", () => {
  it("the port: as asked until one is bound; with reusePort the bound one; pinned, the bound one", () => {
    const bound = { host: "127.0.0.1", port: 7000 }
    expect(Pool.portFor(0, "cluster", undefined, true)).toBe(0)
    expect(Pool.portFor(0, "reusePort", undefined, false)).toBe(0)
    expect(Pool.portFor(0, "cluster", bound, false)).toBe(0)
    expect(Pool.portFor(0, "reusePort", bound, false)).toBe(7000)
    expect(Pool.portFor(0, "cluster", bound, true)).toBe(7000)
  })

  const poolOf = (sharing: Protocol.Sharing = "cluster", workers = 2) => {
    const forked: Array<{ env: Readonly<Record<string, string>>; worker: FakeWorker }> = []
    const pool = new Pool.Pool({
      workers,
      port: 0,
      sharing,
      env: { MODE: "serve" },
      now: () => 0,
      fork: (env) => {
        const worker = new FakeWorker()
        forked.push({ env, worker })
        return worker
      }
    })
    const identity = (i: number) => Option.getOrThrow(Protocol.decodeIdentity(forked[i]!.env[Protocol.variable]))
    return { forked, identity, pool }
  }

  it.effect("a worker is forked with the user's variables and who it is; its restart keeps its number and counts", () =>
    Effect.gen(function*() {
      const { forked, identity, pool } = poolOf()
      const one = (yield* pool.fork(1))!
      yield* pool.fork(2)
      expect(forked[0]!.env["MODE"]).toBe("serve")
      expect(identity(0)).toEqual({ id: 1, restarts: 0, port: 0, sharing: "cluster" })
      expect(identity(1)).toEqual({ id: 2, restarts: 0, port: 0, sharing: "cluster" })
      expect(pool.processes.map((p) => p.id)).toEqual([1, 2])
      forked[0]!.worker.exit(1)
      expect(one.state._tag).toBe("Exited")
      yield* pool.fork(1)
      expect(identity(2)).toMatchObject({ id: 1, restarts: 1 })
      expect([pool.restarts(1), pool.restarts(2)]).toEqual([1, 0])
      expect(pool.processes).toHaveLength(2)
    }))

  it.effect("ready while one accepts and the shutdown has not begun; after it, nothing is forked", () =>
    Effect.gen(function*() {
      const { forked, pool } = poolOf()
      yield* pool.fork(1)
      yield* pool.fork(2)
      expect(pool.ready).toBe(false)
      forked[1]!.worker.say({ [tag]: "listening", address })
      expect(pool.ready).toBe(true)
      expect(pool.listening.map((p) => p.id)).toEqual([2])
      pool.stop()
      expect(pool.stopping).toBe(true)
      expect(pool.ready).toBe(false)
      expect(yield* pool.fork(1)).toBeUndefined()
      expect(forked).toHaveLength(2)
    }))

  it.effect("with the primary's socket, a newcomer asks for what the others asked, or the bound port once none holds it", () =>
    Effect.gen(function*() {
      const { forked, identity, pool } = poolOf("cluster", 3)
      yield* pool.fork(1)
      forked[0]!.worker.say({ [tag]: "listening", address })
      pool.bind(address)
      yield* pool.fork(2)
      expect(identity(1).port).toBe(0)
      // One holds the socket, one is still starting: the socket is held.
      yield* pool.fork(3)
      expect(identity(2).port).toBe(0)
      // Worker 1 stops accepting (suspended): none holds the primary's socket.
      const suspending = yield* fork(pool.processes[0]!.control({ action: "suspend" }, second))
      yield* yieldNow
      forked[0]!.worker.say({ [tag]: "controlled", request: 1 })
      yield* Fiber.join(suspending)
      forked[1]!.worker.exit(1)
      yield* pool.fork(2)
      expect(identity(3).port).toBe(7000)
    }))

  it.effect("pinned once suspended (after the port is bound), for good; with reusePort, always the bound port", () =>
    Effect.gen(function*() {
      const early = poolOf()
      early.pool.pin()
      yield* early.pool.fork(1)
      expect(early.identity(0).port).toBe(0)
      const { forked, identity, pool } = poolOf()
      yield* pool.fork(1)
      forked[0]!.worker.say({ [tag]: "listening", address })
      pool.bind(address)
      pool.pin()
      yield* pool.fork(2)
      expect(identity(1).port).toBe(7000)
      const reuse = poolOf("reusePort")
      yield* reuse.pool.fork(1)
      reuse.forked[0]!.worker.say({ [tag]: "listening", address })
      reuse.pool.bind(address)
      yield* reuse.pool.fork(2)
      expect(reuse.identity(1)).toMatchObject({ port: 7000, sharing: "reusePort" })
    }))

  it("every worker's restarts counter is there from the start, at 0: a scraper sees none missing", () => {
    // A number of workers no other test uses: the registry is the process's.
    new Pool.Pool({
      workers: 7,
      port: 0,
      sharing: "cluster",
      env: undefined,
      now: () => 0,
      fork: () => new FakeWorker()
    })
    const restarts = MetricsWire.snapshot().filter((series) => series.name === "echo_worker_restarts_total")
    const workers = restarts.flatMap((series) =>
      series.tags.filter(([key]) => key === "worker").map(([, value]) => value)
    )
    expect(workers).toEqual(expect.arrayContaining(["1", "2", "3", "4", "5", "6", "7"]))
    const seventh = restarts.find((series) => series.tags.some(([key, value]) => key === "worker" && value === "7"))
    expect(seventh).toMatchObject({ kind: "counter", value: 0 })
  })

  it.effect("the workers left are sent SIGTERM (their second signal) when the primary's process exits, while the scope lasts", () =>
    Effect.gen(function*() {
      const { forked, pool } = poolOf()
      yield* pool.fork(1)
      yield* pool.fork(2)
      forked[1]!.worker.exit(0)
      const before = process.listenerCount("exit")
      yield* Effect.scoped(Effect.gen(function*() {
        yield* pool.orphanOnExit()
        expect(process.listenerCount("exit")).toBe(before + 1)
        process.listeners("exit").at(-1)!(0)
      }))
      expect(process.listenerCount("exit")).toBe(before)
      expect(forked.map((f) => f.worker.signals)).toEqual([["SIGTERM"], []])
    }))
})

describe("the exposition of several workers (exposition.ts)", () => {
  const series = (active: number, accepted: number): ReadonlyArray<MetricsWire.Series> => [
    { name: "echo_connections_active", description: "a", tags: [], kind: "gauge", value: active },
    {
      name: "echo_connections_accepted_total",
      description: "b",
      tags: [],
      kind: "counter",
      incremental: true,
      value: accepted
    }
  ]

  it("what cannot be summed (a summary) stays per process, the primary's named so", () => {
    const summary: MetricsWire.Series = {
      name: "s",
      description: "s",
      tags: [],
      kind: "summary",
      error: 0.01,
      quantiles: [[0.5, 1]],
      count: 1,
      min: 1,
      max: 1,
      sum: 1
    }
    const text = Exposition.format([summary], [{ id: 2, series: [summary] }])
    expect(text).toMatch(/^s\{worker="primary",quantile="0\.5"\} 1$/m)
    expect(text).toMatch(/^s\{worker="2",quantile="0\.5"\} 1$/m)
  })

  it("every series summed with the primary's, then each worker's connections active and accepted", () => {
    const text = Exposition.format(series(0, 1), [{ id: 1, series: series(2, 5) }, { id: 3, series: series(1, 7) }])
    expect(text).toMatch(/^echo_connections_active 3$/m)
    expect(text).toMatch(/^echo_connections_accepted_total 13$/m)
    expect(text).toMatch(/^echo_worker_connections_active\{worker="1"\} 2$/m)
    expect(text).toMatch(/^echo_worker_connections_active\{worker="3"\} 1$/m)
    expect(text).toMatch(/^echo_worker_connections_accepted_total\{worker="1"\} 5$/m)
    expect(text).toMatch(/^echo_worker_connections_accepted_total\{worker="3"\} 7$/m)
    expect(text).toMatch(/^# HELP echo_worker_connections_active Connections being served now, by worker$/m)
    expect(text).toMatch(/^# TYPE echo_worker_connections_accepted_total counter$/m)
    expect(text).toMatch(
      /^# HELP echo_worker_connections_accepted_total Connections accepted from the kernel, by worker$/m
    )
    expect(text).not.toMatch(/worker="2"/)
  })

  it.effect("a worker that does not answer in time is left out and counted; one that cannot be asked, only left out", () =>
    Effect.gen(function*() {
      const answering = listening(1)
      const silent = listening(2)
      const starting = processOf(undefined, 3)
      const alsoSilent = listening(4)
      const logged: Array<string> = []
      const gathered = yield* fork(
        Exposition.gather([answering.p, silent.p, starting.p, alsoSilent.p], second).pipe(
          withLogger(Logger.make(({ message }) => logged.push(String(message))), true)
        )
      )
      for (let i = 0; i < 100 && answering.worker.sent.length === 0; i++) yield* yieldNow
      answering.worker.say({ [tag]: "metrics", request: answering.worker.request, series: series(4, 4) })
      // All asked at once: one timeout's wait for all of them.
      yield* adjustClock("1 second")
      for (let i = 0; i < 100 && poll(gathered) === undefined; i++) yield* yieldNow
      expect(poll(gathered)).not.toBeUndefined()
      const text = yield* Fiber.join(gathered)
      expect(text).toMatch(/^echo_worker_connections_active\{worker="1"\} 4$/m)
      expect(text.match(/^echo_worker_connections_active\{/gm)).toHaveLength(1)
      expect(text).toMatch(/^echo_worker_scrapes_missed_total\{worker="2"\} 1$/m)
      expect(text).not.toMatch(/^echo_worker_scrapes_missed_total\{worker="(1|3)"\}/m)
      expect(starting.worker.sent).toEqual([])
      expect(logged.sort()).toEqual([
        "metrics: worker 2 (pid 4242) did not answer within 1s: left out of this scrape",
        "metrics: worker 4 (pid 4242) did not answer within 1s: left out of this scrape"
      ])
    }))
})

describe("who accepts the connections (scheduling.ts)", () => {
  /** node:cluster as the test sets it (the variable, forked yet, its policy), restored after the test. */
  const given = (variable: string | undefined, forked: boolean, policy: number) => {
    const before = [cluster.schedulingPolicy, cluster.settings, process.env.NODE_CLUSTER_SCHED_POLICY] as const
    const set = (...[policy, settings, variable]: typeof before) => {
      cluster.schedulingPolicy = policy
      ;(cluster as { settings: object }).settings = settings
      if (variable === undefined) delete process.env.NODE_CLUSTER_SCHED_POLICY
      else process.env.NODE_CLUSTER_SCHED_POLICY = variable
    }
    onTestFinished(() => set(...before))
    set(policy, forked ? { exec: "worker.js" } : {}, variable)
  }
  const why = "with round robin the primary holds each connection until a worker takes it, and one on its way to " +
    "a worker that dies is never served nor closed"

  it("before the first fork, round robin is replaced by each worker accepting itself", () => {
    given(undefined, false, cluster.SCHED_RR)
    expect(Scheduling.acceptInWorkers()).toEqual(Checked.valid(undefined))
    expect(cluster.schedulingPolicy).toBe(cluster.SCHED_NONE)
  })

  it("none, set before, is kept, even once forked or with the variable saying otherwise", () => {
    given("rr", true, cluster.SCHED_NONE)
    expect(Scheduling.acceptInWorkers()).toEqual(Checked.valid(undefined))
  })

  it("round robin asked for in the environment is refused, naming the variable", () => {
    given("rr", false, cluster.SCHED_RR)
    expect(Scheduling.acceptInWorkers()).toEqual(
      Checked.invalid({ option: "NODE_CLUSTER_SCHED_POLICY", value: "rr", expected: `none, or unset: ${why}` })
    )
    expect(cluster.schedulingPolicy).toBe(cluster.SCHED_RR)
  })

  it("round robin fixed by an earlier fork is refused; another value of the variable changes nothing", () => {
    given("something", true, cluster.SCHED_RR)
    expect(Scheduling.acceptInWorkers()).toEqual(Checked.invalid({
      option: "cluster.schedulingPolicy",
      value: "SCHED_RR",
      expected: `SCHED_NONE, set before this process forks its first worker: ${why}`
    }))
    expect(cluster.schedulingPolicy).toBe(cluster.SCHED_RR)
  })
})
