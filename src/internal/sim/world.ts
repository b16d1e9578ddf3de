/**
 * The simulated world: one virtual clock, one seeded source of choices, and one loop that runs
 * everything that can happen (fiber steps of Effect's scheduler, network events, timers) one at a
 * time, in an order the seed decides. Nothing in it reads the real time or waits for the real
 * event loop, so a run is a pure function of its seed and its inputs, and it runs as fast as the
 * CPU allows.
 */
import * as Line from "#line/sim"

/**
 * A small, fast, seeded generator (mulberry32): the same seed gives the same choices.
 *
 * @internal
 */
export class Random {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  /** A uniform 32-bit integer. */
  next(): number {
    let t = (this.state = (this.state + 0x6D2B79F5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  /** An integer in `[low, high]`. */
  int(low: number, high: number): number {
    return low + (this.next() % (high - low + 1))
  }
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() / 4294967296 < p
  }
}

/**
 * The trace of a run: every event that happened, at what virtual time, hashed as it goes (FNV-1a
 * over each label, mixed with the time), with the last events kept to print on failure. Two runs
 * with the same seed and inputs have the same hash.
 *
 * @internal
 */
export class Trace {
  private hash = 0x811C9DC5
  // The last events, as (time, label) in a ring: formatted only when asked.
  private readonly times: Array<number>
  private readonly labels: Array<string>
  private next = 0
  count = 0

  constructor(private readonly keep: number) {
    this.times = new Array<number>(keep)
    this.labels = new Array<string>(keep)
  }

  add(now: number, label: string): void {
    this.count++
    let h = Math.imul(this.hash ^ labelHash(label), 0x01000193)
    h = Math.imul(h ^ (now | 0), 0x01000193)
    this.hash = Math.imul(h ^ Math.floor(now / 4294967296), 0x01000193) >>> 0
    if (this.keep > 0) {
      this.times[this.next] = now
      this.labels[this.next] = label
      this.next = (this.next + 1) % this.keep
    }
  }

  /** The hash so far, as 8 hex digits. */
  get digest(): string {
    return this.hash.toString(16).padStart(8, "0")
  }

  /** The last events kept, oldest first, as `TIME LABEL`. */
  get lines(): ReadonlyArray<string> {
    const lines: Array<string> = []
    const n = Math.min(this.count, this.keep)
    for (let i = 0; i < n; i++) {
      const at = (this.next - n + i + this.keep) % this.keep
      lines.push(`${this.times[at]} ${this.labels[at]}`)
    }
    return lines
  }
}

// Labels repeat (a fiber's turn, one direction of a connection): each is hashed once.
const labelHashes = new Map<string, number>()
const labelHash = (label: string): number => {
  let h = labelHashes.get(label)
  if (h !== undefined) return h
  h = 0x811C9DC5
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193)
  h >>>= 0
  if (labelHashes.size < 100_000) labelHashes.set(label, h)
  return h
}

interface Timer {
  readonly at: number
  readonly seq: number
  readonly label: string
  readonly fire: () => void
  cancelled: boolean
}

/** Something that is ready to happen: a network event, or a fiber's turn. */
const noTurn = (): void => {}

interface Ready {
  readonly label: string
  readonly run: () => void
}

/**
 * How the world chooses what happens next among what is ready:
 * - `Random`: each step, uniformly, by the seed;
 * - `PCT` (probabilistic concurrency testing, as in Microsoft's Coyote and AWS's Shuttle): every
 *   source of events (the fiber turns, each direction of a connection, each socket's events)
 *   gets a priority drawn by the seed, and the ready one of highest priority always goes first;
 *   at `depth - 1` steps drawn among the first `steps`, the source about to go is lowered below
 *   every other. A bug that `depth` such orderings decide is found in a run with probability at
 *   least 1 / (n * steps^(depth - 1)), for n sources: a bound random choice does not give.
 *
 * @internal
 */
export type Strategy =
  | { readonly _tag: "Random" }
  | { readonly _tag: "PCT"; readonly depth: number; readonly steps: number }

/**
 * The PCT scheduler's state: each source's priority, and the steps where the source about to go
 * is lowered. Sources are named by their event's label; the fiber turns are one source (their
 * order is Effect's own, first in first out).
 */
class Priorities {
  private readonly priority = new Map<string, number>()
  private readonly changes: Map<number, number>

