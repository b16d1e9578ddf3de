/**
 * The project's log levels (`level.ts`) on Effect 3's `LogLevel`, in one place: the running
 * fiber's minimum level as a `Level`, and a record logged at a `Level`.
 */
import type { Cause } from "effect"
import { Effect, FiberRef, LogLevel } from "effect"
import type { Level } from "./level.js"

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
