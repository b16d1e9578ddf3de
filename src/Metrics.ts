/**
 * The server's metrics, as Effect `Metric`s: read them with `Metric.value`, export them with any
 * metrics backend (the CLI serves them in the Prometheus text format). Each is registered when
 * this module loads, so an exporter shows it at zero before the first connection.
 *
 * Their names follow Prometheus's conventions (base units, a unit suffix, `_total` on counters):
 * `Prometheus.exposition` gives them as they are. A family with a `reason` label is registered
 * with each reason the server itself counts, at zero, and with no unlabelled series beside them.
 *
 * They are shared by every server in the process. To tell servers apart, start each under labels
 * of its own, the Effect way: every metric a server updates carries the metric labels of the fiber
 * that started it (next to its `reason`, where it has one).
 *
 * ```ts
 * Server.make(options).pipe(Effect.tagMetrics("server", "edge"))
 * Server.layer(options).pipe(
 *   Layer.locallyWith(FiberRef.currentMetricLabels, (labels) => [...labels, MetricLabel.make("server", "edge")])
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Array as Arr, Effect, FiberRef, Metric, MetricBoundaries, MetricLabel } from "effect"

/**
 * Connections being served right now (accepted and holding a slot).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsActive = Metric.gauge("echo_connections_active", {
  description: "Connections being served now (accepted and holding a slot)"
}).register()

/**
 * Connections accepted by the kernel and handed to the server, whether or not they got a slot.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsAccepted = Metric.counter("echo_connections_accepted_total", {
  description: "Connections accepted from the kernel, served or not",
  incremental: true
}).register()

/**
 * Connections closed without being served, tagged with `reason` (`max_connections`: over the hard
 * cap; `shutdown`: still waiting for a slot when the server stopped; `wait_timeout`: waited
 * longer than `idleTimeout` for a slot; `gone`: the peer left, or reset, while it waited).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsDropped = Metric.counter("echo_connections_dropped_total", {
  description: "Connections closed without being served, by reason",
  incremental: true
})

/** The reasons a connection is dropped for, registered at zero. @internal */
export const dropReasons = [
  "max_connections",
  "shutdown",
  "wait_timeout",
  "gone",
  "proxy_untrusted",
  "proxy_malformed",
  "proxy_timeout"
] as const

/**
 * Connections that ended abnormally, tagged with `reason` (`Reset`, `BrokenPipe`, `Timeout`,
 * `Unknown`, `HandlerError`, `Defect`, `Interrupted`, `ShutdownDeadline`, or the reason a
 * handler's `Server.PeerFault` error names).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionErrors = Metric.counter("echo_connection_errors_total", {
  description: "Connections that ended abnormally, by reason",
  incremental: true
})

/**
 * The reasons the server itself counts abnormal ends under, registered at zero (a handler's
 * `Server.PeerFault` adds its own when it first happens).
 *
 * @internal
 */
export const errorReasons = [
  "Reset",
  "BrokenPipe",
  "Timeout",
  "Unknown",
  "HandlerError",
  "Defect",
  "Interrupted",
  "ShutdownDeadline"
] as const

for (const reason of dropReasons) Metric.tagged(connectionsDropped, "reason", reason).register()
for (const reason of errorReasons) Metric.tagged(connectionErrors, "reason", reason).register()

/**
 * Connections reset by their peer (a subset of `echo_connection_errors_total`, kept on its own
 * because resets are the most common abnormal end).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsReset = Metric.counter("echo_connections_reset_total", {
  description: "Connections reset by the peer (also in echo_connection_errors_total, reason Reset)",
  incremental: true
}).register()

/**
 * Bytes read from peers.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesReceived = Metric.counter("echo_received_bytes_total", {
  description: "Bytes read from peers",
  incremental: true
}).register()

/**
 * Bytes written to peers (for the echo handler, the bytes echoed).
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesSent = Metric.counter("echo_sent_bytes_total", {
  description: "Bytes written to peers (for the echo, the bytes echoed)",
  incremental: true
}).register()

/**
 * How long connections lived, in seconds, from accept to close.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionDuration = Metric.histogram(
  "echo_connection_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 4, count: 10 }),
  "How long connections lived, from accept to close, in seconds"
).register()

/**
 * The labels one server adds to every metric it updates: the labels of the fiber that started it
 * (`Effect.tagMetrics`, `Effect.labelMetrics`), alone and with each `reason`. Built once per
 * server; each array keeps its identity, so Effect finds the metric's labelled hook in a cache
 * instead of the registry on every update.
 *
 * @internal
 */
export interface Labels {
  readonly base: ReadonlyArray<MetricLabel.MetricLabel>
  readonly reason: (reason: string) => ReadonlyArray<MetricLabel.MetricLabel>
}

const labels = (base: ReadonlyArray<MetricLabel.MetricLabel>): Labels => {
  const byReason = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  return {
    base,
    reason: (reason) => {
      let tags = byReason.get(reason)
      // In Effect's own order: `Metric.tagged(m, "reason", r)` updated or read in a labelled fiber
      // is the union of its tag and the fiber's labels, and a key's labels compare in order.
      if (tags === undefined) byReason.set(reason, tags = Arr.union([MetricLabel.make("reason", reason)], base))
      return tags
    }
  }
}

/**
 * The {@link Labels} of the current fiber.
 *
 * @internal
 */
export const currentLabels: Effect.Effect<Labels> = Effect.map(FiberRef.get(FiberRef.currentMetricLabels), labels)

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Metrics } from "effect-tcp-echo/Metrics"`, as well as
 * `import * as Metrics from "effect-tcp-echo/Metrics"`.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"
