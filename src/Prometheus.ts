/**
 * The process's Effect `Metric`s in Prometheus's text exposition format (version 0.0.4), named
 * by Prometheus's conventions, and a small HTTP listener that serves them on `GET /metrics`,
 * with the probes an orchestrator asks: `/healthz` (the process is alive) and `/readyz` (the
 * service wants connections).
 * Scoped: the listener is released with the scope that started it, at once: its release closes
 * the port and every HTTP connection still open, so that it never holds up the shutdown of the
 * process it reports on. It holds at most a few connections of its own, so that scrapers (or
 * anyone else on the port) cannot take the descriptors the echo server needs.
 *
 * @since 0.1.0
 */
import * as LineMetrics from "#line/metrics"
import { callback, observe, runner } from "#line/runtime"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as http from "node:http"
import type { DropArgument } from "node:net"
import * as Checked from "./internal/checked.js"
import * as errno from "./internal/errno.js"
import { LogAggregator } from "./internal/logAggregator.js"
import type * as MetricsWire from "./internal/metricsWire.js"
import * as Options_ from "./internal/options.js"
import * as Listener from "./Listener.js"

/**
 * Where to serve `/metrics`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default `127.0.0.1`. */
  readonly host?: string
  /** 0 for any free port. */
  readonly port: number
  /**
   * HTTP connections held at once; beyond it a new connection is closed at once, and logged.
   * Default 16: a scraper needs one.
   */
  readonly maxConnections?: number
  /**
   * What `/readyz` answers: 200 while it is true, 503 while it is false (a server's `ready`,
   * false from the moment shutdown begins). Default: always ready.
   */
  readonly ready?: Effect.Effect<boolean>
  /**
   * What `/metrics` serves. Default {@link exposition}: this process's metrics. (A primary
   * serving the metrics of its workers gives their aggregate here.)
   */
  readonly exposition?: Effect.Effect<string>
}

/**
 * The defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  host: "127.0.0.1",
  maxConnections: 16
} as const

/**
 * HTTP connections to the metrics port closed at once because it held `maxConnections` already
 * (registered, at zero, when {@link serve} starts).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsDropped: LineMetrics.Counter = LineMetrics.counter("echo_metrics_connections_dropped_total", {
  description: "HTTP connections to the metrics port closed at its connection cap",
  incremental: true
})

/**
 * The `Content-Type` of the text exposition format.
 *
 * @since 0.1.0
 * @category constants
 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/**
 * Every metric of the process in the text exposition format: a `# HELP` and a `# TYPE` line for
 * each family, then its series. Effect's own runtime metrics (`effect_fiber_*`) are left out:
 * they count every fiber of the process, carry no description, and time fibers in milliseconds.
 * (On Effect 4: the metrics of the current fiber's `Metric.MetricRegistry`, without Effect's
 * runtime metrics `child_fiber*`.)
 *
 * @since 0.1.0
 * @category exposition
 */
export const exposition: Effect.Effect<string> = Effect.map(LineMetrics.snapshot, (all) => formatSeries(all))

interface Family {
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string
  readonly samples: Array<string>
}

/**
 * The exposition of `pairs`, a snapshot of Effect's metrics (`Metric.unsafeSnapshot()` on Effect 3,
 * `Metric.snapshotUnsafe(context)` on Effect 4; see {@link exposition}). Incremental counters are
 * `counter`s and end in `_total`; a counter that can go down is a `gauge`; histograms give
 * cumulative `_bucket` series up to `le="+Inf"`, `_sum` and `_count`.
 *
 * @since 0.1.0
 * @category exposition
 */
export const format = (pairs: ReadonlyArray<LineMetrics.Snapshot>): string => formatSeries(LineMetrics.encode(pairs))

/**
 * {@link format} of metrics as plain data: a process's own, or the sum of several processes'.
 *
 * @internal
 */
