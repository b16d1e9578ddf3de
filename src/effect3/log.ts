/**
 * Logging on Effect 3's `LogLevel` and `Logger`: the project's log levels (`level.ts`) mapped to
 * Effect's, the running fiber's minimum level, a record logged at a `Level`, and the command
 * line's logger in each format. This is the Effect 3 side (`#line/log`); src/effect4/log.ts
 * exports the same names.
 */
import type { Cause } from "effect"
import { Effect, FiberRef, HashSet, Layer, Logger, LogLevel } from "effect"
import type { Level } from "../internal/level.js"

const logLevels: Readonly<Record<Level, LogLevel.LogLevel>> = {
  Debug: LogLevel.Debug,
  Info: LogLevel.Info,
  Warning: LogLevel.Warning,
  Error: LogLevel.Error,
  None: LogLevel.None
}

/**
 * Effect's level as the nearest `Level` that decides alike for every record the server writes:
 * `All` and `Trace` let all of them through, as `Debug` does; `Fatal` lets none, as `None` does.
 *
 * @internal
 */
export const fromLogLevel = (level: LogLevel.LogLevel): Level => {
  switch (level._tag) {
    case "All":
    case "Trace":
      return "Debug"
    case "Fatal":
      return "None"
    default:
      return level._tag
  }
}

/**
 * The running fiber's minimum log level, read in as many steps as reading a fiber ref takes: a fiber
 * yields after a fixed count of steps, and a simulation's trace follows where it yields.
 *
 * @internal
 */
export const minimumLevel: Effect.Effect<Level> = Effect.withFiberRuntime((fiber) =>
  Effect.succeed(fromLogLevel(fiber.getFiberRef(FiberRef.currentMinimumLogLevel)))
)

/** Logs `message` at `level`, with `cause` when there is one. @internal */
export const logAt = (level: Level, message: string, cause?: Cause.Cause<unknown>): Effect.Effect<void> =>
  cause === undefined
    ? Effect.logWithLevel(logLevels[level], message)
    : Effect.logWithLevel(logLevels[level], message, cause)

/** Runs `self` with `level` as its minimum log level (`None`: nothing is logged). @internal */
export const withMinimumLevel = (level: Level) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Logger.withMinimumLogLevel(self, logLevels[level])

/**
 * Every level a minimum can be set to, by the names the command line's `--log-level` takes
 * (capitalised; `Warning`, as Effect 3 spells it).
 *
 * @internal
 */
export type LevelName = "All" | "Trace" | "Debug" | "Info" | "Warning" | "Error" | "Fatal" | "None"

/** A minimum level: by its name, or as this line's `LogLevel`. @internal */
export type LevelInput = LevelName | LogLevel.LogLevel

const ours = new WeakSet<Logger.Logger<unknown, unknown>>()

/**
 * The logger for a log format, writing to stderr, and the minimum level: one layer. It replaces
 * Effect's default logger and any logger this function set before (one record, one line), and
 * keeps the others.
 *
 * @internal
 */
export const loggingLayer = (format: "pretty" | "json" | "logfmt", level: LevelInput): Layer.Layer<never> => {
  const logger = format === "json"
    ? Logger.withConsoleError(Logger.jsonLogger)
    : format === "logfmt"
    ? Logger.withConsoleError(Logger.logfmtLogger)
    : Logger.prettyLogger({ stderr: true, colors: process.stderr.isTTY === true && process.env.NO_COLOR === undefined })
  ours.add(logger)
  return Layer.merge(
    Layer.scopedDiscard(
      Effect.locallyScopedWith(FiberRef.currentLoggers, (loggers) =>
        HashSet.add(
          HashSet.filter(loggers, (l) => l !== Logger.defaultLogger && !ours.has(l)),
          logger
        ))
    ),
    Logger.minimumLogLevel(typeof level === "string" ? LogLevel.fromLiteral(level) : level)
  )
}
