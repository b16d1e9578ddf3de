/**
 * What a test reads of the server as an operator would: a counter's value, and the log records.
 */
import { Cause, Effect, FiberRef, HashSet, Logger, Metric, MetricLabel } from "effect"

/** A counter's value, under a `reason` label when given (the server's counters are global: read deltas). */
export const counter = (metric: Metric.Metric.Counter<number>, reason?: string): Effect.Effect<number> =>
  Metric.value(reason === undefined ? metric : Metric.taggedWithLabels(metric, [MetricLabel.make("reason", reason)]))
    .pipe(Effect.map((state) => state.count))

/** One log record: its level, its text (several messages joined by a space), its cause, its annotations. */
export interface LogRecord {
  readonly level: string
  readonly message: string
  readonly cause: string
  readonly annotations: { readonly [key: string]: unknown }
}

/** A logger that keeps every record in `records`. */
export const recording = (records: Array<LogRecord>): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, logLevel, message }) => {
    records.push({
      level: logLevel.label,
      message: globalThis.Array.isArray(message) ? message.map(String).join(" ") : String(message),
      cause: Cause.isEmpty(cause) ? "" : Cause.pretty(cause),
      annotations: Object.fromEntries(annotations)
    })
  })

/**
 * The records logged by what `around` runs (and what it starts): `only` keeps them from every
 * other logger (the default one's output included), else they are logged as usual too.
 */
export const capturing = (only = false) => {
  const records: Array<LogRecord> = []
  const logger = recording(records)
  return {
    records,
    around: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.locallyWith(
        effect,
        FiberRef.currentLoggers,
        (loggers) => only ? HashSet.make<Array<Logger.Logger<unknown, unknown>>>(logger) : HashSet.add(loggers, logger)
      )
  }
}
