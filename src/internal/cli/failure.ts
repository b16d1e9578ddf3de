/**
 * How the command line fails: one typed error whose text is the one line printed, and the exit
 * status each way of ending gets.
 */
import { firstDefect, firstFailure } from "#line/cause"
import { Data, Effect, Exit, Option } from "effect"
import type { Cause } from "effect"
import * as Workers from "../../Workers.js"

/** @internal */
export const program = "effect-tcp-echo"

/**
 * A failure the command line reports as one line on stderr before exiting non-zero: `Usage`
 * (a flag, a variable, the command line itself: exit status 2, with a hint to `--help`) or
 * `Failed` (the command could not do its work: exit status 1).
 *
 * @internal
 */
export class CliFailure extends Data.TaggedError("CliFailure")<{
  readonly reason: "Usage" | "Failed"
  readonly message: string
  /** The command whose `--help` the hint names. */
  readonly command?: string
}> {
  /** What is printed, every line starting with the program's name or a hint. */
  get text(): string {
    const hint = this.reason === "Usage"
      ? `\nTry '${program}${this.command === undefined ? "" : ` ${this.command}`} --help'.`
      : ""
    return `${program}: ${this.message}${hint}\n`
  }
}

/** A usage error, whose hint names `command`'s `--help`. @internal */
export const usage = (message: string, command?: string): CliFailure =>
  new CliFailure({ reason: "Usage", message, ...(command === undefined ? {} : { command }) })

/** The command could not do its work. @internal */
export const failed = (message: string): CliFailure => new CliFailure({ reason: "Failed", message })

/**
 * The exit status of a command, as `--help` states it: 0 done (a signal's graceful shutdown
 * included), 1 failed (or a bug), 2 a usage error. A second signal exits at once with 128 + its
 * number instead (internal/signals.ts).
 *
 * @internal
 */
export type ExitStatus = 0 | 1 | 2

/** The exit status for how the command ended. @internal */
export const exitStatus = (exit: Exit.Exit<void, CliFailure>): ExitStatus => {
  if (Exit.isSuccess(exit)) return 0
  const failure = firstFailure(exit.cause)
  return Option.isSome(failure) && failure.value.reason === "Usage" ? 2 : 1
}

/**
 * Reports how the command failed, if it did: a failure's text on stderr (in a worker, to the
 * primary instead, which reports it once for the service: `worker 2 could not start: ...`), a
 * defect as the bug it is.
 *
 * @internal
 */
export const report = (cause: Cause.Cause<CliFailure>): Effect.Effect<void> => {
  const failure = firstFailure(cause)
  if (Option.isSome(failure)) {
    return Workers.isWorker
      ? Workers.reportFailure(failure.value.message)
      : Effect.sync(() => process.stderr.write(failure.value.text))
  }
  const defect = firstDefect(cause)
  const text = Option.match(defect, {
    onNone: () => "interrupted",
    onSome: (d) => d instanceof Error ? d.message : String(d)
  })
  return Effect.sync(() => process.stderr.write(`${program}: unexpected failure (a bug): ${text}\n`))
}
