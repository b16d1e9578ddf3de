/**
 * The primary's table of worker processes, one slot per worker number (a restart takes its
 * number's slot), and the port each new one asks for. Forking stops for good once the shutdown
 * begins; if the primary's process exits with workers left (a second signal, a crash), they are
 * killed with it.
 */
import * as LineMetrics from "#line/metrics"
import { Effect, Metric } from "effect"
import type { Scope } from "effect"
import type * as Listener from "../../Listener.js"
import { type Channel, WorkerProcess } from "./process.js"
import * as Protocol from "./protocol.js"

/** Restarts per worker, with a `worker` label. */
const restartsMetric = LineMetrics.counter("echo_worker_restarts_total", {
  description: "Workers restarted after they died, by worker",
  incremental: true
})

const listeningGauge = LineMetrics.gauge("echo_workers_listening", {
  description: "Workers listening now"
})

/**
 * The port a new worker asks for. With `reusePort`, the bound one. With the primary's socket,
 * workers asking for the same address share it, and it lives while one of them holds it: a
 * newcomer asks for what the others asked for (port 0 included), unless it is `pinned` to the
 * bound port (once none held the socket, or once they were suspended: resumed, each worker
 * listens on the port it was bound to).
 *
 * @internal
 */
export const portFor = (
  requested: number,
  sharing: Protocol.Sharing,
  bound: Listener.Address | undefined,
  pinned: boolean
): number => bound === undefined ? requested : sharing === "reusePort" || pinned ? bound.port : requested

/** @internal */
export interface Options {
  readonly workers: number
  /** The port asked for (0: any free one, the same for all). */
  readonly port: number
  readonly sharing: Protocol.Sharing
  /** Forks a worker process with these variables added to the primary's: `cluster.fork`. */
  readonly fork: (env: Readonly<Record<string, string>>) => Channel
  readonly env: Readonly<Record<string, string>> | undefined
  /** The Effect clock, read by each process when it starts listening. */
  readonly now: () => number
}

/** @internal */
export class Pool {
  readonly #slots: Array<WorkerProcess | undefined>
  readonly #restarts: Array<number>
  #stopping = false
  #bound: Listener.Address | undefined
  #pinned = false

  constructor(private readonly options: Options) {
    this.#slots = Array.from({ length: options.workers }, () => undefined)
    this.#restarts = this.#slots.map(() => 0)
    // Every worker's series from the start, at 0: a scraper sees none missing.
    for (let id = 1; id <= options.workers; id++) {
      LineMetrics.register(LineMetrics.tagged(restartsMetric, "worker", String(id)))
    }
  }

  /** The processes now, one per worker number (any state, the exited ones too). */
  get processes(): ReadonlyArray<WorkerProcess> {
    return this.#slots.filter((p): p is WorkerProcess => p !== undefined)
  }

  /** Those listening now. */
  get listening(): ReadonlyArray<WorkerProcess> {
    return this.processes.filter((p) => p.state._tag === "Listening")
  }

  /** Whether any worker accepts: one holds the port, and the shutdown has not begun. */
  get ready(): boolean {
    return !this.#stopping && this.processes.some((p) => p.accepting)
  }

  get stopping(): boolean {
    return this.#stopping
  }

  /** How often worker `id` was restarted. */
  restarts(id: number): number {
    return this.#restarts[id - 1]!
  }

  /** The address the first worker bound: every later one serves it. */
  bind(address: Listener.Address): void {
    this.#bound = address
  }

  /** From now on a newcomer asks for the bound port (the workers are suspended). */
  pin(): void {
    if (this.#bound !== undefined) this.#pinned = true
  }

  /** Forks worker `id`, a restart if it ran before; undefined once the shutdown has begun. */
  fork(id: number): Effect.Effect<WorkerProcess | undefined> {
    return Effect.suspend(() => {
      if (this.#stopping) return Effect.succeed(undefined)
      const restart = this.#slots[id - 1] !== undefined
      if (restart) this.#restarts[id - 1]! += 1
      // None holds the primary's socket: it closed with the last, and port 0 would be another.
      if (!this.processes.some((p) => p.accepting)) this.pin()
      const { env, fork, now, port, sharing } = this.options
      const channel = fork({
        ...env,
        [Protocol.variable]: Protocol.encodeIdentity({
          id,
          restarts: this.restarts(id),
          port: portFor(port, sharing, this.#bound, this.#pinned),
          sharing
        })
      })
      const p = new WorkerProcess(id, channel, now, () => this.#changed())
      this.#slots[id - 1] = p
      return Effect.as(
        restart ? Metric.update(LineMetrics.tagged(restartsMetric, "worker", String(id)), 1) : Effect.void,
        p
      )
    })
  }

  /** No more forks, for good: the shutdown began. */
  stop(): void {
    this.#stopping = true
  }

  /** Asks every worker left to go (SIGTERM): the primary's process exits. */
  orphanAll(): void {
    for (const p of this.processes) p.orphan()
  }

  /** Asks the workers left to go when this process exits, for as long as the scope lasts. */
  orphanOnExit(): Effect.Effect<void, never, Scope.Scope> {
    const orphans = () => this.orphanAll()
    return Effect.acquireRelease(
      Effect.sync(() => process.on("exit", orphans)),
      () => Effect.sync(() => process.off("exit", orphans))
    )
  }

  #changed(): void {
    LineMetrics.updateUnsafe(listeningGauge, this.listening.length, LineMetrics.unlabelled)
  }
}
