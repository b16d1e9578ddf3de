#!/usr/bin/env node
/**
 * The `effect-tcp-echo` binary: parse the command line, provide Node's platform, run. Everything
 * else lives in the library.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Layer } from "effect"
import { createRequire } from "node:module"
import * as Cli from "./Cli.js"
import * as KernelLimits from "./KernelLimits.js"

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string }

Cli.run(version)(process.argv).pipe(
  Effect.tapErrorCause((cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some") {
      // Usage errors were already printed by @effect/cli, with the valid form.
      if (failure.value instanceof Cli.CliFailure) return Console.error(`effect-tcp-echo: ${failure.value.message}`)
      return Effect.void
    }
    return Console.error(`effect-tcp-echo: unexpected failure\n${Cause.pretty(cause)}`)
  }),
  Effect.provide(Layer.provideMerge(KernelLimits.layer, NodeContext.layer)),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
