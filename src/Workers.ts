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
import {
  Clock,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FiberId,
  FiberSet,
  Layer,
  Metric,
  Option,
  Runtime,
  Schedule
} from "effect"
import type { Scope } from "effect"
import cluster from "node:cluster"
import type { Worker as ClusterWorker } from "node:cluster"
import * as MetricsWire from "./internal/metricsWire.js"
import * as Options_ from "./internal/options.js"
import * as Scheduling from "./internal/workers/scheduling.js"
import * as Listener from "./Listener.js"
import * as Prometheus from "./Prometheus.js"
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
  readonly crashLoop?: { readonly restarts?: number; readonly within?: Duration.DurationInput }
  /** How long a worker may take to listen; past it, it is killed and counts as died. Default 10 s. */
  readonly startTimeout?: Duration.DurationInput
  /**
   * The one deadline of the shutdown: how long every worker has to drain and exit once told to.
   * Past it, those left are killed (SIGKILL). Give it more than the workers' own drain delay,
   * shutdown timeout and cleanup timeout together. Default 10 s.
   */
  readonly shutdownTimeout?: Duration.DurationInput
  /** How long a worker has to send its metrics for a scrape; past it, it is left out (logged, counted). Default 1 s. */
  readonly scrapeTimeout?: Duration.DurationInput
}

/**
 * The defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  /** 50 ms, doubling, at most 5 s: a worker that dies at once does not spin the machine. */
  restart: Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced("5 seconds"))) as Schedule.Schedule<
    unknown,
    unknown
  >,
  crashLoop: { restarts: 5, within: Duration.minutes(1) },
  startTimeout: Duration.seconds(10),
  shutdownTimeout: Duration.seconds(10),
  scrapeTimeout: Duration.seconds(1)
} as const

/**
 * Why the workers could not be run: an option is invalid; a worker of the first start could not
 * listen (`StartFailed`: what it reported, or how it ended); or they died too often
 * (`CrashLoop`).
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkersError extends Data.TaggedError("WorkersError")<{
  readonly reason: "InvalidOption" | "StartFailed" | "CrashLoop" | "ControlFailed"
  /**
   * The worker at fault (1 to N), for `StartFailed`, `CrashLoop` (the last to die) and
   * `ControlFailed` (the first that refused, or did not answer).
   */
  readonly worker?: number
  /** What the worker reported, or how it ended (`exited with code 1`, `killed by SIGKILL`). */
  readonly detail?: string
  /** For `CrashLoop`: the deaths counted, and the window. */
  readonly deaths?: number
  readonly within?: Duration.Duration
  readonly option?: string
  readonly value?: unknown
  readonly expected?: string
}> {
  override get message(): string {
    switch (this.reason) {
      case "InvalidOption":
        return `invalid ${this.option}: ${Options_.showValue(this.value)} (expected ${this.expected})`
      case "StartFailed":
        return `worker ${this.worker} could not start: ${this.detail}`
      case "CrashLoop":
        return `workers died ${this.deaths} times within ${Duration.format(this.within ?? Duration.zero)}: giving up ` +
          `(a crash loop); the last, worker ${this.worker}, ${this.detail}`
      case "ControlFailed":
        return `worker ${this.worker} could not ${this.detail}`
    }
  }
}

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

// --- The messages between the primary and its workers, marked so that others pass by.

const tag = "effect-tcp-echo/Workers"

/** What the primary can change in every worker while they run: each one's own `Server` control. */
type Control =
  | { readonly action: "suspend" }
  | { readonly action: "resume" }
  | { readonly action: "setMaxConnections"; readonly maxConnections: number }

type ToWorker =
  | { readonly [tag]: "shutdown" }
  | { readonly [tag]: "metrics"; readonly request: number }
  | { readonly [tag]: "control"; readonly request: number; readonly control: Control }

type ToPrimary =
  | { readonly [tag]: "listening"; readonly address: Listener.Address }
  | { readonly [tag]: "failed"; readonly message: string }
  | { readonly [tag]: "metrics"; readonly request: number; readonly series: ReadonlyArray<MetricsWire.Series> }
  | { readonly [tag]: "controlled"; readonly request: number; readonly error?: string }

const isMessage = (message: unknown): message is ToWorker | ToPrimary =>
  typeof message === "object" && message !== null && tag in message

