/**
 * Several processes on one port. In the primary, {@link make} runs N workers with `node:cluster`,
 * restarts one that dies after a backoff (a `Schedule`), gives up on a crash loop, shuts them all
 * down under one deadline and gathers their metrics into one exposition. In each worker,
 * {@link serve} (or {@link workerOptions} and {@link attach}) links its server to the primary.
 *
 * A worker is a script, not a function: `node:cluster` forks a process that runs a file, and a
 * handler (a closure) cannot cross into it. So the worker script makes its own server, with the
 * port and the way of sharing it that the primary hands it.
 *
 * @since 0.1.0
 */
import * as Layers from "#line/layer"
import * as Schedules from "#line/schedule"
import { type DurationInput, Service } from "#line/types"
import { Data, Deferred, Duration, Effect, FiberSet, Option, Predicate, Schedule } from "effect"
import type { Layer, Scope } from "effect"
import cluster from "node:cluster"
import * as Checked from "./internal/checked.js"
import * as Options_ from "./internal/options.js"
import * as Controls from "./internal/workers/controls.js"
import * as CrashWindow from "./internal/workers/crashWindow.js"
import * as Exposition from "./internal/workers/exposition.js"
import { Pool } from "./internal/workers/pool.js"
import type { WorkerProcess } from "./internal/workers/process.js"
import * as Protocol from "./internal/workers/protocol.js"
import * as Scheduling from "./internal/workers/scheduling.js"
import * as Worker from "./internal/workers/worker.js"
import * as Listener from "./Listener.js"
import * as Server from "./Server.js"

/**
 * How the workers share the port. `cluster`: the primary holds the listening socket and each
 * worker accepts from it itself (`node:cluster`'s `SCHED_NONE`: the primary never holds a
 * connection). `reusePort`: each worker listens on the port itself with `SO_REUSEPORT`, and the
 * kernel spreads connections (Node 22.12 and later).
 *
 * @since 0.1.0
 * @category models
 */
export type Sharing = "cluster" | "reusePort"

/**
 * How to run the workers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How many worker processes. */
  readonly workers: number
  /** The script each worker runs. Default: the primary's own (`process.argv[1]`). */
  readonly exec?: string
  /** Its arguments. Default: the primary's (`process.argv.slice(2)`). */
  readonly args?: ReadonlyArray<string>
  /** Node's flags for it. Default: the primary's (`process.execArgv`). */
  readonly execArgv?: ReadonlyArray<string>
  /** Added to the primary's environment for each worker. */
  readonly env?: Readonly<Record<string, string>>
  /** The port the workers serve, handed to each; 0: any free one, the same for all. Default 0. */
  readonly port?: number
  /** Default `auto`: `reusePort` where Node has it, else `cluster`. */
  readonly sharing?: "auto" | Sharing
  /** The wait before each restart of a worker that died. Default {@link defaults}.restart. */
  readonly restart?: Schedule.Schedule<unknown, unknown>
  /**
   * A crash loop: more than `restarts` restarts, of any worker, within `within`. Then the primary
   * gives up ({@link Workers.failed}). Default 5 within 1 minute.
   */
  readonly crashLoop?: { readonly restarts?: number; readonly within?: DurationInput }
  /** How long a worker may take to listen; past it, it is killed and counts as died. Default 10 s. */
  readonly startTimeout?: DurationInput
  /**
   * The one deadline of the shutdown: how long every worker has to drain and exit once told to.
   * Past it, those left are killed (SIGKILL). Give it more than the workers' own drain delay,
   * shutdown timeout and cleanup timeout together. Default 10 s.
   */
  readonly shutdownTimeout?: DurationInput
  /** How long a worker has to send its metrics for a scrape; past it, it is left out (logged, counted). Default 1 s. */
  readonly scrapeTimeout?: DurationInput
}

/**
 * The defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  /** 50 ms, doubling, at most 5 s: a worker that dies at once does not spin the machine. */
  restart: Schedules.union(Schedule.exponential("50 millis"), Schedule.spaced("5 seconds")),
  crashLoop: { restarts: 5, within: Duration.minutes(1) },
  startTimeout: Duration.seconds(10),
  shutdownTimeout: Duration.seconds(10),
  scrapeTimeout: Duration.seconds(1)
} as const

