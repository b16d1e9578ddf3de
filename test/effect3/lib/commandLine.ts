/**
 * What a test of the command line sets up where the lines differ, on Effect 3: the environment
 * variables its config reads, and the cause of an interruption. Its twin,
 * test/effect4/lib/commandLine.ts, exports the same names.
 */
import { Cause, ConfigProvider, Effect, FiberId } from "effect"

/** `self` reading its config from `env` alone (as the binary reads its environment). */
export const withEnv =
  (env: Record<string, string>) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withConfigProvider(self, ConfigProvider.fromMap(new Map(Object.entries(env))))

/** The cause of an interruption by no fiber in particular. */
export const interrupted: Cause.Cause<never> = Cause.interrupt(FiberId.none)
