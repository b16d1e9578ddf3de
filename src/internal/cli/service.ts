/**
 * What `serve` runs, in one shape: one server in this process (alone, or as a worker of a
 * primary), or the primary of `--workers N`. The runner (serve.ts) serves either the same way.
 */
import { extendScope, forkScope } from "#line/cli"
import { decodeDuration } from "#line/types"
import { Duration, Effect, Exit, Option, Scope } from "effect"
import * as Listener from "../../Listener.js"
import * as Prometheus from "../../Prometheus.js"
import * as Server from "../../Server.js"
import * as Workers from "../../Workers.js"
import * as Heap from "../heap.js"
import { type CliFailure, failed } from "./failure.js"
import * as Host from "./host.js"
import { metricsMaxConnections, type Resolved, serverOptions, setBy } from "./serveFlags.js"

/**
 * A running service.
 *
 * @internal
 */
export interface Service {
  /** The address it serves, which stdout's first line announces. */
  readonly address: Listener.Address
  /** Accepting (what `/readyz` says, until the first signal). */
  readonly ready: Effect.Effect<boolean>
  /** Its metrics in the Prometheus text format (what `/metrics` says). */
  readonly exposition: Effect.Effect<string>
  /**
   * Waits until it stops without a signal: succeeds when asked to (a worker, by its primary),
   * fails when it gave up (a crash loop). Never completes for one that only a signal stops.
   */
  readonly stopped: Effect.Effect<void, CliFailure>
  /** The graceful shutdown; fails when it did not end cleanly. */
  readonly shutdown: Effect.Effect<void, CliFailure>
  /** Said after the address in the log's `listening on` line. */
  readonly detail: string
  /** What it logs once it is announced. */
  readonly report: Effect.Effect<void>
}

/**
 * Who this process is: the one server, a worker of a primary, or the primary of `count` workers.
 *
 * @internal
 */
export type Role =
  | { readonly _tag: "Single" }
  | { readonly _tag: "Worker"; readonly id: number; readonly restarts: number }
  | { readonly _tag: "Primary"; readonly count: number }

/**
 * One server in this process, alone or as a worker (whose primary then prints the address,
 * serves the metrics and decides the shutdown); its connection limits fitted to the host, with
 * room for the metrics listener's connections when `metrics` is on.
 *
 * @internal
 */
export const single = (
  resolved: Resolved,
  host: Host.Host,
  role: Exclude<Role, { readonly _tag: "Primary" }>,
  metrics: boolean
): Effect.Effect<Service, CliFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const requested = serverOptions(resolved.values)
    const fitted = Host.fitToDescriptors(
      Host.withKeepAliveTime(requested, host.limits),
      host.limits,
      host.inUse,
      metrics ? metricsMaxConnections : 0
    ).options
    // The port and its sharing, as the primary decided them.
    const options = role._tag === "Worker" ? Workers.workerOptions(fitted) : fitted
    // glibc would otherwise unmap and fault in its heap top at every GC under load (heap.ts).
    yield* Effect.sync(Heap.relaxTrim)
    // The server's own scope, which the shutdown closes: the runner's outlives it.
    const scope = yield* forkScope(yield* Effect.scope)
    const server = yield* Server.make(options).pipe(
      extendScope(scope),
      Effect.catchTags({
        ListenError: (error) => Effect.fail(listenFailure(error, resolved, host)),
        ServerError: (error) => Effect.fail(failed(`${error.message}${setBy(resolved.sources, error.option)}`))
      })
    )
    // A worker serves until its primary asks (or is gone), and answers its scrapes and controls.
    const stopped = role._tag === "Worker" ? yield* extendScope(scope)(Workers.attach(server)) : Effect.never
    // Of a worker, the first worker's first start reports the limits: the same for all.
    const reporting = role._tag === "Single" || (role.id === 1 && role.restarts === 0)
    return {
      address: server.address,
      ready: server.ready,
      exposition: Prometheus.exposition,
      stopped,
      shutdown: Scope.close(scope, Exit.void),
      detail: "",
      report: reporting ? startReport(resolved, host, server.address, requested, options) : Effect.void
    }
  })

/** A failure to listen, in one line naming where the address came from. */
const listenFailure = (error: Listener.ListenError, { sources }: Resolved, host: Host.Host): CliFailure => {
  if (error.reason === "InvalidOption") return failed(`${error.message}${setBy(sources, error.option)}`)
  if (error.code === "EMFILE") return failed(Host.outOfDescriptors(error.address, host))
  const from = [sources.host, sources.port].filter((s) => s !== undefined)
  return failed(error.message + (from.length === 0 ? "" : ` (address from ${from.join(" and ")})`))
}

