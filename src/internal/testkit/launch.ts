/**
 * How the command line runs `simulate`: in a Node process of its own, on the installed package's
 * modules (`main.ts` beside this one), not on the command line's bundle, whose own copy of
 * `effect` a user's handler module could not share. Its exit status becomes the command's.
 */
import { callback } from "#line/runtime"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type { ExitStatus } from "../cli/failure.js"

/**
 * Runs `simulate` with the arguments after it in `argv` (as `process.argv`), stdio shared, and
 * succeeds with the child's exit status: 0 passed, 2 bad arguments, 1 anything else (a failure
 * found, a child that could not start or was killed). Interrupted (a signal), it stops the child.
 *
 * @internal
 */
export const launch = (argv: ReadonlyArray<string>): Effect.Effect<ExitStatus> =>
  callback<ExitStatus>((resume) => {
    // dist/src/bin.js runs the command; dist/src/internal/testkit/main.js is the runner (main.ts
    // under tsx, from the sources).
    const dir = path.join(path.dirname(path.resolve(argv[1] ?? ".")), "internal", "testkit")
    const entry = fs.existsSync(path.join(dir, "main.js")) ? path.join(dir, "main.js") : path.join(dir, "main.ts")
    const child = spawn(process.execPath, [...process.execArgv, entry, ...argv.slice(3)], { stdio: "inherit" })
    const done = (code: number) => resume(Effect.succeed(code === 0 || code === 2 ? code : 1))
    child.once("error", (error) => {
      process.stderr.write(`effect-tcp-echo simulate: cannot start ${entry}: ${error.message}\n`)
      done(1)
    })
    child.once("exit", (code, signal) => done(code ?? (signal === null ? 1 : 128)))
    return Effect.sync(() => {
      child.kill()
    })
  })