/**
 * An option is invalid: its name, the value given, and what a valid one looks like. Checked
 * before any process starts (and a limit to `setMaxConnections`, before any worker is told).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptionError extends Data.TaggedError("WorkersError")<{
  readonly option: string
  readonly value: unknown
  readonly expected: string
}> {
  readonly reason = "InvalidOption" as const
  override get message(): string {
    return `invalid ${this.option}: ${Options_.showValue(this.value)} (expected ${this.expected})`
  }
}

/**
 * A worker of the first start could not listen: what it reported (its server's own error), how
 * it ended, or that it did not listen in time. The workers started are shut down.
 *
 * @since 0.1.0
 * @category errors
 */
export class StartFailedError extends Data.TaggedError("WorkersError")<{
  /** The worker (1 to N). */
  readonly worker: number
  readonly detail: string
}> {
  readonly reason = "StartFailed" as const
  override get message(): string {
    return `worker ${this.worker} could not start: ${this.detail}`
  }
}

/**
 * The workers died too often: more than `crashLoop.restarts` times within `crashLoop.within`
 * (`limit: "restarts"`), or the restart schedule ended (`limit: "schedule"`). The primary gives up.
 *
 * @since 0.1.0
 * @category errors
 */
export class CrashLoopError extends Data.TaggedError("WorkersError")<{
  /** The last worker to die (1 to N), its pid, and how it ended (`exited with code 1`, `was killed by SIGKILL`, or what it reported). */
  readonly worker: number
  readonly pid: number
  readonly death: string
  /** The deaths counted within the window, this one included. */
  readonly deaths: number
  readonly within: Duration.Duration
  readonly limit: "restarts" | "schedule"
}> {
  readonly reason = "CrashLoop" as const
  override get message(): string {
    const last = this.limit === "restarts"
      ? `worker ${this.worker}, pid ${this.pid}, ${this.death}`
      : `worker ${this.worker}, ${this.death}, and the restart schedule ended`
    return `workers died ${this.deaths} times within ${Duration.format(this.within)}: giving up (a crash loop); ` +
      `the last, ${last}`
  }
}

/**
 * A worker's server refused a control (its own error, such as a resume on a port taken
 * meanwhile), or did not answer within `scrapeTimeout`: the first such worker, by number.
 *
 * @since 0.1.0
 * @category errors
 */
export class ControlFailedError extends Data.TaggedError("WorkersError")<{
  readonly worker: number
  readonly control: "suspend" | "resume" | "setMaxConnections"
  /** Why not, in the worker's words (`127.0.0.1:7000 is already in use`, `did not answer within 1s`). */
  readonly detail: string
}> {
  readonly reason = "ControlFailed" as const
  override get message(): string {
    return `worker ${this.worker} could not ${
      this.control === "setMaxConnections" ? "set maxConnections" : this.control
    }: ${this.detail}`
  }
}

/**
 * Why the workers could not be run, or a control failed; `reason` tells which, and each carries
 * its own evidence. All are tagged `WorkersError` (`Effect.catchTag("WorkersError", ...)`).
 *
 * @since 0.1.0
 * @category errors
 */
export type WorkersError = InvalidOptionError | StartFailedError | CrashLoopError | ControlFailedError

/**
 * Whether `u` is a {@link WorkersError}.
 *
 * @since 0.1.0
 * @category errors
 */
export const isWorkersError = (u: unknown): u is WorkersError => Predicate.isTagged(u, "WorkersError")

/**
 * A worker as the primary sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerInfo {
  /** 1 to N; a restarted worker keeps its number. */
  readonly id: number
  readonly pid: number
  readonly state: "starting" | "listening" | "stopping"
  /** How often this worker was restarted. */
  readonly restarts: number
}

/**
 * How the shutdown ended: each worker's exit, and those killed at the deadline. `clean` when
 * every worker exited with status 0 in time.
 *
 * @since 0.1.0
 * @category models
 */