/** The variable through which the primary tells a worker who it is and how to listen. */
const variable = "EFFECT_TCP_ECHO_WORKER"

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
}> = (() => {
  const text = process.env[variable]
  if (!cluster.isWorker || text === undefined) return Option.none()
  try {
    const parsed = JSON.parse(text) as { id?: unknown; restarts?: unknown; port?: unknown; sharing?: unknown }
    return typeof parsed.id === "number" && typeof parsed.restarts === "number" && typeof parsed.port === "number" &&
        (parsed.sharing === "cluster" || parsed.sharing === "reusePort")
      ? Option.some({ id: parsed.id, restarts: parsed.restarts, port: parsed.port, sharing: parsed.sharing })
      : Option.none()
  } catch {
    return Option.none()
  }
})()

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

/** Sends to the primary and waits until it is written (a worker about to exit must not lose it). */
const send = (message: ToPrimary): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (process.send === undefined || !process.connected) return resume(Effect.void)
    try {
      process.send(message, undefined, {}, () => resume(Effect.void))
    } catch {
      resume(Effect.void)
    }
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
  Effect.gen(function*() {
    const stop = yield* Deferred.make<void>()
    if (!isWorker) return Deferred.await(stop)
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    // Applied one at a time, in the order they came.
    const serially = Effect.unsafeMakeSemaphore(1).withPermits(1)
    const onMessage = (message: unknown) => {
      if (!isMessage(message)) return
      if (message[tag] === "shutdown") Deferred.unsafeDone(stop, Exit.void)
      else if (message[tag] === "metrics" && "request" in message) {
        runFork(
          send({ [tag]: "metrics", request: message.request, series: MetricsWire.encode(Metric.unsafeSnapshot()) })
        )
      } else if (message[tag] === "control" && "control" in message) {
        const request = message.request
        runFork(serially(
          Effect.matchEffect(control(server, message.control), {
            onFailure: (error) => send({ [tag]: "controlled", request, error }),
            onSuccess: () => send({ [tag]: "controlled", request })
          })
        ))
      }
    }
    const onDisconnect = () => Deferred.unsafeDone(stop, Exit.void)
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.on("message", onMessage)
        process.on("disconnect", onDisconnect)
      }),
      () =>
        Effect.sync(() => {
          process.off("message", onMessage)
          process.off("disconnect", onDisconnect)
        })
    )
    yield* send({ [tag]: "listening", address: server.address })
    return Deferred.await(stop)
  })

/** A control applied to this worker's server: fails with what to tell the primary. */
const control = (
  server: Partial<Pick<Server.Server, "suspend" | "resume" | "setMaxConnections">>,
  asked: Control
): Effect.Effect<void, string> => {
  switch (asked.action) {
    case "suspend":
      return server.suspend ?? Effect.fail("its server cannot suspend accepting")
    case "resume":
      return server.resume === undefined
        ? Effect.fail("its server cannot resume accepting")
        : Effect.mapError(server.resume, (error) => error.message)
    case "setMaxConnections":
      return server.setMaxConnections === undefined
        ? Effect.fail("its server cannot change maxConnections")
        : Effect.mapError(server.setMaxConnections(asked.maxConnections), (error) => error.message)
  }
}

/**
 * In a worker: tells the primary why it could not start, before it exits.
 *
 * @since 0.1.0
 * @category worker
 */
export const reportFailure = (message: string): Effect.Effect<void> =>
  isWorker ? send({ [tag]: "failed", message }) : Effect.void

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