  constructor(private readonly random: Random, readonly depth: number, steps: number) {
    // depth - 1 change points among the first `steps` steps; the i-th lowers to priority i, below
    // every initial priority (which are above depth).
    this.changes = new Map()
    for (let i = 1; i < depth; i++) this.changes.set(random.int(1, Math.max(1, steps)), i)
  }

  of(source: string): number {
    let p = this.priority.get(source)
    if (p === undefined) {
      // A source seen for the first time takes a random place among the others.
      p = this.depth + 1 + this.random.next() / 4294967296
      this.priority.set(source, p)
    }
    return p
  }

  /** At a change point, `source` (about to go) is lowered; returns whether it was. */
  lowerAt(step: number, source: string): boolean {
    const to = this.changes.get(step)
    if (to === undefined) return false
    this.changes.delete(step)
    this.priority.set(source, to)
    return true
  }
}

/**
 * Where a run stopped: its goal reached, nothing left that could happen (a deadlock, if the goal
 * was not reached), or the step budget spent (a livelock).
 *
 * @internal
 */
export type Stop = "done" | "quiet" | "budget"

/**
 * The world. Everything that happens is posted to it (`post` for what is ready now, `schedule`
 * for what happens later in virtual time, `scheduler` for fiber turns); `run` then plays it, one
 * thing at a time, each chosen by the seed among everything ready.
 *
 * Fiber turns run in the order they were scheduled, as Effect's own scheduler runs them: the
 * seed chooses between the next fiber turn and each ready network event, never among fiber turns.
 * Effect's runtime relies on that order. A world that picked among fiber turns at random
 * deadlocked `Effect.forEach` with `concurrency: "unbounded"`: when the parent's interruption ran
 * before the start of the fiber that forks the children, that fiber waited forever for children it
 * would never fork (found by the shutdown property, shrunk to `Open, HalfClose(0), Flood(1)`).
 * On Node, likewise, the interleavings come from when I/O arrives, not from fibers overtaking one
 * another.
 *
 * @internal
 */
export class World {
  readonly random: Random
  readonly trace: Trace
  /** Virtual milliseconds since the world began. */
  now = 0
  private readonly ready: Array<Ready> = []
  /** Fiber turns, first in first out (from `turnsHead` on). */
  private readonly turns: Array<() => void> = []
  private turnsHead = 0
  private readonly timers: Array<Timer> = []
  private seq = 0
  steps = 0
  private readonly priorities: Priorities | undefined

  constructor(seed: number, keepTrace = 200, strategy: Strategy = { _tag: "Random" }) {
    this.random = new Random(seed)
    this.trace = new Trace(keepTrace)
    this.priorities = strategy._tag === "PCT"
      ? new Priorities(this.random, Math.max(1, strategy.depth), strategy.steps)
      : undefined
  }

  /** Something that is ready to happen now (in an order the seed chooses among the rest). */
  post(label: string, run: () => void): void {
    this.ready.push({ label, run })
  }

  /** Something that happens `millis` from now; returns its cancel. */
  schedule(millis: number, label: string, fire: () => void): () => void {
    const timer: Timer = {
      at: this.now + Math.max(0, millis),
      seq: this.seq++,
      label: `timer ${label}`,
      fire,
      cancelled: false
    }
    // Kept sorted by time, then by when it was scheduled: equal times fire in that order.
    let i = this.timers.length
    while (i > 0 && (this.timers[i - 1]!.at > timer.at)) i--
    this.timers.splice(i, 0, timer)
    return () => {
      timer.cancelled = true
    }
  }

