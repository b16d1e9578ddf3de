/**
 * Metrics of a test's own making whose constructors differ between the lines, on Effect 4: linear
 * histogram buckets (an array, as `#line/metrics` takes them) and a summary. Its twin,
 * test/effect3/lib/prometheus.ts, exports the same names.
 */
import type { Duration } from "effect"
import { Metric } from "effect"

/** `count` buckets from `start`, `width` apart, the last `+Inf`. */
export const linearBoundaries = (options: {
  readonly start: number
  readonly width: number
  readonly count: number
}): ReadonlyArray<number> => Metric.linearBoundaries(options)

/** A summary of numbers (Effect 4 takes no error for its quantiles). */
export const summary = (name: string, options: {
  readonly description: string
  readonly maxAge: Duration.Input
  readonly maxSize: number
  readonly quantiles: ReadonlyArray<number>
}) => Metric.summary(name, options)
