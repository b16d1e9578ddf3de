/**
 * The `effect-tcp-echo` command line: `serve`, `probe` and `client`. One parser reads it
 * (internal/flags.ts): each flag falls back to its `ECHO_*` variable, errors name the flag or
 * variable at fault, and `--help` is written from the same flags. All behaviour lives in the
 * library modules; this module only runs the command asked and turns how it ended into one line
 * and an exit status.
 *
 * Output: `serve` writes `listening on HOST:PORT` on stdout once it accepts (and, with
 * `--metrics-port`, a second line, `metrics on HOST:PORT`); `probe` and `client` write their
 * results there. Logs and errors go to stderr.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "#line/platform"
import { Effect } from "effect"
import * as Client from "./internal/cli/client.js"
import { type CliFailure, type ExitStatus, exitStatus, program as name, report, usage } from "./internal/cli/failure.js"
import * as Output from "./internal/cli/output.js"
import * as Probe from "./internal/cli/probe.js"
import * as Serve from "./internal/cli/serve.js"
import * as ServeFlags from "./internal/cli/serveFlags.js"
import * as Flags from "./internal/flags.js"
import * as Simulate from "./internal/testkit/launch.js"
import type * as KernelLimits from "./KernelLimits.js"

/**
 * `CliFailure`: a failure reported as one line on stderr, `Usage` (exit status 2) or `Failed`
 * (1); `ExitStatus`: 0 done, 1 failed, 2 a usage error.
 *
 * @since 0.1.0
 * @category errors
 */
export { CliFailure, type ExitStatus } from "./internal/cli/failure.js"

/** What the commands need of the platform. */
type Platform = KernelLimits.KernelLimits | FileSystem.FileSystem

/** A command: its flags and help, and what it runs with them resolved. */
interface Command {
  readonly spec: Flags.Command
  readonly run: (given: ReadonlyMap<string, unknown>) => Effect.Effect<void, CliFailure, Platform>
}

const command = <T extends Flags.Table, R extends Platform>(
  spec: Flags.Command<T>,
  run: (resolved: Flags.Resolved<T>) => Effect.Effect<void, CliFailure, R>
): Command => ({
  spec,
  run: (given) =>
    Flags.resolve(spec.flags, given).pipe(
      Effect.mapError((invalid) => usage(Flags.formatInvalid(invalid), spec.name)),
      Effect.flatMap(run)
    )
})

const commands: ReadonlyArray<Command> = [
  command(ServeFlags.command, Serve.run),
  command(Probe.command, Probe.run),
  command(Client.command, Client.run)
]

const specs = commands.map((c) => c.spec)

/** The test kit's runner: flags of its own, read by the process it runs in. */
const simulate = {
  name: "simulate",
  summary: "Property-test a handler's shutdown on the simulated network ('simulate --help' for its flags)."
}

/**
 * Runs the command line `argv` (with the node and script paths, as `process.argv`): answers
 * `--help` and `--version`, or runs the command it names. Every failure is a `CliFailure`, whose
 * `text` is what to print.
 *
 * @since 0.1.0
 * @category commands
 */
export const program = (version: string) => (argv: ReadonlyArray<string>): Effect.Effect<void, CliFailure, Platform> =>
  Effect.suspend(() => {
    const parsed = Flags.parse(specs, argv.slice(2))
    switch (parsed._tag) {
      case "Help":
        return Output.write(
          Flags.help(name, version, "a resource-safe TCP (IPv4) echo server on Effect.", specs, parsed.command, [
            simulate
          ])
        )
      case "Version":
        return Output.writeLine(`${name} ${version}`)
      case "Usage":
        return Effect.fail(usage(parsed.message, parsed.command?.name))
      case "Run":
        return commands.find((c) => c.spec === parsed.command)!.run(parsed.given)
    }
  }).pipe(
    // Anything a command logs before it sets its own format goes to stderr, never into what it
    // prints on stdout.
    // Stryker disable next-line StringLiteral: equivalent (a format that is neither json nor logfmt is the pretty one)
    Effect.provide(Output.loggingLayer("pretty", "Info"))
  )

/**
 * {@link program}, its failure reported (one line on stderr, or to the primary in a worker), and
 * how it ended as the exit status.
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (version: string) => (argv: ReadonlyArray<string>): Effect.Effect<ExitStatus, never, Platform> =>
  // simulate runs in a Node process of its own, on the installed modules that a user's handler
  // module shares (internal/testkit/launch.ts), not on this bundle.
  argv[2] === simulate.name ? Simulate.launch(argv) : program(version)(argv).pipe(
    Effect.onError(report),
    Effect.exit,
    Effect.map(exitStatus)
  )