export interface Shutdown {
  readonly exits: ReadonlyArray<{
    readonly id: number
    readonly pid: number
    readonly code: number | null
    readonly signal: string | null
  }>
  readonly killed: ReadonlyArray<number>
  readonly clean: boolean
}

/**
 * Running workers. Released with the scope that made them: the graceful {@link Workers.shutdown}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Workers {
  /** The address every worker serves. */
  readonly address: Listener.Address
  readonly sharing: Sharing
  /** True while at least one worker listens and the shutdown has not begun. */
  readonly ready: Effect.Effect<boolean>
  readonly workers: Effect.Effect<ReadonlyArray<WorkerInfo>>
  /**
   * The metrics of the whole service in the Prometheus text format: every worker's metrics
   * summed (and the primary's own), then per worker (`worker` label) the connections served
   * now and accepted, and the restarts.
   */
  readonly exposition: Effect.Effect<string>
  /** Waits; fails when the primary gives up (a crash loop). */
  readonly failed: Effect.Effect<never, WorkersError>
  /**
   * Tells every worker to shut down (its own graceful shutdown: drain delay, drain notice,
   * deadline) and waits for all of them, at most `shutdownTimeout`, then kills those left.
   * Idempotent: a second call waits for the first.
   */
  readonly shutdown: Effect.Effect<Shutdown>
  /**
   * Stops accepting in every worker (each one's `Server.suspend`): the port refuses new
   * connections once all have closed it, and `ready` is false; connections already served go on.
   * A worker that dies meanwhile is restarted once they resume; one still starting is suspended
   * as soon as it listens. Controls are applied one at a time, in the order asked. Returns once
   * every worker listening has answered (or died: its restart is told what is in force), at most
   * `scrapeTimeout` each; fails with `ControlFailed` naming a worker that refused or did not
   * answer. Idempotent.
   */
  readonly suspend: Effect.Effect<void, WorkersError>
  /**
   * Accepts again in every worker, on the same port (each one's `Server.resume`), as `suspend`
   * does, then restarts the workers that died meanwhile. After a refusal the workers that did
   * resume accept (and `ready` says so), the others not; restarts wait for a resume that succeeds.
   */
  readonly resume: Effect.Effect<void, WorkersError>
  /**
   * Sets every worker's `maxConnections` (each one's `Server.setMaxConnections`: the limit is per
   * worker, as the option is), and, once every worker took it, for workers restarted later. Fails
   * with `InvalidOption` for a value below 1, and as `suspend` does (a worker's server refuses
   * what its own `setMaxConnections` would, such as a sum with `maxPending` past 2^31 - 2).
   */
  readonly setMaxConnections: (maxConnections: number) => Effect.Effect<void, WorkersError>
}

/**
 * How `node:cluster` is set to hand out connections when workers share the primary's socket:
 * `roundRobin` (Node's default but on Windows: the primary accepts each connection and passes it
 * to a worker over IPC) or `none` (each worker accepts from the shared socket itself). Node reads
 * it from `NODE_CLUSTER_SCHED_POLICY` (`rr`, `none`) when it loads the cluster module; it cannot
 * change once the first worker is forked. {@link make} sets `none` before its first fork with
 * `sharing: "cluster"`, and refuses round robin (`InvalidOption`).
 *
 * @since 0.1.0
 * @category models
 */
export const clusterScheduling = (): "roundRobin" | "none" =>
  cluster.schedulingPolicy === cluster.SCHED_NONE ? "none" : "roundRobin"

// --- The worker's side.

/**
 * What the primary told this worker, or `None` in any other process.
 *
 * @since 0.1.0
 * @category worker
 */
export const current: Option.Option<{
  /** 1 to N: a restarted worker keeps its number. */
  readonly id: number
  /** How often this worker was restarted before: 0 for the first start. */
  readonly restarts: number
  readonly port: number
  readonly sharing: Sharing
}> = cluster.isWorker ? Protocol.decodeIdentity(process.env[Protocol.variable]) : Option.none()

/**
 * Whether this process is a worker run by {@link make}.
 *
 * @since 0.1.0
 * @category worker
 */
