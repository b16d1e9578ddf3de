/**
 * `serve`: one runner for every service (service.ts). It answers the signals, checks the flags
 * together, serves the metrics and probes, announces the address, waits for a signal (or for
 * the service to stop by itself), then shuts the service down and says how it ended.
 */
import type { FileSystem } from "#line/platform"
import { Effect, Option, Ref } from "effect"
import type * as KernelLimits from "../../KernelLimits.js"
import * as Listener from "../../Listener.js"
import * as Prometheus from "../../Prometheus.js"
import * as Workers from "../../Workers.js"
import * as Signals from "../signals.js"
import { type CliFailure, failed } from "./failure.js"
import * as Host from "./host.js"
import * as Output from "./output.js"
import { checkTogether, metricsMaxConnections, type Resolved } from "./serveFlags.js"
import * as Service from "./service.js"

/**
 * Who this process is, from the flags and from what its primary told it.
 *
 * @internal
 */
export const role = (resolved: Resolved): Service.Role =>
  Option.match(Workers.current, {
    onSome: ({ id, restarts }): Service.Role => ({ _tag: "Worker", id, restarts }),
    onNone: (): Service.Role => {
      const count = Option.getOrElse(resolved.values.workers, () => 1)
      return count > 1 ? { _tag: "Primary", count } : { _tag: "Single" }
    }
  })

/** @internal */
export const run = (
  resolved: Resolved
): Effect.Effect<void, CliFailure, KernelLimits.KernelLimits | FileSystem.FileSystem> => {
  const { values } = resolved
  const level = capitalize(Option.getOrElse(values.logLevel, () => "info" as const))
  // Stryker disable next-line ArrowFunction: equivalent (no format is the pretty one)
  const format = Option.getOrElse(values.logFormat, () => "pretty" as const)
  const as = role(resolved)
  const served = as._tag === "Worker"
    // Every record of a worker says which; once done, its channel to the primary lets go.
    ? serve(resolved, as).pipe(Effect.annotateLogs("worker", as.id), Effect.ensuring(Workers.detach))
    : serve(resolved, as)
  return served.pipe(Effect.provide(Output.loggingLayer(format, level)))
}

const capitalize = <S extends string>(s: S) => (s.charAt(0).toUpperCase() + s.slice(1)) as Capitalize<S>

/** How `effect` failed, if it did: its error, kept for later (a defect or an interruption is not caught). */
const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<E>, never, R> =>
  Effect.match(effect, { onFailure: Option.some, onSuccess: () => Option.none() })

const serve = (resolved: Resolved, as: Service.Role) =>
  Effect.gen(function*() {
    // First, so that it covers everything below: a first signal starts the graceful shutdown, a
    // second ends the process at once. Released last, once the shutdown is over. A worker has it
    // too: a terminal's Ctrl-C reaches every process of the group.
    const signals = yield* Signals.guard({
      inspector: Option.getOrElse(resolved.values.inspectOnSigusr1, () => false)
    })
    yield* checkTogether(resolved)
    // Read before listening (the limits shape the server), reported after: the address comes first.
    const host = yield* Host.read
    // The service, once it runs: what the metrics listener, bound before it, reads.
    const running = yield* Ref.make(Option.none<Service.Service>())
    // Metrics first: a port that cannot be served fails before the service is announced, and the
    // scope releases it last, so that the service's drain can be watched to its end. A worker's
    // metrics are served by its primary.
    const metrics = as._tag === "Worker" ? undefined : yield* serveMetrics(resolved, host, signals, running)
    const service = yield* as._tag === "Primary"
      ? Service.primary(resolved, as.count)
      : Service.single(resolved, host, as, metrics !== undefined)
    yield* Ref.set(running, Option.some(service))
    yield* announce(as, service, metrics)
    // Until the first signal, or until the service stops by itself (a worker asked by its
    // primary, a crash loop).
    const ended = yield* failure(Effect.raceFirst(signals.stopped, service.stopped))
    // Begun without a signal, the shutdown still yields to one: it stops the process at once.
    yield* signals.begin(as._tag === "Worker" ? "its primary asked for (or left)" : "a crash loop began")
    const shut = yield* failure(service.shutdown)
    if (Option.isSome(ended)) return yield* ended.value
    if (Option.isSome(shut)) return yield* shut.value
    yield* Effect.logInfo("stopped: the port is closed, and no connection is left open")
  }).pipe(Effect.scoped)

/**
 * The address (and where the metrics are), alone on stdout, and in the log with the service's
 * report. A reader gone (EPIPE) is ignored by the binary. A worker's primary writes stdout, once
 * for all.
 */
const announce = (as: Service.Role, service: Service.Service, metrics: Listener.Address | undefined) =>
  Effect.gen(function*() {
    const address = Listener.formatAddress(service.address)
    if (as._tag !== "Worker") {
      const lines = [
        `listening on ${address}`,
        ...(metrics === undefined ? [] : [`metrics on ${Listener.formatAddress(metrics)}`])
      ]
      yield* Effect.sync(() => process.stdout.write(lines.map((line) => `${line}\n`).join("")))
    }
    yield* Effect.logInfo(`listening on ${address}${service.detail}`).pipe(Effect.annotateLogs("address", address))
    yield* service.report
    if (metrics === undefined) return
    const url = `http://${Listener.formatAddress(metrics)}/metrics`
    yield* Effect.logInfo(
      `metrics${as._tag === "Primary" ? " of all workers" : ""} on ${url}, probes on /healthz and /readyz`
    ).pipe(Effect.annotateLogs("metrics", url))
  })

/**
 * `GET /metrics`, `/healthz` and `/readyz` on the metrics port, in the current scope, with
 * `--metrics-port`; its exposure logged. Ready once the service accepts, until the first signal:
 * from that moment, before the drain delay ends, `/readyz` says no, so that a load balancer
 * stops sending while the port is open.
 */
const serveMetrics = (
  { sources, values }: Resolved,
  host: Host.Host,
  signals: Signals.Guard,
  running: Ref.Ref<Option.Option<Service.Service>>
) =>
  Effect.gen(function*() {
    if (Option.isNone(values.metricsPort)) return undefined
    const bound = yield* Prometheus.serve({
      // Stryker disable next-line ArrowFunction: equivalent (Prometheus.serve's own default is this one)
      host: Option.getOrElse(values.metricsHost, () => Prometheus.defaults.host),
      port: values.metricsPort.value,
      maxConnections: metricsMaxConnections,
      ready: Effect.flatMap(signals.received, (received) =>
        received
          ? Effect.succeed(false)
          : Effect.flatMap(
            Ref.get(running),
            Option.match({ onNone: () => Effect.succeed(false), onSome: (s) => s.ready })
          )),
      exposition: Effect.flatMap(
        Ref.get(running),
        Option.match({ onNone: () => Prometheus.exposition, onSome: (s) => s.exposition })
      )
    }).pipe(Effect.mapError((error) => {
      // The port was given (the listener is there for it), the host perhaps.
      const from = sources.metricsHost === undefined
        ? `port from ${sources.metricsPort}`
        : `address from ${sources.metricsHost} and ${sources.metricsPort}`
      const why = error.code === "EMFILE" ? Host.outOfDescriptors(error.address, host) : error.message
      return failed(`cannot serve metrics: ${why} (${from})`)
    }))
    if (!bound.host.startsWith("127.")) {
      yield* Effect.logWarning(
        `metrics on ${
          Listener.formatAddress(bound)
        }: reachable from other hosts, which can read every metric and probe; ` +
          `--metrics-host 127.0.0.1 (the default) keeps them to this machine`
      )
    }
    return bound
  })