export const formatSeries = (all: ReadonlyArray<MetricsWire.Series>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], description: string | undefined) => {
    const found = families.get(name)
    if (found !== undefined) return found.type === type ? found : undefined
    const created: Family = { type, help: description ?? `${name} (no description given)`, samples: [] }
    families.set(name, created)
    return created
  }
  for (const series of all) {
    const base = metricName(series.name)
    const { description } = series
    const labels: Array<readonly [string, string]> = series.tags.map(([key, value]) => [labelName(key), value])
    switch (series.kind) {
      case "counter": {
        const name = series.incremental && !base.endsWith("_total") ? `${base}_total` : base
        family(name, series.incremental ? "counter" : "gauge", description)?.samples.push(
          sample(name, labels, series.value)
        )
        break
      }
      case "gauge": {
        family(base, "gauge", description)?.samples.push(sample(base, labels, series.value))
        break
      }
      case "histogram": {
        const samples = family(base, "histogram", description)?.samples
        if (samples === undefined) break
        for (const [le, cumulative] of series.buckets) {
          samples.push(sample(`${base}_bucket`, [...labels, ["le", number(le)]], cumulative))
        }
        samples.push(sample(`${base}_sum`, labels, series.sum), sample(`${base}_count`, labels, series.count))
        break
      }
      case "frequency": {
        const name = base.endsWith("_total") ? base : `${base}_total`
        const samples = family(name, "counter", description)?.samples
        for (const [value, count] of series.occurrences) samples?.push(sample(name, [...labels, ["key", value]], count))
        break
      }
      case "summary": {
        const samples = family(base, "summary", description)?.samples
        if (samples === undefined) break
        for (const [quantile, value] of series.quantiles) {
          samples.push(sample(base, [...labels, ["quantile", number(quantile)]], value ?? NaN))
        }
        samples.push(sample(`${base}_sum`, labels, series.sum), sample(`${base}_count`, labels, series.count))
        break
      }
    }
  }
  let text = ""
  for (const [name, { help, samples, type }] of families) {
    text += `# HELP ${name} ${help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}\n# TYPE ${name} ${type}\n`
    for (const line of samples) text += line + "\n"
  }
  return text
}

const metricName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/^(?=[0-9])/, "_")
const labelName = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/^(?=[0-9])/, "_")

const number = (value: number | bigint): string =>
  typeof value === "bigint"
    ? value.toString()
    : Number.isNaN(value)
    ? "NaN"
    : value === Number.POSITIVE_INFINITY
    ? "+Inf"
    : value === Number.NEGATIVE_INFINITY
    ? "-Inf"
    : String(value)