export const isWorker: boolean = Option.isSome(current)

/**
 * `options` with what the primary decided: its port, and how to share it (the primary's socket,
 * or `reusePort`). Unchanged outside a worker.
 *
 * @since 0.1.0
 * @category worker
 */
export const workerOptions = <O extends Listener.Options>(options: O): O =>
  Option.match(current, {
    onNone: () => options,
    onSome: ({ port, sharing }) =>
      sharing === "cluster"
        ? { ...options, port, exclusive: false, reusePort: false }
        : { ...options, port, exclusive: true, reusePort: true }
  })

/**
 * In a worker: tells the primary that `server` listens, answers its scrapes and applies its
 * controls (`suspend`, `resume`, `setMaxConnections`, when `server` has them) for as long as the
 * scope lasts, and returns an effect that waits for the primary to ask for the shutdown (or for
 * the primary to be gone). Outside a worker the effect returned never completes.
 *
 * @since 0.1.0
 * @category worker
 */
export const attach = (
  server:
    & Pick<Server.Server, "address">
    & Partial<Pick<Server.Server, "suspend" | "resume" | "setMaxConnections">>
): Effect.Effect<Effect.Effect<void>, never, Scope.Scope> =>
  isWorker ? Worker.attach(server) : Effect.succeed(Effect.never)

/**
 * In a worker: tells the primary why it could not start, before it exits.
 *
 * @since 0.1.0
 * @category worker
 */
export const reportFailure = (message: string): Effect.Effect<void> =>
  isWorker ? Worker.send({ [Protocol.tag]: "failed", message }) : Effect.void

/**
 * In a worker, once its work is done: lets go of its channel to the primary, which `node:cluster`
 * keeps open (and the process alive with it); the process then exits once nothing else runs.
 * Nothing outside a worker.
 *
 * @since 0.1.0
 * @category worker
 */
export const detach: Effect.Effect<void> = Effect.sync(() => {
  const worker = cluster.worker
  if (isWorker && worker !== undefined && worker.isConnected()) worker.disconnect()
})

/**
 * A worker script's whole life: serves `handler` with `options` (as {@link workerOptions} sets
 * them), attached to the primary, until the primary asks for the shutdown, which is the server's
 * graceful one. A failure to start is reported to the primary, then returned.
 *
 * ```ts
 * // worker.ts, run by Workers.make({ workers: 4, exec: "worker.js" })
 * Workers.serve({ port: 7000 }, handler).pipe(NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 * @category worker
 */
export const serve = <E = never, R = never>(
  options: Server.Options = {},
  handler?: Server.Handler<E, R>
): Effect.Effect<void, Server.ServerError | Listener.ListenError, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* Server.make(workerOptions(options), handler as Server.Handler<E, R>).pipe(
      Effect.tapError((error) => reportFailure(error.message))
    )
    yield* Effect.flatten(attach(server))
  })).pipe(Effect.ensuring(detach))

// --- The primary's side.

interface Valid {
  readonly workers: number
  readonly port: number
  readonly sharing: Sharing
  readonly restart: Schedule.Schedule<unknown, unknown>
  readonly restarts: number
  readonly within: Duration.Duration
  readonly startTimeout: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly scrapeTimeout: Duration.Duration
}

