/**
 * Log records as a test reads them, on Effect 3: a logger that keeps them, and an effect run with
 * it added to (or in place of) the fiber's loggers (`FiberRef.currentLoggers`). Its twin,
 * test/effect4/lib/logging.ts, exports the same names.
 */
import { Cause, Effect, FiberRef, HashSet, Logger } from "effect"

/** One log record: its level, its text (several messages joined by a space), its cause, its annotations. */
export interface LogRecord {
  /** Effect 3's label: `DEBUG`, `INFO`, `WARN`, `ERROR`. */
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
 * `effect` (and what it starts) logging to `logger` too, or to it alone when `only` (the default
 * logger's output included).
 */
export const withLogger =
  (logger: Logger.Logger<unknown, unknown>, only = false) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.locallyWith(
      effect,
      FiberRef.currentLoggers,
      (loggers) => only ? HashSet.make<Array<Logger.Logger<unknown, unknown>>>(logger) : HashSet.add(loggers, logger)
    )

/**
 * The records logged by what `around` runs (and what it starts): `only` keeps them from every
 * other logger (the default one's output included), else they are logged as usual too.
 */
export const capturing = (only = false) => {
  const records: Array<LogRecord> = []
  return { records, around: withLogger(recording(records), only) }
}
