/**
 * The soak test, not part of `npm test`:
 *
 *   npm run soak -- --minutes 30 [--seed S] [--peers K] [--no-build]
 *
 * Builds (npm run build), then runs the real binary, `serve --workers 2 --metrics-port 0`, for N
 * minutes against hostile peers, with worker kills and signals at random moments (run.ts), and
 * prints one JSON line (report.ts). Exit status: 0 when no peer lost bytes undetected, got wrong
 * bytes or hung, no server process misbehaved on the way down and none leaked; 1 otherwise; 2 on
 * bad arguments, a failed build, or a server that does not start at all. Run with tsx, as
 * `npm run simulate` is: it is a test script over the built binary, not part of the package.
 */
import { Effect, Exit, Fiber } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Args from "./args.js"
import * as Report from "./report.js"
import * as Run from "./run.js"
import * as Server from "./server.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

const exit = (status: number, message?: string): never => {
  if (message !== undefined) process.stderr.write(`soak: ${message}\n`)
  process.exit(status)
}

const parsed = Args.parse(process.argv.slice(2), Math.floor(Math.random() * 2 ** 32))
if (parsed._tag === "Help") {
  process.stdout.write(Args.help)
  exit(0)
}
if (parsed._tag === "Invalid") exit(2, `${parsed.message}\n${Args.usage}`)
const options = (parsed as Extract<Args.Parsed, { _tag: "Run" }>).options

if (options.build) {
  // The build's output goes to stderr: stdout carries only the JSON line.
  const built = spawnSync("npm", ["run", "build"], { cwd: root, stdio: ["ignore", 2, 2] })
  if (built.status !== 0) exit(2, `npm run build failed (${built.error?.message ?? `status ${built.status}`})`)
}
const bin = Server.binary(root)
if (!fs.existsSync(bin)) exit(2, `${path.relative(root, bin)} is missing: run npm run build, or drop --no-build`)

const logs = fs.mkdtempSync(path.join(os.tmpdir(), "effect-tcp-echo-soak-"))
process.stderr.write(`soak: seed ${options.seed}, ${options.minutes} min, server logs in ${logs}\n`)

const fiber = Effect.runFork(Effect.scoped(Run.run(options, bin, logs)))
// Ctrl-C or a SIGTERM interrupts the run, whose scope then kills every server it started.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => Effect.runFork(Fiber.interrupt(fiber)))
const result = await Effect.runPromise(Fiber.await(fiber))
if (Exit.isInterrupted(result)) {
  exit(130, `interrupted: the servers it started were killed; their logs are in ${logs}`)
} else if (Exit.isFailure(result)) {
  const error = result.cause._tag === "Fail" ? result.cause.error.message : String(result.cause)
  exit(2, error)
} else {
  const { ok, line } = Report.make(result.value)
  // The logs are kept for a failed run, to read what the server said.
  if (ok) fs.rmSync(logs, { recursive: true, force: true })
  process.stdout.write(JSON.stringify({ ...line, logs: ok ? "removed (the run passed)" : logs }) + "\n")
  exit(ok ? 0 : 1)
}
