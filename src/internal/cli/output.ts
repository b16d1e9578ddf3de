/**
 * Where the command line writes: its results on stdout, its logs on stderr, in the format asked.
 */
import { Effect, FiberRef, HashSet, Layer, Logger } from "effect"
import type { LogLevel } from "effect"
import { type CliFailure, failed } from "./failure.js"

/**
 * Writes to stdout, waiting until it is written; a reader gone (EPIPE) fails instead of crashing.
 *
 * @internal
 */
export const write = (chunk: Uint8Array | string): Effect.Effect<void, CliFailure> =>
  Effect.async<void, CliFailure>((resume) => {
    process.stdout.write(chunk, (error) =>
      resume(
        error === null || error === undefined
          ? Effect.void
          : Effect.fail(
            failed(
              `stdout was closed before everything was written (${
                (error as NodeJS.ErrnoException).code ?? error.message
              })`
            )
          )
      ))
  })

/** @internal */
export const writeLine = (line: string): Effect.Effect<void, CliFailure> => write(line + "\n")

/** @internal */
export const logFormats = ["pretty", "json", "logfmt"] as const

/** @internal */
export type LogFormat = (typeof logFormats)[number]

const ours = new WeakSet<Logger.Logger<unknown, unknown>>()

/**
 * The logger for a log format, writing to stderr, and the minimum level: one layer.
 *
 * @internal
 */
export const loggingLayer = (format: LogFormat, level: LogLevel.LogLevel): Layer.Layer<never> => {
  const logger = format === "json"
    ? Logger.withConsoleError(Logger.jsonLogger)
    : format === "logfmt"
    ? Logger.withConsoleError(Logger.logfmtLogger)
    : Logger.prettyLogger({ stderr: true, colors: process.stderr.isTTY === true && process.env.NO_COLOR === undefined })
  ours.add(logger)
  return Layer.merge(
    // In place of Effect's default logger and of any logger set here before: one record, one line.
    Layer.scopedDiscard(
      Effect.locallyScopedWith(FiberRef.currentLoggers, (loggers) =>
        HashSet.add(
          HashSet.filter(loggers, (l) => l !== Logger.defaultLogger && !ours.has(l)),
          logger
        ))
    ),
    Logger.minimumLogLevel(level)
  )
}
