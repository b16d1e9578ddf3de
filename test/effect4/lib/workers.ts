/**
 * What the workers' tests ask of Effect where the lines differ, on Effect 4: the test clock moved
 * by hand (`effect/testing`), and a schedule that reports each step that recurs. Its twin,
 * test/effect3/lib/workers.ts, exports the same names.
 */
import { Schedule } from "effect"
import type { Duration, Effect } from "effect"
import { TestClock } from "effect/testing"

/** Moves the test's clock (`it.effect`'s TestClock) forward by `duration`, running what falls due. */
export const adjustClock = (duration: Duration.Input): Effect.Effect<void> => TestClock.adjust(duration)

/**
 * `self`, running `f` on the output of each step that recurs. Not on the step that ends it:
 * `Schedule.tap` runs on the steps that succeed, and the last one fails with `Cause.Done`.
 */
export const tapRecurrences =
  <Out>(f: (output: Out) => Effect.Effect<unknown>) => <In, E, R>(self: Schedule.Schedule<Out, In, E, R>) =>
    Schedule.tap(self, (metadata) => f(metadata.output))
