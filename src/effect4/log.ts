/**
 * Logging on Effect 4's `LogLevel` (strings; `Warn`, not `Warning`) and `Logger`: the project's
 * log levels (`level.ts`) mapped to Effect's, the running fiber's minimum level, a record logged
 * at a `Level`, and the command line's logger in each format. This is the Effect 4 side
 * (`#line/log`); src/effect3/log.ts exports the same names.
 */
import type { Cause, LogLevel } from "effect"
import { Effect, Layer, Logger, References } from "effect"
import type { Level } from "../internal/level.js"

const logLevels: Readonly<Record<Level, LogLevel.LogLevel>> = {
  Debug: "Debug",
  Info: "Info",
  Warning: "Warn",
  Error: "Error",
  None: "None"
}

/**
 * Effect's level as the nearest `Level` that decides alike for every record the server writes:
 * `All` and `Trace` let all of them through, as `Debug` does; `Fatal` lets none, as `None` does.
 *
 * @internal
 */
export const fromLogLevel = (level: LogLevel.LogLevel): Level => {
  switch (level) {
    case "All":
    case "Trace":
      return "Debug"
    case "Fatal":
      return "None"
    case "Warn":
      return "Warning"
    default:
      return level
  }
}

/**
 * The running fiber's minimum log level, read in one step from the fiber: a fiber yields after a
 * fixed count of steps, and a simulation's trace follows where it yields.
 *
 * @internal
 */
export const minimumLevel: Effect.Effect<Level> = Effect.withFiber((fiber) =>
  Effect.succeed(fromLogLevel(fiber.getRef(References.MinimumLogLevel)))
)

/**
 * Logs `message` at `level`, with `cause` when there is one. Nothing is ever logged at `None`
 * (Effect 4 has no such severity to log at).
 *
 * @internal
 */
export const logAt = (level: Level, message: string, cause?: Cause.Cause<unknown>): Effect.Effect<void> => {
  if (level === "None") return Effect.void
  const log = Effect.logWithLevel(logLevels[level] as LogLevel.Severity)
  return cause === undefined ? log(message) : log(message, cause)
}

/** Runs `self` with `level` as its minimum log level (`None`: nothing is logged). @internal */
export const withMinimumLevel = (level: Level) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(self, References.MinimumLogLevel, logLevels[level])

/**
 * Every level a minimum can be set to, by the names the command line's `--log-level` takes
 * (capitalised; `Warning`, as Effect 3 spells it, stands for `Warn`).
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
  const logger: Logger.Logger<unknown, void> = format === "json"
    ? Logger.withConsoleError(Logger.formatJson)
    : format === "logfmt"
    ? Logger.withConsoleError(Logger.formatLogFmt)
    // `tty`: Node's console, whatever globals a bundle sees; it writes to stderr with LogToStderr.
    : Logger.consolePretty({
      mode: "tty",
      colors: process.stderr.isTTY === true && process.env.NO_COLOR === undefined
    })
  ours.add(logger)
  return Layer.mergeAll(
    Layer.effect(
      Logger.CurrentLoggers,
      Effect.map(
        Effect.service(Logger.CurrentLoggers),
        (loggers) => new Set([...[...loggers].filter((l) => l !== Logger.defaultLogger && !ours.has(l)), logger])
      )
    ),
    Layer.succeed(Logger.LogToStderr, true),
    Layer.succeed(References.MinimumLogLevel, level === "Warning" ? "Warn" : level)
  )
}
