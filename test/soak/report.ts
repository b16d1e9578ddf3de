/**
 * The run's record as the one JSON line the soak prints, and the verdict on the run: it fails on
 * any peer failure (undetected loss, corruption, hang, unexpected error), any server failure (an
 * exit status, a shutdown past its bound, an orphan worker, a start that failed, an exit of its
 * own), any leak, or a run cut short.
 */
import type * as Run from "./run.js"
import { limits } from "./run.js"
import * as Verdict from "./verdict.js"

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10

const summary = (values: ReadonlyArray<number>) => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return {
    samples: values.length,
    first: mib(values[0]!),
    min: mib(sorted[0]!),
    median: mib(sorted[Math.floor(sorted.length / 2)]!),
    max: mib(sorted[sorted.length - 1]!),
    last: mib(values[values.length - 1]!)
  }
}

const fromMap = <K extends string>(map: ReadonlyMap<K, number>): Record<string, number> =>
  Object.fromEntries([...map.entries()].sort(([a], [b]) => a.localeCompare(b)))

/** The JSON line's object, and whether the run passed. */
export const make = (record: Run.Record_): { readonly ok: boolean; readonly line: Record<string, unknown> } => {
  const leaks = record.baseline === undefined ? [] : Verdict.leaks(record.atRest, record.baseline, limits.margins)
  const ok = record.peerFailureCount === 0 && record.serverFailureCount === 0 && leaks.length === 0 &&
    record.aborted === undefined
  const atRestByRole = (role: Run.Role) => record.atRest.filter((s) => s.role === role)
  // The processes that served the calm end of the run: RSS at each time at rest, in MiB.
  const lastPids = [...new Set(record.atRest.slice(-3).map((s) => s.pid))]
  const line = {
    ok,
    seed: record.options.seed,
    minutes: record.options.minutes,
    peersInFlight: record.options.peers,
    chaosEvents: record.options.chaos,
    seconds: Math.round(record.seconds),
    date: new Date(record.began).toISOString(),
    node: process.version,
    load: {
      start: record.loadStart.map((l) => Number(l.toFixed(2))),
      end: record.loadEnd.map((l) => Number(l.toFixed(2)))
    },
    command: record.command,
    phases: record.phases,
    peers: {
      total: record.peers,
      outcomes: fromMap(record.outcomes),
      byKind: Object.fromEntries([...record.byKind.entries()].map(([kind, map]) => [kind, fromMap(map)])),
      acceptedMalformedHeaders: fromMap(record.accepted)
    },
    bytes: record.bytes,
    server: {
      starts: record.server.starts,
      restarts: Math.max(0, record.server.starts - 1),
      withIdleTimeout: record.server.idleTimeoutStarts,
      withProxyProtocol: record.server.proxyProtocolStarts,
      exits: fromMap(record.server.exits)
    },
    chaos: record.chaos,
    fds: {
      baseline: record.baseline,
      max: { primary: record.samples.primary.maxFds, worker: record.samples.worker.maxFds },
      atRestMax: {
        primary: Math.max(0, ...atRestByRole("primary").map((s) => s.fds)),
        worker: Math.max(0, ...atRestByRole("worker").map((s) => s.fds))
      }
    },
    rssMiB: {
      primary: summary(record.samples.primary.rss),
      worker: summary(record.samples.worker.rss),
      atRestOfLastProcesses: Object.fromEntries(
        lastPids.map((pid) => {
          const samples = record.atRest.filter((s) => s.pid === pid)
          return [`${samples[0]!.role} ${pid}`, samples.map((s) => mib(s.rssBytes))]
        })
      )
    },
    timesAtRest: record.atRest.length === 0 ? 0 : new Set(record.atRest.map((s) => s.at)).size,
    leaks,
    failures: {
      peers: record.peerFailureCount,
      peersByCause: fromMap(record.peerFailuresByCause),
      // Not failures: the kernel closes a SIGKILLed worker's connections normally (docs/deploying.md).
      shortAndFinDuringSigkill: record.lostToSigkill,
      server: record.serverFailureCount,
      ...(record.aborted === undefined ? {} : { aborted: record.aborted }),
      peerExamples: record.peerFailures,
      serverExamples: record.serverFailures
    },
    events: record.events.length,
    logs: record.logs,
    replay:
      `npm run soak -- --minutes ${record.options.minutes} --seed ${record.options.seed} --peers ${record.options.peers}`
  }
  return { ok, line }
}
