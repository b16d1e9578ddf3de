/**
 * Metrics of a test's own making whose constructors differ between the lines, on Effect 3: linear
 * histogram buckets (as `#line/metrics` takes them) and a summary. Its twin,
 * test/effect4/lib/prometheus.ts, exports the same names.
 */
import type { Duration } from "effect"
import { Metric, MetricBoundaries } from "effect"

/** `count` buckets from `start`, `width` apart, the last `+Inf`. */
export const linearBoundaries = (options: {
  readonly start: number
  readonly width: number
  readonly count: number
}): MetricBoundaries.MetricBoundaries => MetricBoundaries.linear(options)

/**
 * A summary of numbers. Effect 3 asks for the quantiles' error too: 0.01 here, since Effect 4
 * takes none and the test gives the same options on both lines.
 */
export const summary = (name: string, options: {
  readonly description: string
  readonly maxAge: Duration.DurationInput
  readonly maxSize: number
  readonly quantiles: ReadonlyArray<number>
}) => Metric.summary({ name, ...options, error: 0.01 })
