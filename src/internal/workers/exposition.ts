/**
 * The metrics of the whole service, in the primary: each worker's snapshot asked for over IPC
 * (a worker that does not answer in time is left out, logged and counted), summed series by
 * series with the primary's own, then per worker the connections it serves now and has accepted.
 */
import * as LineMetrics from "#line/metrics"
import { Duration, Effect, Metric, Option } from "effect"
import * as Prometheus from "../../Prometheus.js"
import * as MetricsWire from "../metricsWire.js"
import type { WorkerProcess } from "./process.js"

const scrapesMissed = LineMetrics.counter("echo_worker_scrapes_missed_total", {
  description: "Scrapes a worker did not answer in time (its metrics were left out), by worker",
  incremental: true
})

/** One worker's answer to a scrape. @internal */
export interface Answer {
  readonly id: number
  readonly series: ReadonlyArray<MetricsWire.Series>
}

/**
 * The exposition of the primary's series and the workers' answers: every series summed (a
 * summary stays per worker), then `echo_worker_connections_active{worker}` and
 * `echo_worker_connections_accepted_total{worker}`.
 *
 * @internal
 */
export const format = (primary: ReadonlyArray<MetricsWire.Series>, answers: ReadonlyArray<Answer>): string => {
  const perWorker = answers.flatMap(({ id, series }): Array<MetricsWire.Series> => [
    {
      name: "echo_worker_connections_active",
      description: "Connections being served now, by worker",
      tags: [["worker", String(id)]],
      kind: "gauge",
      value: MetricsWire.valueOf(series, "echo_connections_active")
    },
    {
      name: "echo_worker_connections_accepted_total",
      description: "Connections accepted from the kernel, by worker",
      tags: [["worker", String(id)]],
      kind: "counter",
      incremental: true,
      value: MetricsWire.valueOf(series, "echo_connections_accepted_total")
    }
  ])
  const snapshots = [
    { label: "primary", series: primary },
    ...answers.map(({ id, series }) => ({ label: String(id), series }))
  ]
  return Prometheus.formatSeries([...MetricsWire.sum(snapshots), ...perWorker])
}

/** What `worker` answers within `timeout`; undefined if it cannot be asked, or did not answer (counted). */
const scrape = (worker: WorkerProcess, timeout: Duration.Duration): Effect.Effect<Answer | undefined> =>
  Effect.flatMap(worker.scrape(timeout), (answer) => {
    if (answer === undefined) return Effect.succeed(undefined)
    if (Option.isSome(answer)) return Effect.succeed({ id: worker.id, series: answer.value })
    return Metric.update(LineMetrics.tagged(scrapesMissed, "worker", String(worker.id)), 1).pipe(
      Effect.andThen(Effect.logWarning(
        `metrics: worker ${worker.id} (pid ${worker.pid}) did not answer within ${
          Duration.format(timeout)
        }: left out of this scrape`
      )),
      Effect.as(undefined)
    )
  })

/**
 * The exposition of the service now: the primary's own metrics and those of every worker that
 * answers within `timeout`, all asked at once.
 *
 * @internal
 */
export const gather = (workers: ReadonlyArray<WorkerProcess>, timeout: Duration.Duration): Effect.Effect<string> =>
  Effect.zipWith(
    Effect.forEach(workers, (worker) => scrape(worker, timeout), { concurrency: "unbounded" }),
    LineMetrics.snapshot,
    (answers, primary) => format(primary, answers.filter((answer): answer is Answer => answer !== undefined))
  )