const sample = (name: string, labels: ReadonlyArray<readonly [string, string]>, value: number | bigint): string =>
  (labels.length === 0
    ? name
    : `${name}{${
      labels.map(([key, v]) =>
        `${key}="${v.replaceAll("\\", "\\\\").replaceAll("\"", "\\\"").replaceAll("\n", "\\n")}"`
      )
        .join(",")
    }}`) + ` ${number(value)}`

/** What each path answers. `/` and everything else tell a visitor where the pages are. */
const respond = (
  run: <A>(effect: Effect.Effect<A>, onDone: (a: A) => void, onFailure: () => void) => void,
  ready: Effect.Effect<boolean>,
  metrics: Effect.Effect<string>
) =>
(request: http.IncomingMessage, response: http.ServerResponse): void => {
  const path = (request.url ?? "/").split("?")[0]
  const reply = (status: number, text: string, headers: Record<string, string> = {}) => {
    response.writeHead(status, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": String(Buffer.byteLength(text)),
      // A probe's answer is true now, not later: no cache may keep it.
      "Cache-Control": "no-store",
      ...headers
    })
    response.end(request.method === "HEAD" ? undefined : text)
  }
  if (path !== "/metrics" && path !== "/" && path !== "/healthz" && path !== "/readyz") {
    return reply(404, `no page at ${path}: the metrics are at /metrics, the probes at /healthz and /readyz\n`)
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return reply(405, `${path} answers GET and HEAD, not ${request.method}\n`, { Allow: "GET, HEAD" })
  }
  switch (path) {
    case "/":
      return reply(
        200,
        "effect-tcp-echo: the metrics are at /metrics (Prometheus text format), the probes at /healthz and /readyz\n"
      )
    case "/healthz":
      // Answered by the process's event loop: a process that can answer is alive.
      return reply(200, "ok\n")
    case "/readyz":
      return run(
        ready,
        (yes) => yes ? reply(200, "ready\n") : reply(503, "not ready: not accepting, or shutting down\n"),
        () => reply(503, "not ready: readiness could not be read\n")
      )
    default:
      return run(
        metrics,
        (body) => reply(200, body, { "Content-Type": contentType }),
        () => reply(500, "the metrics could not be gathered\n")
      )
  }
}

/**
 * Starts serving `GET /metrics` in the current scope and returns the address it listens on.
 * Fails with a `ListenError` naming the reason when the port cannot be bound (`AddressInUse`,
 * ...) or an option is invalid. The scope's release closes the port and every HTTP connection.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (
  options: Options
): Effect.Effect<Listener.Address, Listener.ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options.host ?? defaults.host
    const address = `${host}:${options.port}`
    const valid = Checked.gen(function*() {
      return Checked.valid({
        bindHost: yield* Checked.value(Options_.ipv4("host", host)),
        port: yield* Checked.value(Options_.integer("port", options.port, 0, 65535)),
        maxConnections: yield* Checked.value(
          Options_.integer("maxConnections", options.maxConnections ?? defaults.maxConnections, 1)
        )
      })
    })
    if (valid._tag === "Invalid") {
      return yield* new Listener.ListenError({ reason: "InvalidOption", address, ...valid.error })
    }
    const { bindHost, maxConnections, port } = valid.value
    const { fork } = yield* runner()
    const labels = yield* LineMetrics.currentLabels
    // A page's effect, answered when it completes; one that fails or dies answers 500, logged.
    const run = <A>(effect: Effect.Effect<A>, onDone: (a: A) => void, onFailure: () => void) =>
      observe(fork(effect), (exit) => {
        if (exit._tag === "Success") return onDone(exit.value)
        onFailure()
        fork(Effect.logWarning("metrics: a page could not be made", exit.cause))
      })
    const logs = new LogAggregator({ emit: (record) => fork(record) })
    yield* Effect.addFinalizer(() => Effect.sync(() => logs.flush()))
    const server = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const server = http.createServer(
          { connectionsCheckingInterval: 1000 },
          respond(run, options.ready ?? Effect.succeed(true), options.exposition ?? exposition)
        )
        server.maxConnections = maxConnections
        // A connection that sends nothing is closed after 10 s, so the cap cannot be held for long.
        server.headersTimeout = 10_000
        server.requestTimeout = 10_000
        return server
      }),
      // Closes the port and every connection now, idle ones too: a scraper's keep-alive
      // connection would otherwise hold the release, and the process, until it left.
      (server) =>
        callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    LineMetrics.register(connectionsDropped)
    server.on("drop", (drop?: DropArgument) => {
      LineMetrics.updateUnsafe(connectionsDropped, 1, labels.none)
      const peer = `${drop?.remoteAddress}:${drop?.remotePort}`
      logs.add("drop", peer, "Warning", `metrics: dropped HTTP connections (${maxConnections} open)`, () =>
        Effect.logWarning(`metrics: dropped HTTP connection from ${peer}: ${maxConnections} open, the most it holds`))
    })
    yield* callback<void, Listener.ListenError>((resume) => {
      const onError = (error: Error) => {
        const code = errno.errnoCode(error)
        resume(Effect.fail(
          new Listener.ListenError({
            reason: errno.listenReason(code),
            address: `${bindHost}:${port}`,
            ...(code === undefined ? {} : { code }),
            cause: error
          })
        ))
      }
      server.once("error", onError)
      server.listen({ host: bindHost, port, exclusive: true }, () => {
        server.off("error", onError)
        resume(Effect.void)
      })
    })
    server.on("error", (error) =>
      fork(Effect.logWarning(`metrics on ${address}: ${error.message}`)))
    const bound = server.address() as { address: string; port: number }
    return { host: bound.address, port: bound.port }
  })

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Prometheus } from "effect-tcp-echo/Prometheus"`, as well as
 * `import * as Prometheus from "effect-tcp-echo/Prometheus"`.
 *
 * @since 0.1.0
 */
export * as Prometheus from "./Prometheus.js"
