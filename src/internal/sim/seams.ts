/**
 * What each Effect line's clock and scheduler for the simulation (`#line/sim`) need of the world,
 * written once: the two lines differ in the interfaces they implement, not in what they ask.
 */

/** What the clock needs of the world: its virtual time, and timers on it. */
export interface Timeline {
  readonly now: () => number
  /** Calls `fire` `millis` from now, as an event of the world labelled `label`; returns its cancel. */
  readonly schedule: (millis: number, label: string, fire: () => void) => () => void
}

/** What the scheduler needs of the world: a fiber turn queued, first in first out. */
export interface Turns {
  readonly push: (task: () => void) => void
  /** Plays every turn queued now, at once (what an Effect 4 dispatcher's flush asks for). */
  readonly flush: () => void
}
