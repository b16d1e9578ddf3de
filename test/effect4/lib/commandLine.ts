/**
 * What a test of the command line sets up where the lines differ, on Effect 4: the environment
 * variables its config reads, and the cause of an interruption. Its twin,
 * test/effect3/lib/commandLine.ts, exports the same names.
 */
import { Cause, ConfigProvider, Effect } from "effect"

/** `self` reading its config from `env` alone, as the binary reads its environment (`#line/cli`'s `environment`). */
export const withEnv =
  (env: Record<string, string>) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provideService(
      self,
      ConfigProvider.ConfigProvider,
      ConfigProvider.fromEnv({ env, preserveEmptyStrings: true })
    )

/** The cause of an interruption by no fiber in particular. */
export const interrupted: Cause.Cause<never> = Cause.interrupt()
