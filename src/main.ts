/**
 * The `effect-tcp-echo` program: parse the command line, provide Node's platform, run. Everything
 * else lives in the library. Bundled into one file (esbuild, `npm run build`: dist/src/main.cjs),
 * so that starting opens one module file instead of hundreds, and run by the binary, bin.ts, with
 * V8's code cache. Its first import settles SIGUSR1 and EPIPE before anything else is evaluated
 * (internal/early.ts).
 *
 * @since 0.1.0
 */
import "./internal/early.js"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import packageJson from "../package.json" with { type: "json" }
import * as Cli from "./Cli.js"
import * as KernelLimits from "./KernelLimits.js"

// Inlined by the bundler: no file to read at start.
const { version } = packageJson

// What @effect/cli and KernelLimits need of the platform, and nothing more (NodeContext.layer
// would add a command executor and workers, loaded and never used).
const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)

Cli.run(version)(process.argv).pipe(
  Effect.tapErrorCause(Cli.reportCause),
  Effect.provide(Layer.provideMerge(KernelLimits.layer, platform)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(Cli.exitCode(exit))
  })
)
