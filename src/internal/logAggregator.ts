/**
 * Log records that can come by the thousand (a dropped connection, a reset, a timeout) summed up
 * instead of written one by one: under a flood, one record per connection is what the server
 * would spend its time on. The first event of a kind is logged at once, as it is; the next ones
 * of that kind within the window are counted, and at the end of the window one record says how
 * many there were and names a few peers. A kind that stays quiet for a whole window is logged at
 * once again. The timer never keeps the process alive; `flush` (at scope close) writes what is
 * still counted.
 */
import { Effect } from "effect"
import type { Level } from "./level.js"
import * as Log from "./log.js"

/** How long a window lasts, by default. @internal */
export const defaultWindowMillis = 1000

/** How many peers a summary names, by default. @internal */
export const defaultNamed = 5

/** @internal */
export interface Options {
  /** Runs a log record, annotated with `peer` when there is one. */
  readonly emit: (record: Effect.Effect<void>, peer: string | undefined) => void
  readonly windowMillis?: number
  readonly named?: number
  /** Arms a timer; returns its canceller. Default `setTimeout`, unref'd. */
  readonly schedule?: (f: () => void, millis: number) => () => void
}

interface Kind {
  readonly level: Level
  readonly label: string
  count: number
  readonly peers: Array<string>
}

const unrefTimeout = (f: () => void, millis: number): () => void => {
  const timer = setTimeout(f, millis)
  timer.unref()
  return () => clearTimeout(timer)
}

/** @internal */
export class LogAggregator {
  private readonly kinds = new Map<string, Kind>()
  private cancel: (() => void) | undefined = undefined
  private readonly windowMillis: number
  private readonly named: number
  private readonly schedule: (f: () => void, millis: number) => () => void

  constructor(private readonly options: Options) {
    this.windowMillis = options.windowMillis ?? defaultWindowMillis
    this.named = options.named ?? defaultNamed
    this.schedule = options.schedule ?? unrefTimeout
  }

  /**
   * One event of kind `key`: `record` is logged now if this kind was quiet, else counted (with
   * `peer` among the few named). `label` names the kind in the summary ("dropped connections").
   */
  add(key: string, peer: string, level: Level, label: string, record: () => Effect.Effect<void>): void {
    const kind = this.kinds.get(key)
    if (kind !== undefined) {
      kind.count++
      if (kind.peers.length < this.named) kind.peers.push(peer)
      return
    }
    this.kinds.set(key, { level, label, count: 0, peers: [] })
    this.options.emit(record(), peer)
    if (this.cancel === undefined) this.cancel = this.schedule(() => this.tick(), this.windowMillis)
  }

  /** Writes every summary still counted and forgets every kind. Idempotent. */
  flush(): void {
    this.cancel?.()
    this.cancel = undefined
    for (const kind of this.kinds.values()) this.summarize(kind)
    this.kinds.clear()
  }

  // The end of a window: a summary for each kind that had more events; the quiet ones are forgotten.
  private tick(): void {
    this.cancel = undefined
    for (const [key, kind] of this.kinds) {
      if (kind.count === 0) {
        this.kinds.delete(key)
        continue
      }
      this.summarize(kind)
      kind.count = 0
      kind.peers.length = 0
    }
    if (this.kinds.size > 0) this.cancel = this.schedule(() => this.tick(), this.windowMillis)
  }

  private summarize(kind: Kind): void {
    if (kind.count === 0) return
    this.options.emit(summary(kind, this.windowMillis), undefined)
  }
}

const summary = (kind: Kind, windowMillis: number): Effect.Effect<void> => {
  const others = kind.count - kind.peers.length
  const named = kind.peers.join(", ") + (others > 0 ? `, and ${others} more` : "")
  const window = windowMillis % 1000 === 0 ? `${windowMillis / 1000}s` : `${windowMillis}ms`
  return Log.logAt(kind.level, `${kind.label}: ${kind.count} more within ${window}, from ${named}`).pipe(
    Effect.annotateLogs({ count: kind.count, peers: kind.peers.join(" ") })
  )
}