/** What one server logs once it listens: exposure, inspector, limits, the PROXY protocol. */
const startReport = (
  { values }: Resolved,
  host: Host.Host,
  address: Listener.Address,
  requested: Server.Options,
  options: Server.Options
) =>
  Effect.gen(function*() {
    const exposed = Host.exposure(address.host, Listener.formatAddress(address))
    if (exposed !== undefined) yield* Effect.logWarning(exposed)
    if (Option.getOrElse(values.inspectOnSigusr1, () => false)) {
      yield* Effect.logWarning(
        "SIGUSR1 opens Node's inspector on 127.0.0.1:9229 (--inspect-on-sigusr1): any local user who " +
          "can signal this process or reach that port can then run code as its user"
      )
    }
    yield* Host.report(host, requested, options)
    if (options.proxyProtocol !== undefined) {
      const trusted = options.proxyProtocol.trustedProxies ?? Server.defaults.trustedProxies
      const timeout = Duration.format(
        decodeDuration(options.proxyProtocol.headerTimeout ?? Server.defaults.headerTimeout)
      )
      yield* Effect.logInfo(
        `PROXY protocol on: a header (v1 or v2) from ${
          trusted.join(", ")
        } within ${timeout}, or the connection is refused`
      )
    }
  })

/** A worker's own cleanup after the server's: the most the primary waits for, beyond its flags. */
const workerMargin = Duration.seconds(2)

/**
 * `serve --workers N`, N > 1: the primary. Its workers run this same binary with the same
 * command line; it serves the port through them, and their shutdown is one, under one deadline,
 * with one status.
 *
 * @internal
 */
export const primary = (resolved: Resolved, count: number): Effect.Effect<Service, CliFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const requested = serverOptions(resolved.values)
    // Each worker drains under its own flags; the primary waits that long, and a margin more.
    const deadline = Duration.sum(
      Duration.sum(
        decodeDuration(requested.drainDelay ?? Server.defaults.drainDelay),
        decodeDuration(requested.shutdownTimeout ?? Server.defaults.shutdownTimeout)
      ),
      Duration.sum(Server.defaults.cleanupTimeout, workerMargin)
    )
    const sharing = Listener.reusePortSupported ? "reusePort" : "cluster"
    yield* Effect.logInfo(sharingNote(count, sharing))
    const workers = yield* Workers.make({
      workers: count,
      port: requested.port ?? 0,
      sharing,
      shutdownTimeout: deadline
    }).pipe(Effect.mapError((error) => failed(error.message)))
    const pids = (yield* workers.workers).map((w) => `${w.id} (pid ${w.pid})`).join(", ")
    return {
      address: workers.address,
      ready: workers.ready,
      exposition: workers.exposition,
      stopped: Effect.mapError(workers.failed, (error) => failed(error.message)),
      shutdown: Effect.flatMap(
        Effect.andThen(
          Effect.logInfo(`shutting down ${count} workers: each drains, all within ${Duration.format(deadline)}`),
          workers.shutdown
        ),
        (summary) => shutdownVerdict(summary, deadline)
      ),
      detail: ` with workers ${pids}`,
      report: Effect.void
    }
  })

const sharingNote = (count: number, sharing: Workers.Sharing): string =>
  sharing === "reusePort"
    ? `${count} workers, each listening on the port itself (reusePort, Node ${process.versions.node}): the kernel spreads connections`
    : `${count} workers sharing the primary's listening socket (node:cluster, Node ${process.versions.node}, no reusePort before 22.12): ` +
      (Workers.clusterScheduling() === "roundRobin"
        ? "the primary accepts each connection and hands it to the next worker (round robin; NODE_CLUSTER_SCHED_POLICY=none lets each worker accept itself)"
        : "each worker accepts from it itself (NODE_CLUSTER_SCHED_POLICY=none)")

/** How the workers' shutdown ended, logged; a failure unless every worker exited cleanly in time. */
const shutdownVerdict = (summary: Workers.Shutdown, deadline: Duration.Duration): Effect.Effect<void, CliFailure> => {
  const statuses = summary.exits.map((e) =>
    `worker ${e.id} ${e.signal === null ? `exited ${e.code}` : `ended by ${e.signal}`}`
  ).join(", ")
  const logged = Effect.logInfo(`workers stopped: ${statuses}`)
  if (summary.clean) return logged
  const { killed } = summary
  return Effect.andThen(
    logged,
    Effect.fail(failed(
      killed.length > 0
        ? `shutdown: worker${killed.length > 1 ? "s" : ""} ${killed.join(", ")} still running ${
          Duration.format(deadline)
        } after the signal, killed`
        : `shutdown: not every worker exited cleanly (${statuses})`
    ))
  )
}
