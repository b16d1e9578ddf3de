/**
 * The entry of `effect-tcp-echo simulate` (run in a process of its own by the command line, see
 * `launch.ts`) and of `npm run simulate`: the installed package's modules, unbundled, so that the
 * user's handler module and the test kit share one copy of `effect`.
 */
import { Effect } from "effect"
import * as Command from "./command.js"

const invokedAs = process.env.npm_lifecycle_event === "simulate" ? "npm run simulate --" : "effect-tcp-echo simulate"

Effect.runPromise(Command.run(process.argv.slice(2), {
  invokedAs,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  cwd: process.cwd()
})).then(
  // Exits even if the user's module left something on the event loop.
  (code) => process.stdout.write("", () => process.exit(code)),
  (error) => {
    process.stderr.write(`${invokedAs}: unexpected failure (a bug): ${String(error)}\n`)
    process.exit(1)
  }
)