const validate = (options: Options): Checked.Checked<Valid, InvalidOptionError> =>
  Checked.mapError(
    Checked.gen(function*() {
      const workers = yield* Checked.value(Options_.integer("workers", options.workers, 1, 1024))
      const port = yield* Checked.value(Options_.integer("port", options.port ?? 0, 0, 65535))
      const asked = options.sharing ?? "auto"
      if (asked !== "auto" && asked !== "cluster" && asked !== "reusePort") {
        return Checked.invalid({
          option: "sharing",
          value: asked,
          expected: "auto, cluster or reusePort"
        })
      }
      if (asked === "reusePort" && !Listener.reusePortSupported) {
        return Checked.invalid({
          option: "sharing",
          value: asked,
          expected: `auto or cluster on Node ${process.versions.node} (reusePort needs Node 22.12 or later)`
        })
      }
      const restarts = yield* Checked.value(Options_.integer(
        "crashLoop.restarts",
        options.crashLoop?.restarts ?? defaults.crashLoop.restarts,
        0
      ))
      const within = options.crashLoop?.within === undefined
        ? defaults.crashLoop.within
        : yield* Checked.value(Options_.duration("crashLoop.within", options.crashLoop.within, "positive"))
      // A generator: a duration's value, or the end of the checks.
      const duration = (option: string, value: DurationInput | undefined, fallback: Duration.Duration) =>
        Checked.value(value === undefined ? Checked.valid(fallback) : Options_.duration(option, value, "positive"))
      return Checked.valid<Valid>({
        workers,
        port,
        sharing: asked === "auto" ? (Listener.reusePortSupported ? "reusePort" : "cluster") : asked,
        restart: options.restart ?? defaults.restart,
        restarts,
        within,
        startTimeout: yield* duration("startTimeout", options.startTimeout, defaults.startTimeout),
        shutdownTimeout: yield* duration("shutdownTimeout", options.shutdownTimeout, defaults.shutdownTimeout),
        scrapeTimeout: yield* duration("scrapeTimeout", options.scrapeTimeout, defaults.scrapeTimeout)
      })
    }),
    (invalid) => new InvalidOptionError(invalid)
  )

/**
 * Runs `workers` processes of a script, each serving the same port, in the current scope; returns
 * once every one listens. The scope's release is the graceful {@link Workers.shutdown}. Fails
 * with a `WorkersError` when an option is invalid or a worker of this first start cannot listen
 * (the others are then shut down). Later, a worker that dies is restarted after the `restart`
 * schedule's wait, logged and counted; past the crash loop's limit the primary gives up
 * ({@link Workers.failed}). One primary per process: `node:cluster`'s settings are global. With
 * the primary's socket (`sharing: "cluster"`) it sets `cluster.schedulingPolicy` to `SCHED_NONE`
 * before its first fork, so that the primary never holds a connection, and refuses round robin
 * (`NODE_CLUSTER_SCHED_POLICY=rr`, or a process that forked with it) with `InvalidOption`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Workers, WorkersError, Scope.Scope> =>
  Effect.gen(function*() {
    const valid = yield* Checked.toEffect(validate(options))
    // Before the first fork, which fixes node:cluster's scheduling for the whole process.
    if (valid.sharing === "cluster") {
      yield* Checked.toEffect(Checked.mapError(Scheduling.acceptInWorkers(), (i) => new InvalidOptionError(i)))
    }
    cluster.setupPrimary({
      exec: options.exec ?? process.argv[1]!,
      args: [...(options.args ?? process.argv.slice(2))],
      execArgv: [...(options.execArgv ?? process.execArgv)],
      // Structured clone: numbers as they are (Infinity and NaN too, which JSON loses), bigints.
      serialization: "advanced"
    })
    const now = yield* Schedules.clockMillis
    const pool = new Pool({
      workers: valid.workers,
      port: valid.port,
      sharing: valid.sharing,
      fork: (env) => cluster.fork(env),
      env: options.env,
      now
    })
    // If this process exits with workers left (a second signal, a crash), they go with it.
    yield* pool.orphanOnExit()
    const controls = yield* Controls.make(() => pool.listening.map((p) => target(p, valid)), () => pool.pin())
    const crashWindow = yield* CrashWindow.make(valid)
    const giveUp = yield* Deferred.make<never, CrashLoopError>()
    const supervisors = yield* FiberSet.make<void>()
    const shutdown = yield* shutdownOnce(pool, supervisors, valid.shutdownTimeout)
    yield* Effect.addFinalizer(() => shutdown)

    const [address, started] = yield* startAll(pool, valid)
    const supervising: Supervising = { pool, valid, controls, crashWindow, giveUp }
    for (const p of started) yield* FiberSet.run(supervisors, supervise(supervising, p))

    const control = (asked: Protocol.Control) =>
      Effect.mapError(
        controls.apply(asked),
        (refusal) =>
          new ControlFailedError({ worker: refusal.worker, control: refusal.control.action, detail: refusal.detail })
      )
    return {
      address,
      sharing: valid.sharing,
      ready: Effect.sync(() => pool.ready),
      workers: Effect.sync(() =>
        pool.processes.flatMap((p): Array<WorkerInfo> =>
          p.state._tag === "Exited"
            ? []
            : [{ id: p.id, pid: p.pid, state: stateNames[p.state._tag], restarts: pool.restarts(p.id) }]
        )
      ),
      exposition: Effect.suspend(() => Exposition.gather(pool.processes, valid.scrapeTimeout)),
      failed: Deferred.await(giveUp),
      shutdown,
      suspend: control({ action: "suspend" }),
      resume: control({ action: "resume" }),
      setMaxConnections: (n) =>
        Effect.flatMap(
          Effect.mapError(
            Checked.toEffect(Options_.integer("maxConnections", n, 1)),
            (invalid) => new InvalidOptionError(invalid)
          ),
          (maxConnections) => control({ action: "setMaxConnections", maxConnections })
        )
    } satisfies Workers
  })

const stateNames = { Starting: "starting", Listening: "listening", Stopping: "stopping" } as const

/** A worker as the controls see it: each control bounded by `scrapeTimeout`. */
const target = (p: WorkerProcess, valid: Valid): Controls.Target => ({
  id: p.id,
  pid: p.pid,
  apply: (control) => p.control(control, valid.scrapeTimeout)
})

