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
 * that started it (next to its `reason`, where it has one). On Effect 3:
 *
 * ```ts
 * Server.make(options).pipe(Effect.tagMetrics("server", "edge"))
 * Server.layer(options).pipe(
 *   Layer.locallyWith(FiberRef.currentMetricLabels, (labels) => [...labels, MetricLabel.make("server", "edge")])
 * )
 * ```
 *
 * On Effect 4 the labels are the fiber's metric attributes, and a server's metrics go to the
 * metric registry of the fiber that started it:
 *
 * ```ts
 * Server.make(options).pipe(Effect.provideService(Metric.CurrentMetricAttributes, { server: "edge" }))
 * ```
 *
 * @since 0.1.0
 */
import * as Line from "#line/metrics"

/**
 * Connections being served right now (accepted and holding a slot).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsActive: Line.Gauge = Line.register(Line.gauge("echo_connections_active", {
  description: "Connections being served now (accepted and holding a slot)"
}))

/**
 * Connections accepted by the kernel and handed to the server, whether or not they got a slot.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsAccepted: Line.Counter = Line.register(Line.counter("echo_connections_accepted_total", {
  description: "Connections accepted from the kernel, served or not",
  incremental: true
}))

/**
 * Connections closed without being served, tagged with `reason` (`max_connections`: over the hard
 * cap; `shutdown`: still waiting for a slot when the server stopped; `wait_timeout`: waited
 * longer than `idleTimeout` for a slot; `gone`: the peer left, or reset, while it waited).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsDropped: Line.Counter = Line.counter("echo_connections_dropped_total", {
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
export const connectionErrors: Line.Counter = Line.counter("echo_connection_errors_total", {
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

for (const reason of dropReasons) Line.register(Line.tagged(connectionsDropped, "reason", reason))
for (const reason of errorReasons) Line.register(Line.tagged(connectionErrors, "reason", reason))

/**
 * Connections reset by their peer (a subset of `echo_connection_errors_total`, kept on its own
 * because resets are the most common abnormal end).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsReset: Line.Counter = Line.register(Line.counter("echo_connections_reset_total", {
  description: "Connections reset by the peer (also in echo_connection_errors_total, reason Reset)",
  incremental: true
}))

/**
 * Bytes read from peers.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesReceived: Line.Counter = Line.register(Line.counter("echo_received_bytes_total", {
  description: "Bytes read from peers",
  incremental: true
}))

/**
 * Bytes written to peers (for the echo handler, the bytes echoed).
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesSent: Line.Counter = Line.register(Line.counter("echo_sent_bytes_total", {
  description: "Bytes written to peers (for the echo, the bytes echoed)",
  incremental: true
}))

/**
 * How long connections lived, in seconds, from accept to close.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionDuration: Line.Histogram = Line.register(Line.histogram("echo_connection_duration_seconds", {
  boundaries: Line.exponentialBoundaries({ start: 0.001, factor: 4, count: 10 }),
  description: "How long connections lived, from accept to close, in seconds"
}))

/**
 * The labels one server adds to every metric it updates, captured when it starts
 * ({@link currentLabels}), and the updates made with them from Node's callbacks:
 * `modifyUnsafe(connectionsActive, 1, labels.base)`,
 * `modifyUnsafe(connectionErrors, 1, labels.reason("Reset"))`.
 *
 * @internal
 */
export { currentLabels, type Labels, modifyUnsafe, updateUnsafe } from "#line/metrics"

/**
 * This module as a namespace, the shape the root entry point gives it:
 * `import { Metrics } from "effect-tcp-echo/Metrics"`, as well as
 * `import * as Metrics from "effect-tcp-echo/Metrics"`.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"
