/**
 * What the workers' tests ask of Effect where the lines differ, on Effect 3: the test clock moved
 * by hand, and a schedule that reports each step that recurs. Its twin, test/effect4/lib/workers.ts,
 * exports the same names.
 */
import { Effect, Schedule, ScheduleDecision, TestClock } from "effect"
import type { Duration } from "effect"

/** Moves the test's clock (`it.effect`'s TestClock) forward by `duration`, running what falls due. */
export const adjustClock = (duration: Duration.DurationInput): Effect.Effect<void> => TestClock.adjust(duration)

/**
 * `self`, running `f` on the output of each step that recurs. Not on the step that ends it:
 * Effect 3's `tapOutput` sees that one too, Effect 4's `tap` does not, so this reports the same
 * steps on both lines.
 */
export const tapRecurrences =
  <Out>(f: (output: Out) => Effect.Effect<unknown>) => <In, R>(self: Schedule.Schedule<Out, In, R>) =>
    Schedule.onDecision(self, (output, decision) => ScheduleDecision.isContinue(decision) ? f(output) : Effect.void)