const validate = (options: Options): Either.Either<Valid, WorkersError> =>
  Either.mapLeft(
    Either.gen(function*() {
      const workers = yield* Options_.integer("workers", options.workers, 1, 1024)
      const port = yield* Options_.integer("port", options.port ?? 0, 0, 65535)
      const asked = options.sharing ?? "auto"
      if (asked !== "auto" && asked !== "cluster" && asked !== "reusePort") {
        return yield* Either.left<Options_.Invalid>({
          option: "sharing",
          value: asked,
          expected: "auto, cluster or reusePort"
        })
      }
      if (asked === "reusePort" && !Listener.reusePortSupported) {
        return yield* Either.left<Options_.Invalid>({
          option: "sharing",
          value: asked,
          expected: `auto or cluster on Node ${process.versions.node} (reusePort needs Node 22.12 or later)`
        })
      }
      const restarts = yield* Options_.integer(
        "crashLoop.restarts",
        options.crashLoop?.restarts ?? defaults.crashLoop.restarts,
        0
      )
      const within = options.crashLoop?.within === undefined
        ? defaults.crashLoop.within
        : yield* Options_.duration("crashLoop.within", options.crashLoop.within, "positive")
      const duration = (option: string, value: Duration.DurationInput | undefined, fallback: Duration.Duration) =>
        value === undefined ? Either.right(fallback) : Options_.duration(option, value, "positive")
      return {
        workers,
        port,
        sharing: asked === "auto" ? (Listener.reusePortSupported ? "reusePort" : "cluster") : asked,
        restart: options.restart ?? defaults.restart,
        restarts,
        within,
        startTimeout: yield* duration("startTimeout", options.startTimeout, defaults.startTimeout),
        shutdownTimeout: yield* duration("shutdownTimeout", options.shutdownTimeout, defaults.shutdownTimeout),
        scrapeTimeout: yield* duration("scrapeTimeout", options.scrapeTimeout, defaults.scrapeTimeout)
      } satisfies Valid
    }),
    (invalid) => new WorkersError({ reason: "InvalidOption", ...invalid })
  )

/** How a worker process ended. */
interface Ended {
  readonly code: number | null
  readonly signal: string | null
}

/** One worker process, from fork to exit. */
interface Process {
  readonly id: number
  readonly worker: ClusterWorker
  readonly pid: number
  state: "starting" | "listening" | "stopping" | "exited"
  /** Its address once it listens; fails with how it ended if it never did. */
  readonly listening: Deferred.Deferred<Listener.Address, string>
  readonly exited: Deferred.Deferred<Ended>
  /** What it reported before it exited, if it could not start. */
  failure: string | undefined
  listeningAt: number | undefined
  readonly scrapes: Map<number, Deferred.Deferred<ReadonlyArray<MetricsWire.Series>>>
  /** Controls sent and not answered yet: the worker's refusal, or undefined once applied. */
  readonly controls: Map<number, Deferred.Deferred<string | undefined>>
  /** Whether its server accepts: from the moment it listens, until a suspend it applied. */
  accepting: boolean
}

/** The reply to request `request`, for whoever waits for it (nobody, once it timed out). */
const answer = <A>(pending: Map<number, Deferred.Deferred<A>>, request: number, value: A): void => {
  const waiting = pending.get(request)
  pending.delete(request)
  if (waiting !== undefined) Deferred.unsafeDone(waiting, Exit.succeed(value))
}

/** `value` for every request still waiting: their worker is gone. */
const answerAll = <A>(pending: Map<number, Deferred.Deferred<A>>, value: A): void => {
  for (const waiting of pending.values()) Deferred.unsafeDone(waiting, Exit.succeed(value))
  pending.clear()
}

