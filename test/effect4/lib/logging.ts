/**
 * Log records as a test reads them, on Effect 4: a logger that keeps them, and an effect run with
 * it added to (or in place of) the fiber's loggers (`Logger.CurrentLoggers`). Its twin,
 * test/effect3/lib/logging.ts, exports the same names.
 */
import { Cause, Effect, Logger, References } from "effect"

/** One log record: its level, its text (several messages joined by a space), its cause, its annotations. */
export interface LogRecord {
  /** As Effect 3 labels it (`DEBUG`, `INFO`, `WARN`, `ERROR`), so a test reads one spelling. */
  readonly level: string
  readonly message: string
  readonly cause: string
  readonly annotations: { readonly [key: string]: unknown }
}

/** A logger that keeps every record in `records`. */
export const recording = (records: Array<LogRecord>): Logger.Logger<unknown, void> =>
  Logger.make(({ cause, fiber, logLevel, message }) => {
    records.push({
      level: logLevel.toUpperCase(),
      message: globalThis.Array.isArray(message) ? message.map(String).join(" ") : String(message),
      cause: cause.reasons.length === 0 ? "" : Cause.pretty(cause),
      annotations: { ...fiber.getRef(References.CurrentLogAnnotations) }
    })
  })

/**
 * `effect` (and what it starts) logging to `logger` too, or to it alone when `only` (the default
 * logger's output included).
 */
export const withLogger =
  (logger: Logger.Logger<unknown, unknown>, only = false) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.updateService(
      effect,
      Logger.CurrentLoggers,
      (loggers): ReadonlySet<Logger.Logger<unknown, unknown>> =>
        only ? new Set([logger]) : new Set([...loggers, logger])
    )

/**
 * The records logged by what `around` runs (and what it starts): `only` keeps them from every
 * other logger (the default one's output included), else they are logged as usual too.
 */
export const capturing = (only = false) => {
  const records: Array<LogRecord> = []
  return { records, around: withLogger(recording(records), only) }
}