/**
 * The first start: one worker binds (and the pool learns the address), then the others join it;
 * each listening, or the start fails with the first that could not.
 */
const startAll = (
  pool: Pool,
  valid: Valid
): Effect.Effect<readonly [Listener.Address, ReadonlyArray<WorkerProcess>], StartFailedError> =>
  Effect.gen(function*() {
    const start = (id: number) =>
      Effect.flatMap(pool.fork(id), (p) =>
        p === undefined
          ? Effect.fail(new StartFailedError({ worker: id, detail: "the shutdown began" }))
          : Effect.mapBoth(p.listening(valid.startTimeout), {
            onFailure: (detail) => new StartFailedError({ worker: id, detail }),
            onSuccess: (address) => [address, p] as const
          }))
    // With reusePort, a port 0 is whichever the first worker got: the others wait for it. With
    // the primary's socket (or a given port), all ask for the same address at once.
    const ids = Array.from({ length: valid.workers }, (_, i) => i + 1)
    const first = valid.sharing === "reusePort" && valid.port === 0 ? [yield* start(1)] : []
    if (first[0] !== undefined) pool.bind(first[0][0])
    const all = [...first, ...yield* Effect.forEach(ids.slice(first.length), start, { concurrency: "unbounded" })]
    const address = all[0]![0]
    pool.bind(address)
    return [address, all.map(([, p]) => p)] as const
  })

/** What a supervisor works with: the workers, the controls in force, the crash window. */
interface Supervising {
  readonly pool: Pool
  readonly valid: Valid
  readonly controls: Controls.Controls
  readonly crashWindow: CrashWindow.CrashWindow
  readonly giveUp: Deferred.Deferred<never, CrashLoopError>
}

/**
 * Worker `first.id`'s life: each time it dies, the crash window judges, the restart schedule
 * waits, and (once the workers are not suspended) it is forked again and told what is in force.
 * Ends when the shutdown begins, or fails `giveUp` with the crash loop.
 */
