/**
 * The crash loop's rule: past `restarts` restarts, of any worker, within the window `within`, the
 * primary gives up. Deaths are times on the Effect clock, so a `TestClock` drives the window; the
 * verdict on each death is a pure function of the deaths before it.
 */
import { Clock, Duration, Effect, Ref } from "effect"

/** @internal */
export interface Policy {
  /** The restarts allowed within the window. */
  readonly restarts: number
  readonly within: Duration.Duration
}

/**
 * What follows a death: a restart, the `count`th death within the window (with `fresh` when the
 * worker had served a whole window: a healthy worker's backoff starts over), or the end.
 *
 * @internal
 */
export type Verdict =
  | { readonly _tag: "Restart"; readonly count: number; readonly fresh: boolean }
  | { readonly _tag: "GiveUp"; readonly count: number }

/**
 * The verdict on a death at `now` of a worker that listened from `since` (if it did), after
 * `deaths` (their times), and the deaths to remember: those a window old or older are forgotten.
 *
 * @internal
 */
export const judge = (
  deaths: ReadonlyArray<number>,
  now: number,
  since: number | undefined,
  policy: Policy
): readonly [Verdict, ReadonlyArray<number>] => {
  const within = Duration.toMillis(policy.within)
  const recent = deaths.filter((at) => now - at < within)
  if (recent.length >= policy.restarts) return [{ _tag: "GiveUp", count: recent.length + 1 }, recent]
  // Stryker disable next-line ConditionalExpression: equivalent (now - undefined is NaN, never >= within); the check narrows the type
  const fresh = since !== undefined && now - since >= within
  return [{ _tag: "Restart", count: recent.length + 1, fresh }, [...recent, now]]
}

/**
 * The window over time: `death(since)` judges a death now, on the Effect clock, and remembers it.
 *
 * @internal
 */
export interface CrashWindow {
  readonly death: (since: number | undefined) => Effect.Effect<Verdict>
}

/** @internal */
export const make = (policy: Policy): Effect.Effect<CrashWindow> =>
  // Stryker disable next-line ArrayDeclaration: equivalent (what is not a time is never recent: now minus it is NaN)
  Effect.map(Ref.make<ReadonlyArray<number>>([]), (deaths) => ({
    death: (since) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => Ref.modify(deaths, (before) => judge(before, now, since, policy))
      )
  }))
