/**
 * Where the command line writes: its results on stdout, its logs on stderr, in the format asked.
 */
import { callback } from "#line/runtime"
import { Effect } from "effect"
import type { Layer } from "effect"
import * as Log from "../log.js"
import { type CliFailure, failed } from "./failure.js"

/**
 * Writes to stdout, waiting until it is written; a reader gone (EPIPE) fails instead of crashing.
 *
 * @internal
 */
export const write = (chunk: Uint8Array | string): Effect.Effect<void, CliFailure> =>
  callback<void, CliFailure>((resume) => {
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

/**
 * The logger for a log format, writing to stderr, and the minimum level (by name, `"Info"`, or as
 * the line's `LogLevel`): one layer. In place of Effect's default logger and of any logger set
 * here before: one record, one line.
 *
 * @internal
 */
export const loggingLayer: (format: LogFormat, level: Log.LevelInput) => Layer.Layer<never> = Log.loggingLayer