const supervise = ({ controls, crashWindow, giveUp, pool, valid }: Supervising, first: WorkerProcess) =>
  Effect.gen(function*() {
    const id = first.id
    const driver = yield* Schedules.driver(valid.restart)
    let p = first
    while (true) {
      const { detail: death, since } = yield* p.exited
      if (pool.stopping) return
      const crashLoop = (deaths: number, limit: CrashLoopError["limit"]) =>
        new CrashLoopError({ worker: id, pid: p.pid, death, deaths, within: valid.within, limit })
      const verdict = yield* crashWindow.death(since)
      if (verdict._tag === "GiveUp") {
        const error = crashLoop(verdict.count, "restarts")
        yield* Effect.logError(error.message)
        return yield* Deferred.fail(giveUp, error)
      }
      // A worker that served for a whole window was healthy: the backoff starts over.
      if (verdict.fresh) yield* driver.reset
      yield* Effect.logWarning(
        `worker ${id} (pid ${p.pid}) ${death}: restarting it (restart ${verdict.count} within ` +
          `${Duration.format(valid.within)}; the primary gives up past ${valid.restarts})`
      ).pipe(Effect.annotateLogs({ worker: id, pid: p.pid }))
      if (!(yield* driver.next)) return yield* Deferred.fail(giveUp, crashLoop(verdict.count, "schedule"))
      // Not while the workers are suspended: a new worker would accept until told otherwise.
      yield* controls.resumed
      const next = yield* pool.fork(id)
      if (next === undefined) return
      p = next
      const address = yield* Effect.option(p.listening(valid.startTimeout))
      if (Option.isSome(address)) {
        yield* Effect.logInfo(
          `worker ${id} (pid ${p.pid}) restarted, listening on ${Listener.formatAddress(address.value)}`
        ).pipe(Effect.annotateLogs({ worker: id, pid: p.pid }))
        // What the others were told since they started, this one is told now.
        yield* controls.catchUp(target(p, valid))
      }
    }
  })

/**
 * The shutdown, run once (a second call waits for the first): the supervisors stop, each worker
 * is told to end (its own graceful shutdown), and all have one deadline; past it, those left are
 * killed (SIGKILL).
 */
const shutdownOnce = (
  pool: Pool,
  supervisors: FiberSet.FiberSet<void>,
  deadline: Duration.Duration
): Effect.Effect<Effect.Effect<Shutdown>> =>
  Effect.map(Deferred.make<Shutdown>(), (done) => {
    let begun = false
    return Effect.suspend(() => {
      if (begun) return Deferred.await(done)
      begun = true
      return Effect.gen(function*() {
        pool.stop()
        yield* FiberSet.clear(supervisors)
        const live = pool.processes.filter((p) => p.state._tag !== "Exited")
        for (const p of live) p.stop()
        // Interruptible, within an uninterruptible shutdown: or its timeouts could not end it.
        const all = Effect.interruptible(Effect.forEach(live, (p) => p.exited, { discard: true }))
        const killed: Array<number> = []
        if (Option.isNone(yield* Effect.timeoutOption(all, deadline))) {
          const left = live.filter((p) => p.state._tag !== "Exited")
          for (const p of left) {
            killed.push(p.id)
            p.kill()
          }
          yield* Effect.logError(
            `shutdown deadline (${Duration.format(deadline)}) passed: killed ` +
              left.map((p) => `worker ${p.id} (pid ${p.pid})`).join(", ")
          )
          yield* Effect.timeoutOption(all, "2 seconds")
        }
        const exits = live.map((p) => ({
          id: p.id,
          pid: p.pid,
          ...(p.state._tag === "Exited" ? p.state.ended : { code: null, signal: "SIGKILL" })
        }))
        const summary: Shutdown = {
          exits,
          killed,
          clean: killed.length === 0 && exits.every((e) => e.code === 0 || e.signal === "SIGTERM")
        }
        yield* Deferred.succeed(done, summary)
        return summary
      }).pipe(Effect.uninterruptible)
    })
  })

/**
 * Running workers as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class WorkersService extends Service<WorkersService, Workers>()("effect-tcp-echo/Workers") {}

/**
 * The workers as a layer: started when the layer is built (every worker listening), shut down
 * gracefully, all under one deadline, when it is released.
 *
 * ```ts
 * // primary.ts: four processes of worker.js on port 7000
 * Workers.layer({ workers: 4, exec: "worker.js", port: 7000 }).pipe(Layer.launch, NodeRuntime.runMain)
 * // worker.js
 * Workers.serve({}, handler).pipe(NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<WorkersService, WorkersError> =>
  Layers.scoped(WorkersService, make(options))

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Workers } from "effect-tcp-echo/Workers"`, as well as
 * `import * as Workers from "effect-tcp-echo/Workers"`.
 *
 * @since 0.1.0
 */
export * as Workers from "./Workers.js"