  /**
   * Plays one thing: one of the ready ones, chosen by the seed; or, when none is ready, the next
   * timer, with the clock moved to its time. Returns false when nothing is left.
   */
  step(): boolean {
    const events = this.ready.length
    const turn = this.turnsHead < this.turns.length ? 1 : 0
    const n = events + turn
    if (n > 0) {
      const i = n === 1 ? 0 : this.priorities === undefined ? this.random.next() % n : this.highest(events, turn)
      if (i === events) {
        const run = this.turns[this.turnsHead]!
        this.turns[this.turnsHead++] = noTurn
        // Emptied, or a long run of turns consumed: drop what is behind the head.
        if (this.turnsHead === this.turns.length || this.turnsHead >= 4096) {
          this.turns.splice(0, this.turnsHead)
          this.turnsHead = 0
        }
        this.steps++
        this.trace.add(this.now, "fiber")
        run()
        return true
      }
      const chosen = this.ready[i]!
      // Swap-remove: order among the ready ones is the seed's choice anyway.
      this.ready[i] = this.ready[events - 1]!
      this.ready.pop()
      this.steps++
      this.trace.add(this.now, chosen.label)
      chosen.run()
      return true
    }
    while (this.timers.length > 0) {
      const timer = this.timers.shift()!
      if (timer.cancelled) continue
      this.now = timer.at
      this.steps++
      this.trace.add(this.now, timer.label)
      timer.fire()
      return true
    }
    return false
  }

  /** PCT: the index of the ready thing whose source has the highest priority (`events` for the fiber turn). */
  private highest(events: number, turn: number): number {
    const priorities = this.priorities!
    const pick = () => {
      let best = -1
      let bestPriority = Number.NEGATIVE_INFINITY
      for (let i = 0; i < events; i++) {
        const p = priorities.of(this.ready[i]!.label)
        if (p > bestPriority) {
          best = i
          bestPriority = p
        }
      }
      if (turn > 0 && priorities.of("fiber") > bestPriority) best = events
      return best
    }
    const chosen = pick()
    // A change point: what was about to go is lowered, and the highest of the rest goes instead.
    return priorities.lowerAt(this.steps + 1, chosen === events ? "fiber" : this.ready[chosen]!.label) ? pick() : chosen
  }

  /** Plays until `goal` holds, nothing is left, or `budget` steps were played. */
  run(goal: () => boolean, budget = 5_000_000): Stop {
    const limit = this.steps + budget
    while (!goal()) {
      if (this.steps >= limit) return "budget"
      if (!this.step()) return goal() ? "done" : "quiet"
    }
    return "done"
  }

  /** Timers still to fire. */
  get timersPending(): number {
    let n = 0
    for (const timer of this.timers) if (!timer.cancelled) n++
    return n
  }

  /** Whether anything could still happen. */
  get idle(): boolean {
    return this.ready.length === 0 && this.turnsHead === this.turns.length && this.timers.every((t) => t.cancelled)
  }

  /** Plays every fiber turn queued now, in order (what a dispatcher's flush asks for). */
  private flushTurns(): void {
    while (this.turnsHead < this.turns.length) {
      const run = this.turns[this.turnsHead]!
      this.turns[this.turnsHead++] = noTurn
      this.steps++
      this.trace.add(this.now, "fiber")
      run()
    }
    this.turns.length = 0
    this.turnsHead = 0
  }

  /** Effect's scheduler for fibers of this world: every fiber turn is a ready thing of the world. */
  readonly scheduler: Line.WorldScheduler = Line.makeScheduler({
    push: (task) => {
      this.turns.push(task)
    },
    flush: () => this.flushTurns()
  })

  /** Effect's clock on the world's virtual time: a sleep is a timer of the world. */
  readonly clock: Line.WorldClock = Line.makeClock({
    now: () => this.now,
    schedule: (millis, label, fire) => this.schedule(millis, label, fire)
  })
}
