/**
 * The signals `serve` answers, for the life of a scope: the first SIGINT, SIGTERM or SIGHUP asks
 * for the graceful shutdown; a second one, while it runs (or once the shutdown began without a
 * signal: a worker's primary asked for it), ends the process at once with exit status 128 + the
 * signal's number (130, 143, 129), after logging that it did; every connection still open is then
 * reset on the way out (internal/exitReset.ts). SIGQUIT, "quit now", stops it so at once, first
 * or not (131). SIGUSR1, which would open Node's inspector to anyone who can connect to
 * 127.0.0.1:9229, is logged and ignored unless the inspector is allowed; so is SIGUSR2, which
 * means nothing here. Left to Node, SIGQUIT and SIGUSR2 would kill the process outright, which
 * runs nothing on the way out: every connection would be left to the kernel to close as if whole.
 */
import { deferredDone, runner } from "#line/runtime"
import { Deferred, Effect, Exit } from "effect"
import type { Scope } from "effect"
import * as os from "node:os"

/** @internal */
export const shutdownSignals = ["SIGINT", "SIGTERM", "SIGHUP"] as const

/** 128 + the signal's number, as a shell reports a process the signal killed. @internal */
export const forcedExitCode = (signal: NodeJS.Signals): number => 128 + os.constants.signals[signal]

/**
 * What {@link guard} gives: `stopped` waits for the first signal; `received` tells, at once,
 * whether the shutdown began (what a readiness probe reads: not ready from that moment on);
 * `begin` says it began without a signal, so that the next signal stops the process at once.
 *
 * @internal
 */
export interface Guard {
  readonly stopped: Effect.Effect<void>
  readonly received: Effect.Effect<boolean>
  /** The shutdown began otherwise (`why`: "its primary asked for"); nothing if it had already. */
  readonly begin: (why: string) => Effect.Effect<void>
}

/**
 * Listens for the signals until the scope closes.
 *
 * @internal
 */
export const guard = (options: { readonly inspector: boolean }): Effect.Effect<Guard, never, Scope.Scope> =>
  Effect.gen(function*() {
    // Log records from a signal handler, written before it returns (stderr writes are synchronous).
    const run = yield* runner()
    const log = (record: Effect.Effect<void>) => run.runSync(record)
    const first = yield* Deferred.make<void>()
    // How the shutdown began ("SIGINT began"), once it has.
    let began: string | undefined
    const stop = (signal: NodeJS.Signals, when: string) => {
      const code = forcedExitCode(signal)
      log(Effect.logError(
        `${signal}${when}: stopping at once with exit status ${code}; ` +
          `every connection still open is reset, so that no answer cut off passes for a complete one`
      ))
      process.exit(code)
    }
    const onSignal = (signal: NodeJS.Signals) => {
      if (began !== undefined) return stop(signal, ` during the shutdown ${began}`)
      began = `${signal} began`
      log(Effect.logInfo(`${signal}: shutting down gracefully (a second signal stops at once)`))
      deferredDone(first, Exit.void)
    }
    const onQuit = () => stop("SIGQUIT", "")
    const onUsr1 = () =>
      log(Effect.logWarning("SIGUSR1 ignored: Node's inspector stays closed (serve --inspect-on-sigusr1 allows it)"))
    const onUsr2 = () => log(Effect.logWarning("SIGUSR2 ignored: it means nothing to this server"))
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (const signal of shutdownSignals) process.on(signal, onSignal)
        process.on("SIGQUIT", onQuit)
        process.on("SIGUSR2", onUsr2)
        if (!options.inspector) process.on("SIGUSR1", onUsr1)
      }),
      () =>
        Effect.sync(() => {
          for (const signal of shutdownSignals) process.off(signal, onSignal)
          process.off("SIGQUIT", onQuit)
          process.off("SIGUSR2", onUsr2)
          process.off("SIGUSR1", onUsr1)
        })
    )
    return {
      stopped: Deferred.await(first),
      received: Effect.sync(() => began !== undefined),
      begin: (why) =>
        Effect.sync(() => {
          began ??= why
        })
    }
  })
