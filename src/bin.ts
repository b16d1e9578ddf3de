#!/usr/bin/env node
/**
 * The `effect-tcp-echo` binary: parse the command line, provide Node's platform, run. Everything
 * else lives in the library. Two things are settled before any module loads, since loading takes
 * a while and either could strike during it:
 * - SIGUSR1 would open Node's inspector to anyone who can reach 127.0.0.1:9229: a listener of its
 *   own keeps it closed, unless `--inspect-on-sigusr1` (or `ECHO_INSPECT_ON_SIGUSR1` true, 1, yes
 *   or on) asks for Node's behaviour.
 * - A closed stdout or stderr (`serve | head -1`) makes the next write fail with EPIPE, which
 *   Node throws as an unhandled 'error' event: ignored instead, so that a reader who left never
 *   stops the server. What cannot be written is dropped.
 */
const inspector = process.argv.includes("--inspect-on-sigusr1") ||
  /^(true|1|yes|on)$/i.test(process.env.ECHO_INSPECT_ON_SIGUSR1 ?? "")
if (!inspector) process.on("SIGUSR1", () => {})
const dropWrite = () => {}
process.stdout.on("error", dropWrite)
process.stderr.on("error", dropWrite)

const [Cli, KernelLimits, NodeContext, NodeRuntime, { Effect, Layer }, { createRequire }] = await Promise.all([
  import("./Cli.js"),
  import("./KernelLimits.js"),
  import("@effect/platform-node/NodeContext"),
  import("@effect/platform-node/NodeRuntime"),
  import("effect"),
  import("node:module")
])

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string }

Cli.run(version)(process.argv).pipe(
  Effect.tapError((failure) => Effect.sync(() => process.stderr.write(failure.text))),
  Effect.tapDefect((defect) =>
    Effect.sync(() =>
      process.stderr.write(`effect-tcp-echo: unexpected failure (a bug): ${defect instanceof Error ? defect.message : String(defect)}\n`)
    )
  ),
  Effect.provide(Layer.provideMerge(KernelLimits.layer, NodeContext.layer)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(Cli.exitCode(exit))
  })
)
