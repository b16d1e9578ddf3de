/**
 * A property whose check is an effect, over fast-check's arbitraries, as the body of one test, the
 * same on both Effect lines: `it.effect.prop` takes fast-check's arbitraries on Effect 3 alone
 * (Effect 4's takes its own Arbitrary module's), and the test kit's generators are fast-check's.
 */
import { Effect } from "effect"
import * as fc from "fast-check"
import type { TestContext } from "vitest"

/**
 * fast-check drives the runs (a failure prints its seed and path, to replay it), each check its
 * own effect, run with the default services; the test's end (its timeout) interrupts the one under way.
 */
export const property = <A>(
  arbitrary: fc.Arbitrary<A>,
  check: (value: A) => Effect.Effect<unknown, unknown>,
  parameters: fc.Parameters<[A]> = {}
) =>
(context: TestContext): Promise<void> =>
  fc.assert(
    fc.asyncProperty(arbitrary, (value) => Effect.runPromise(Effect.asVoid(check(value)), { signal: context.signal })),
    parameters
  )