const describe = (ended: Ended): string =>
  ended.signal !== null ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`

/** Restarts per worker, with a `worker` label. */
const restartsMetric = Metric.counter("echo_worker_restarts_total", {
  description: "Workers restarted after they died, by worker",
  incremental: true
})

const scrapesMissed = Metric.counter("echo_worker_scrapes_missed_total", {
  description: "Scrapes a worker did not answer in time (its metrics were left out), by worker",
  incremental: true
})

const listeningGauge = Metric.gauge("echo_workers_listening", {
  description: "Workers listening now"
})

/**
 * Runs `workers` processes of a script, each serving the same port, in the current scope; returns
 * once every one listens. The scope's release is the graceful {@link Workers.shutdown}. Fails
 * with a `WorkersError` when an option is invalid or a worker of this first start cannot listen
 * (the others are then shut down). Later, a worker that dies is restarted after the `restart`
 * schedule's wait, logged and counted; past the crash loop's limit the primary gives up
 * ({@link Workers.failed}). One primary per process: `node:cluster`'s settings are global.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Workers, WorkersError, Scope.Scope> =>
  Effect.gen(function*() {
    const valid = yield* validate(options)
    // Before the first fork, which fixes node:cluster's scheduling for the whole process.
    if (valid.sharing === "cluster") {
      yield* Either.mapLeft(
        Scheduling.acceptInWorkers(),
        (invalid) => new WorkersError({ reason: "InvalidOption", ...invalid })
      )
    }
    cluster.setupPrimary({
      exec: options.exec ?? process.argv[1]!,
      args: [...(options.args ?? process.argv.slice(2))],
      execArgv: [...(options.execArgv ?? process.execArgv)],
      // Structured clone: numbers as they are (Infinity and NaN too, which JSON loses), bigints.
      serialization: "advanced"
    })
    const slots: Array<Process | undefined> = Array.from({ length: valid.workers }, () => undefined)
    const restarts: Array<number> = slots.map(() => 0)
    for (let id = 1; id <= valid.workers; id++) restartsMetric.pipe(Metric.tagged("worker", String(id))).register()
    let stopping = false
    let bound: Listener.Address | undefined
    // The port a new worker asks for. With `cluster`, workers asking for the same address share
    // the primary's socket, which lives while one of them holds it: a newcomer asks for what the
    // others asked for (port 0 included), unless none is left, when it asks for the bound port.
    let asked = valid.port
    // What the controls set, applied to every worker, and again to each one started later. One
    // control at a time, so that each worker applies them in the order they were asked for.
    let suspended = false
    let maxConnections: number | undefined
    const controlling = yield* Effect.makeSemaphore(1)
    // Open unless suspended: a worker that dies while suspended is restarted once they resume.
    const resumed = yield* Effect.makeLatch(true)
    const holding = () => slots.some((p) => p !== undefined && p.state === "listening" && p.accepting)
    const portFor = () => {
      if (bound === undefined) return valid.port
      if (valid.sharing === "reusePort") return bound.port
      if (!holding()) asked = bound.port
      return asked
    }
    const giveUp = yield* Deferred.make<never, WorkersError>()
    const deaths: Array<number> = []
    let requestIds = 0

    // If this process exits with workers left (a second signal, a crash), they go with it.
    const orphans = () => {
      for (const p of slots) if (p !== undefined && p.state !== "exited") p.worker.process.kill("SIGKILL")
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on("exit", orphans)),
      () => Effect.sync(() => process.off("exit", orphans))
    )

    /** Forks worker `id`; undefined once the shutdown has begun. */
    const fork = (id: number): Effect.Effect<Process | undefined> =>
      Effect.sync(() => {
        if (stopping) return undefined
        const port = portFor()
        const worker = cluster.fork({
          ...options.env,
          [variable]: JSON.stringify({ id, restarts: restarts[id - 1], port, sharing: valid.sharing })
        })
        const p: Process = {
          id,
          worker,
          pid: worker.process.pid ?? -1,
          state: "starting",
          listening: Deferred.unsafeMake(FiberId.none),
          exited: Deferred.unsafeMake(FiberId.none),
          failure: undefined,
          listeningAt: undefined,
          scrapes: new Map(),
          controls: new Map(),
          accepting: false
        }
        slots[id - 1] = p
        worker.on("message", (message: unknown) => {
          if (!isMessage(message)) return
          switch (message[tag]) {
            case "listening":
              if ("address" in message && p.state === "starting") {
                p.state = "listening"
                p.accepting = true
                p.listeningAt = Date.now()
                listeningGauge.unsafeUpdate(slots.filter((s) => s?.state === "listening").length, [])
                Deferred.unsafeDone(p.listening, Exit.succeed(message.address))
              }
              return
            case "failed":
              if ("message" in message) p.failure = message.message
              return
            case "metrics":
              if ("series" in message) answer(p.scrapes, message.request, message.series)
              return
            case "controlled":
              answer(p.controls, message.request, message.error)
              return
          }
        })
        // A send to a worker that just died: its exit tells the rest.
        worker.on("error", () => {})
        worker.once("exit", (code: number | null, signal: string | null) => {
          p.state = "exited"
          listeningGauge.unsafeUpdate(slots.filter((s) => s?.state === "listening").length, [])
          const ended = { code, signal }
          Deferred.unsafeDone(p.listening, Exit.fail(p.failure ?? describe(ended)))
          Deferred.unsafeDone(p.exited, Exit.succeed(ended))
          answerAll(p.scrapes, [])
          // A worker that died has nothing left to apply: its restart gets the controls in force.
          answerAll(p.controls, undefined)
        })
        return p
      })

    /** Waits for `p` to listen, at most `startTimeout` (then kills it): its address, or why not. */
    const listening = (p: Process): Effect.Effect<Listener.Address, string> =>
      Deferred.await(p.listening).pipe(
        Effect.timeoutFail({
          duration: valid.startTimeout,
          onTimeout: () => `did not listen within ${Duration.format(valid.startTimeout)}, and was killed`
        }),
        Effect.tapError(() => Effect.sync(() => p.state !== "exited" && p.worker.process.kill("SIGKILL")))
      )

    /**
     * Sends `p` the message made with a new request number, and waits for the reply `pending`
     * gets under that number, at most `scrapeTimeout`: `None` if none came in time.
     */
    const ask = <A>(
      p: Process,
      pending: Map<number, Deferred.Deferred<A>>,
      message: (request: number) => ToWorker
    ): Effect.Effect<Option.Option<A>> =>
      Effect.suspend(() => {
        const request = ++requestIds
        const reply = Deferred.unsafeMake<A>(FiberId.none)
        pending.set(request, reply)
        p.worker.send(message(request))
        return Effect.tap(Effect.timeoutOption(Deferred.await(reply), valid.scrapeTimeout), (answer) => {
          if (Option.isNone(answer)) pending.delete(request)
        })
      })

    /** Sends `control` to `p` and waits for its answer, at most `scrapeTimeout`: why not, if not. */
    const apply = (p: Process, control: Control): Effect.Effect<string | undefined> =>
      p.state !== "listening" || !p.worker.isConnected()
        ? Effect.succeed(undefined)
        : Effect.map(
          ask(p, p.controls, (request) => ({ [tag]: "control", request, control })),
          Option.getOrElse(() => `did not answer within ${Duration.format(valid.scrapeTimeout)}`)
        )
    /** What `control` makes of a worker's state, once the worker applied it. */
    const applied = (p: Process, control: Control) => {
      if (control.action === "suspend") p.accepting = false
      else if (control.action === "resume") p.accepting = true
    }
    /** The controls in force, told to a worker that just listened (restarted), one by one. */
    const catchUp = (p: Process): Effect.Effect<void> =>
      controlling.withPermits(1)(Effect.gen(function*() {
        const inForce: ReadonlyArray<Control> = [
          ...(suspended ? [{ action: "suspend" } as const] : []),
          ...(maxConnections === undefined ? [] : [{ action: "setMaxConnections", maxConnections } as const])
        ]
        for (const control of inForce) {
          const refused = yield* apply(p, control)
          if (refused !== undefined) {
            yield* Effect.logWarning(
              `worker ${p.id} (pid ${p.pid}), restarted, could not ${control.action}: ${refused}`
            )
          } else applied(p, control)
        }
      }))
    /** `control`, applied by every worker listening now; the first refusal (by worker) fails it. */
    const controlAll = (control: Control): Effect.Effect<void, WorkersError> =>
      Effect.gen(function*() {
        const live = slots.filter((p): p is Process => p !== undefined && p.state === "listening")
        const answers = yield* Effect.forEach(live, (p) => apply(p, control), { concurrency: "unbounded" })
        live.forEach((p, i) => answers[i] === undefined && applied(p, control))
        const refused = answers.findIndex((answer) => answer !== undefined)
        if (refused < 0) return
        return yield* new WorkersError({
          reason: "ControlFailed",
          worker: live[refused]!.id,
          detail: `${control.action === "setMaxConnections" ? "set maxConnections" : control.action}: ${
            answers[refused]
          }`
        })
      })

    const supervise = (first: Process): Effect.Effect<void> =>
      Effect.gen(function*() {
        const id = first.id
        const driver = yield* Schedule.driver(valid.restart)
        const within = Duration.toMillis(valid.within)
        let p = first
        while (true) {
          const ended = yield* Deferred.await(p.exited)
          if (stopping) return
          const detail = p.failure ?? describe(ended)
          const now = yield* Clock.currentTimeMillis
          // A worker that served for a whole window was healthy: the backoff starts over.
          if (p.listeningAt !== undefined && now - p.listeningAt >= within) yield* driver.reset
          while (deaths.length > 0 && now - deaths[0]! >= within) deaths.shift()
          if (deaths.length >= valid.restarts) {
            const error = new WorkersError({
              reason: "CrashLoop",
              worker: id,
              detail: `pid ${p.pid}, ${detail}`,
              deaths: deaths.length + 1,
              within: valid.within
            })
            yield* Effect.logError(error.message)
            return yield* Deferred.fail(giveUp, error)
          }
          deaths.push(now)
          yield* Effect.logWarning(
            `worker ${id} (pid ${p.pid}) ${detail}: restarting it (restart ${deaths.length} within ` +
              `${Duration.format(valid.within)}; the primary gives up past ${valid.restarts})`
          ).pipe(Effect.annotateLogs({ worker: id, pid: p.pid }))
          const waited = yield* Effect.either(driver.next(undefined))
          if (Either.isLeft(waited)) {
            return yield* Deferred.fail(
              giveUp,
              new WorkersError({
                reason: "CrashLoop",
                worker: id,
                detail: `${detail}, and the restart schedule ended`,
                deaths: deaths.length,
                within: valid.within
              })
            )
          }
          // Not while the workers are suspended: a new worker would accept until told otherwise.
          yield* resumed.await
          // Counted once the schedule allowed it: a restart the schedule refused did not happen.
          restarts[id - 1]! += 1
          yield* Metric.increment(Metric.tagged(restartsMetric, "worker", String(id)))
          const next = yield* fork(id)
          if (next === undefined) return
          p = next
          const address = yield* Effect.either(listening(p))
          if (Either.isRight(address)) {
            yield* Effect.logInfo(
              `worker ${id} (pid ${p.pid}) restarted, listening on ${Listener.formatAddress(address.right)}`
            )
              .pipe(Effect.annotateLogs({ worker: id, pid: p.pid }))
            // What the others were told since they started, this one is told now.
            yield* catchUp(p)
          }
        }
      })

    const supervisors = yield* FiberSet.make<void>()

    // --- The shutdown: one message to each, one deadline for all.
    const done = yield* Deferred.make<Shutdown>()
    let begun = false
    const shutdown: Effect.Effect<Shutdown> = Effect.suspend(() => {
      if (begun) return Deferred.await(done)
      begun = true
      return Effect.gen(function*() {
        stopping = true
        yield* FiberSet.clear(supervisors)
        const live = slots.filter((p): p is Process => p !== undefined && p.state !== "exited")
        for (const p of live) {
          if (p.state === "listening" && p.worker.isConnected()) {
            p.state = "stopping"
            p.worker.send({ [tag]: "shutdown" } satisfies ToWorker)
          } else {
            // Still starting: it holds no connection, and may not listen for messages yet.
            p.state = "stopping"
            p.worker.process.kill("SIGTERM")
          }
        }
        // Interruptible, within an uninterruptible shutdown: or its timeouts could not end it.
        const all = Effect.interruptible(Effect.all(live.map((p) => Deferred.await(p.exited)), { discard: true }))
        const inTime = yield* Effect.timeoutOption(all, valid.shutdownTimeout)
        const killed: Array<number> = []
        if (Option.isNone(inTime)) {
          const left = live.filter((p) => p.state !== "exited")
          for (const p of left) {
            killed.push(p.id)
            p.worker.process.kill("SIGKILL")
          }
          yield* Effect.logError(
            `shutdown deadline (${Duration.format(valid.shutdownTimeout)}) passed: killed ` +
              left.map((p) => `worker ${p.id} (pid ${p.pid})`).join(", ")
          )
          yield* Effect.timeoutOption(all, "2 seconds")
        }
        const exits: Array<Shutdown["exits"][number]> = []
        for (const p of live) {
          const polled = yield* Deferred.poll(p.exited)
          const ended = Option.isSome(polled) ? yield* polled.value : { code: null, signal: "SIGKILL" }
          exits.push({ id: p.id, pid: p.pid, ...ended })
        }
        const summary: Shutdown = {
          exits,
          killed,
          clean: killed.length === 0 && exits.every((e) => e.code === 0 || e.signal === "SIGTERM")
        }
        yield* Deferred.succeed(done, summary)
        return summary
      }).pipe(Effect.uninterruptible)
    })
    yield* Effect.addFinalizer(() => shutdown)

    // --- The first start: one worker binds (and learns the port), then the others join it.
    const start = (id: number) =>
      Effect.flatMap(fork(id), (p) =>
        p === undefined
          ? Effect.fail(new WorkersError({ reason: "StartFailed", worker: id, detail: "the shutdown began" }))
          : Effect.as(
            Effect.mapError(listening(p), (detail) => new WorkersError({ reason: "StartFailed", worker: id, detail })),
            p
          ))
    // With reusePort, a port 0 is whichever the first worker got: the others wait for it. With
    // the primary's socket (or a given port), all ask for the same address at once.
    const ids = Array.from({ length: valid.workers }, (_, i) => i + 1)
    const sequential = valid.sharing === "reusePort" && valid.port === 0
    const first = sequential ? [yield* start(1)] : []
    if (first[0] !== undefined) bound = yield* Deferred.await(first[0].listening).pipe(Effect.orDie)
    const started = [...first, ...yield* Effect.forEach(ids.slice(first.length), start, { concurrency: "unbounded" })]
    bound = yield* Deferred.await(started[0]!.listening).pipe(Effect.orDie)
    for (const p of started) yield* FiberSet.run(supervisors, supervise(p))

    const scrape = (p: Process): Effect.Effect<ReadonlyArray<MetricsWire.Series> | undefined> =>
      p.state !== "listening" || !p.worker.isConnected()
        ? Effect.succeed(undefined)
        : Effect.flatMap(
          ask(p, p.scrapes, (request) => ({ [tag]: "metrics", request })),
          Option.match({
            onSome: (series) => Effect.succeed(series),
            onNone: () =>
              Metric.increment(Metric.tagged(scrapesMissed, "worker", String(p.id))).pipe(
                Effect.zipRight(Effect.logWarning(
                  `metrics: worker ${p.id} (pid ${p.pid}) did not answer within ${
                    Duration.format(valid.scrapeTimeout)
                  }: left out of this scrape`
                )),
                Effect.as(undefined)
              )
          })
        )

    const exposition = Effect.gen(function*() {
      const live = slots.filter((p): p is Process => p !== undefined)
      const answers = yield* Effect.forEach(live, scrape, { concurrency: "unbounded" })
      const snapshots: Array<{ label: string; series: ReadonlyArray<MetricsWire.Series> }> = [
        { label: "primary", series: MetricsWire.encode(Metric.unsafeSnapshot()) }
      ]
      const perWorker: Array<MetricsWire.Series> = []
      answers.forEach((series, i) => {
        if (series === undefined) return
        const worker = String(live[i]!.id)
        snapshots.push({ label: worker, series })
        perWorker.push(
          {
            name: "echo_worker_connections_active",
            description: "Connections being served now, by worker",
            tags: [["worker", worker]],
            kind: "gauge",
            value: MetricsWire.valueOf(series, "echo_connections_active")
          },
          {
            name: "echo_worker_connections_accepted_total",
            description: "Connections accepted from the kernel, by worker",
            tags: [["worker", worker]],
            kind: "counter",
            incremental: true,
            value: MetricsWire.valueOf(series, "echo_connections_accepted_total")
          }
        )
      })
      return Prometheus.format(MetricsWire.decode([...MetricsWire.sum(snapshots), ...perWorker]))
    })

    return {
      address: bound,
      sharing: valid.sharing,
      ready: Effect.sync(() => !stopping && holding()),
      workers: Effect.sync(() =>
        slots.flatMap((p) =>
          p === undefined || p.state === "exited"
            ? []
            : [{ id: p.id, pid: p.pid, state: p.state, restarts: restarts[p.id - 1]! }]
        )
      ),
      exposition,
      failed: Deferred.await(giveUp),
      shutdown,
      suspend: controlling.withPermits(1)(Effect.suspend(() => {
        suspended = true
        // Resumed, each worker listens on the port it was bound to, and so does a newcomer:
        // with port 0 and the primary's socket closed meanwhile, it would get another port.
        if (bound !== undefined) asked = bound.port
        return Effect.zipRight(resumed.close, controlAll({ action: "suspend" }))
      })),
      resume: controlling.withPermits(1)(
        Effect.zipRight(
          controlAll({ action: "resume" }),
          // Only once every worker accepts again; after a refusal the workers stay suspended as
          // far as restarts go, and `ready` says whether any accepts.
          Effect.suspend(() => {
            suspended = false
            return resumed.open
          })
        )
      ),
      setMaxConnections: (n) =>
        Effect.flatMap(
          Effect.mapError(
            Options_.integer("maxConnections", n, 1),
            (invalid) => new WorkersError({ reason: "InvalidOption", ...invalid })
          ),
          (valid) =>
            controlling.withPermits(1)(
              Effect.tap(controlAll({ action: "setMaxConnections", maxConnections: valid }), () => {
                // In force for later workers once every worker took it.
                maxConnections = valid
              })
            )
        )
    } satisfies Workers
  })

/**
 * Running workers as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class WorkersService extends Context.Tag("effect-tcp-echo/Workers")<WorkersService, Workers>() {}

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
  Layer.scoped(WorkersService, make(options))
