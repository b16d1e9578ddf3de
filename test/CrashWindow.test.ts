/**
 * The crash loop's rule (internal/workers/crashWindow.ts), without a process: the verdict on each
 * death as a pure function of the deaths before it, and the same window driven by a TestClock.
 */
import { adjustClock } from "#test-line/workers"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as CrashWindow from "../src/internal/workers/crashWindow.js"

const policy = { restarts: 3, within: Duration.seconds(60) }

/** Deaths at `times` (ms), one after the other, from an empty window: each verdict. */
const verdicts = (times: ReadonlyArray<number>, p: CrashWindow.Policy = policy) => {
  let deaths: ReadonlyArray<number> = []
  return times.map((now) => {
    const [verdict, next] = CrashWindow.judge(deaths, now, undefined, p)
    deaths = next
    return verdict
  })
}

describe("the crash window (crashWindow.ts)", () => {
  it("past `restarts` deaths within the window the primary gives up, counting the last death too", () => {
    expect(verdicts([0, 1, 2, 3])).toEqual([
      { _tag: "Restart", count: 1, fresh: false },
      { _tag: "Restart", count: 2, fresh: false },
      { _tag: "Restart", count: 3, fresh: false },
      { _tag: "GiveUp", count: 4 }
    ])
  })

  it("a death a whole window old is forgotten; one a millisecond younger still counts", () => {
    expect(verdicts([0, 1, 2, 60_000]).map((v) => v.count)).toEqual([1, 2, 3, 3])
    expect(verdicts([0, 1, 2, 59_999]).at(-1)).toEqual({ _tag: "GiveUp", count: 4 })
    expect(verdicts([0, 1, 2, 60_001, 60_002]).map((v) => v._tag)).toEqual([
      "Restart",
      "Restart",
      "Restart",
      "Restart",
      "Restart"
    ])
  })

  it("no restart allowed: the first death ends it", () => {
    expect(verdicts([5], { restarts: 0, within: Duration.seconds(1) })).toEqual([{ _tag: "GiveUp", count: 1 }])
  })

  it("the deaths remembered are those of the window, with this one; a refused one is not added", () => {
    expect(CrashWindow.judge([0, 10, 20], 60_010, undefined, policy)[1]).toEqual([20, 60_010])
    expect(CrashWindow.judge([1, 2, 3], 4, undefined, policy)[1]).toEqual([1, 2, 3])
  })

  it("a worker that listened for a whole window was healthy: its backoff starts over", () => {
    const fresh = (since: number | undefined, now: number) => {
      const [verdict] = CrashWindow.judge([], now, since, policy)
      return verdict._tag === "Restart" && verdict.fresh
    }
    expect(fresh(1_000, 61_000)).toBe(true)
    expect(fresh(1_000, 60_999)).toBe(false)
    expect(fresh(undefined, 1_000_000)).toBe(false)
  })

  it.effect("on the Effect clock: a TestClock moves the window", () =>
    Effect.gen(function*() {
      const window = yield* CrashWindow.make({ restarts: 2, within: Duration.seconds(10) })
      expect(yield* window.death(undefined)).toEqual({ _tag: "Restart", count: 1, fresh: false })
      yield* adjustClock("5 seconds")
      expect(yield* window.death(0)).toEqual({ _tag: "Restart", count: 2, fresh: false })
      // The first death is 10 s old now: forgotten, so this is the second within the window.
      yield* adjustClock("5 seconds")
      expect(yield* window.death(0)).toEqual({ _tag: "Restart", count: 2, fresh: true })
      expect(yield* window.death(undefined)).toEqual({ _tag: "GiveUp", count: 3 })
    }))
})
