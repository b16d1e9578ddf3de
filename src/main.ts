/**
 * The `effect-tcp-echo` program: run the command line with Node's platform, and exit with the
 * status it ends with. Everything else lives in the library. Bundled into one file (esbuild,
 * `npm run build`: dist/src/main.cjs), so that starting opens one module file instead of
 * hundreds, and run by the binary, bin.ts, with V8's code cache. Its first import settles SIGUSR1
 * and EPIPE before anything else is evaluated (internal/early.ts).
 *
 * @since 0.1.0
 */
import "./internal/early.js"
import { environment } from "#line/cli"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import packageJson from "../package.json" with { type: "json" }
import * as Cli from "./Cli.js"
import * as KernelLimits from "./KernelLimits.js"

// Inlined by the bundler: no file to read at start.
const { version } = packageJson

// What KernelLimits and serve read the machine with, and nothing more (NodeContext.layer would
// add a command executor and workers, loaded and never used).
const platform = Layer.provideMerge(KernelLimits.layer, NodeFileSystem.layer)

// Not NodeRuntime.runMain: its SIGINT and SIGTERM handlers interrupt the program, which would
// replace the exit status it returns; `serve` answers every signal itself (internal/signals.ts),
// and the other commands end as Node ends a process on a signal.
const fiber = Effect.runFork(Effect.provide(environment(Cli.run(version)(process.argv)), platform))
// A fiber waiting for a signal holds no handle: this keeps the process until the program ends.
const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
fiber.addObserver((exit) => {
  clearInterval(keepAlive)
  const status = Exit.isSuccess(exit) ? exit.value : 1
  // On success, once nothing is left to run, so that what is still being written gets out.
  if (status !== 0) process.exit(status)
})
