/**
 * One soak run: phases of load, each ended by a time at rest where every server process is
 * measured; chaos (worker kills, SIGTERM, SIGTERM twice) at random moments in the phases that
 * have it; a server restarted after each stop. The run's record is a plain object filled as it
 * goes; report.ts turns it into the JSON line.
 */
import { Deferred, Duration, Effect, Exit, FiberSet } from "effect"
import type { Scope } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import type { Chaos, Options } from "./args.js"
import * as Peers from "./peers.js"
import * as Random from "./random.js"
import * as Server from "./server.js"
import * as Verdict from "./verdict.js"

/** Every bound of the run, in one place. */
export const limits = {
  /** A phase's length is an eighth of the run, within these. */
  minPhaseSeconds: 20,
  maxPhaseSeconds: 60,
  /** Metrics peers at once: the metrics port serves 16 connections, and probes need some. */
  httpInFlight: 4,
  /** The server's own deadline for open connections after SIGTERM. */
  shutdownTimeoutSeconds: 3,
  /** The idle timeout given to about half the starts. */
  idleTimeoutSeconds: 5,
  /** A start prints both addresses within this (a loaded machine starts Node slowly). */
  startWithin: Duration.seconds(60),
  startAttempts: 3,
  /**
   * The primary exits within this after SIGTERM: its own deadline is the shutdown timeout, the
   * cleanup timeout (1 s) and its margin for workers (2 s); the rest is for a loaded machine.
   */
  exitWithin: Duration.seconds(30),
  /** Its workers are gone within this after it. */
  orphansWithin: Duration.seconds(10),
  /** Between chaos events. */
  chaosGapMs: [5_000, 20_000] as const,
  /** The second SIGTERM follows the first within this. */
  secondSignalMs: [0, 1_500] as const,
  /** How often a chaos event comes after a burst of stalled peers (Peers.burstPlan). */
  burstChance: 0.5,
  /** The burst's peers stall this long before the event, and this long after it. */
  burstLeadMs: 1_500,
  burstAfterMs: 1_000,
  /** Worker kills per server and minute: the primary gives up past 5 restarts a minute. */
  killsPerMinute: 3,
  /** At rest: both workers back, and no connection held, within these. */
  workersBackWithin: Duration.seconds(30),
  quietWithin: Duration.seconds(15),
  /** Server processes are sampled this often. */
  sampleEvery: Duration.seconds(1),
  margins: { fds: 4, rssBytes: 32 * 2 ** 20, rssFraction: 0.25 } satisfies Verdict.Margins,
  examples: 12
} as const

export type Role = "primary" | "worker"

/** A failure that is not a peer's: a server's exit status, a hang on the way down, an orphan. */
export interface ServerFailure {
  readonly what: string
  readonly at: number
  readonly detail: string
  readonly tail?: ReadonlyArray<string>
}

/** A peer that failed, with what the server went through meanwhile. */
export interface PeerFailure {
  /** `peer:N`, or `burst:N:J`: its random stream, from which `--seed` draws the same plan. */
  readonly peer: string
  readonly kind: Peers.Kind
  readonly outcome: Verdict.Outcome
  readonly server: number
  readonly serverFlags: Server.Flags
  readonly startedAt: number
  readonly seen: Peers.Seen
  readonly plan: Record<string, unknown>
  readonly during: ReadonlyArray<string>
}

/** What a run records. Times are seconds since the run began. */
export interface Record_ {
  readonly options: Options
  readonly began: number
  readonly loadStart: ReadonlyArray<number>
  loadEnd: ReadonlyArray<number>
  seconds: number
  command: string
  phases: { count: number; seconds: number; chaos: number; proxyProtocol: number }
  peers: number
  readonly outcomes: Map<Verdict.Outcome, number>
  readonly byKind: Map<Peers.Kind, Map<Verdict.Outcome, number>>
  /** Malformed PROXY headers a `--proxy-protocol` server served, by name: reported, not failed. */
  readonly accepted: Map<string, number>
  readonly bytes: { sent: number; echoed: number }
  readonly server: {
    starts: number
    exits: Map<string, number>
    idleTimeoutStarts: number
    proxyProtocolStarts: number
  }
  readonly chaos: { workerKills: number; sigterm: number; secondSigterm: number; modeChanges: number; bursts: number }
  readonly events: Array<{ readonly at: number; readonly what: string; readonly chaos?: Chaos }>
  baseline: { primary: number; worker: number } | undefined
  readonly samples: Record<Role, { maxFds: number; rss: Array<number>; count: number }>
  readonly atRest: Array<Verdict.AtRest>
  readonly peerFailures: Array<PeerFailure>
  peerFailureCount: number
  /**
   * Short answers then a FIN while a worker was SIGKILLed: the kernel's limit, not the server's
   * (nothing runs in a process killed so; what Node still buffered is lost and the kernel closes
   * normally). Counted and reported, not failures: the soak cannot tell them from the server's.
   */
  lostToSigkill: number
  /** Peer failures by outcome and the chaos during the peer's life (the worst of them). */
  readonly peerFailuresByCause: Map<string, number>
  readonly serverFailures: Array<ServerFailure>
  serverFailureCount: number
  /** The run ended early: a server could not be started again. */
  aborted: string | undefined
  readonly logs: string
}

const now = (record: Record_) => Number(((Date.now() - record.began) / 1000).toFixed(1))

const bump = <K>(map: Map<K, number>, key: K, by = 1) => map.set(key, (map.get(key) ?? 0) + by)

/** Runs the soak; the record is filled even when a server cannot be started (then `aborted`). */
export const run = (
  options: Options,
  bin: string,
  logs: string
): Effect.Effect<Record_, Server.StartError, Scope.Scope> =>
  Effect.gen(function*() {
    const record: Record_ = {
      options,
      began: Date.now(),
      loadStart: os.loadavg(),
      loadEnd: [],
      seconds: 0,
      command: "",
      phases: { count: 0, seconds: 0, chaos: 0, proxyProtocol: 0 },
      peers: 0,
      outcomes: new Map(),
      byKind: new Map(),
      accepted: new Map(),
      bytes: { sent: 0, echoed: 0 },
      server: { starts: 0, exits: new Map(), idleTimeoutStarts: 0, proxyProtocolStarts: 0 },
      chaos: { workerKills: 0, sigterm: 0, secondSigterm: 0, modeChanges: 0, bursts: 0 },
      events: [],
      baseline: undefined,
      samples: { primary: { maxFds: 0, rss: [], count: 0 }, worker: { maxFds: 0, rss: [], count: 0 } },
      atRest: [],
      peerFailures: [],
      peerFailureCount: 0,
      lostToSigkill: 0,
      peerFailuresByCause: new Map(),
      serverFailures: [],
      serverFailureCount: 0,
      aborted: undefined,
      logs
    }
    const event = (what: string, chaos?: Chaos) =>
      record.events.push({ at: now(record), what, ...(chaos === undefined ? {} : { chaos }) })
    const serverFailure = (what: string, detail: string, tail?: ReadonlyArray<string>) => {
      record.serverFailureCount++
      event(`FAILURE ${what}: ${detail}`)
      if (record.serverFailures.length < limits.examples) {
        record.serverFailures.push({ what, at: now(record), detail, ...(tail === undefined ? {} : { tail }) })
      }
    }

    const totalSeconds = options.minutes * 60
    const phaseSeconds = Math.min(limits.maxPhaseSeconds, Math.max(limits.minPhaseSeconds, totalSeconds / 8))
    const phaseCount = Math.max(1, Math.round(totalSeconds / phaseSeconds))
    // The last quarter is calm: the processes that serve it are measured at rest several times
    // with nothing replacing them, which is what the RSS rule needs.
    const calmFrom = phaseCount === 1 ? 1 : phaseCount - Math.max(1, Math.floor(phaseCount / 4))
    // Every fourth phase with chaos runs with --proxy-protocol, the third one first (the second
    // in a run too short for a third).
    const chaosPhase = (i: number) => i < calmFrom && options.chaos.length > 0
    const proxyPhase = (i: number) => i < calmFrom && calmFrom >= 2 && i % 4 === Math.min(2, calmFrom - 1)
    record.phases = {
      count: phaseCount,
      seconds: phaseSeconds,
      chaos: calmFrom,
      proxyProtocol: Array.from({ length: phaseCount }, (_, i) => i).filter(proxyPhase).length
    }

    // --- The server: one at a time, every change under `control`.
    const control = yield* Effect.makeSemaphore(1)
    let current: Server.Server | undefined
    const kills = new Map<number, Array<number>>()
    let monitor: (server: Server.Server) => Effect.Effect<void, never, Scope.Scope> = () => Effect.void

    const start = (proxyProtocol: boolean): Effect.Effect<Server.Server, Server.StartError, Scope.Scope> =>
      Effect.gen(function*() {
        let lastError: Server.StartError | undefined
        for (let attempt = 1; attempt <= limits.startAttempts; attempt++) {
          const id = record.server.starts + 1
          const random = Random.stream(options.seed, `server:${id}`)
          const flags: Server.Flags = {
            proxyProtocol,
            idleTimeoutSeconds: random.chance(0.5) ? limits.idleTimeoutSeconds : undefined,
            shutdownTimeoutSeconds: limits.shutdownTimeoutSeconds
          }
          record.server.starts++
          const started = yield* Effect.exit(Server.start({
            id,
            bin,
            flags,
            logFile: path.join(logs, `server-${id}.log`),
            within: limits.startWithin
          }))
          if (Exit.isSuccess(started)) {
            const server = started.value
            if (flags.idleTimeoutSeconds !== undefined) record.server.idleTimeoutStarts++
            if (flags.proxyProtocol) record.server.proxyProtocolStarts++
            if (record.command === "") record.command = server.argv.join(" ")
            event(
              `server ${id} (pid ${server.pid}) listening on ${server.port}, metrics ${server.metricsPort}${
                flags.proxyProtocol ? ", --proxy-protocol" : ""
              }${flags.idleTimeoutSeconds === undefined ? "" : `, --idle-timeout ${flags.idleTimeoutSeconds}s`}`
            )
            current = server
            yield* monitor(server)
            return server
          }
          lastError = started.cause._tag === "Fail"
            ? started.cause.error
            : new Server.StartError(String(started.cause), [])
          if (record.server.starts > 1) serverFailure("start", lastError.reason, lastError.tail)
          yield* Effect.sleep("1 second")
        }
        return yield* Effect.fail(lastError!)
      })

    /** Stops `server` (one SIGTERM, or two) and checks how it went. */
    const stop = (server: Server.Server, secondAfterMs: number | undefined, why: string) =>
      Effect.gen(function*() {
        if (current === server) current = undefined
        record.chaos.sigterm++
        event(
          `SIGTERM to server ${server.id} (${why})${
            secondAfterMs === undefined ? "" : `, a second one ${secondAfterMs} ms later`
          }`
        )
        const stopped = yield* Server.stop(server, {
          bin,
          secondAfter: secondAfterMs === undefined ? undefined : Duration.millis(secondAfterMs),
          within: limits.exitWithin,
          orphanBound: limits.orphansWithin
        })
        if (stopped.forced) record.chaos.secondSigterm++
        const status = stopped.exited.signal ?? String(stopped.exited.code)
        bump(record.server.exits, status)
        event(
          `server ${server.id} exited ${status} after ${stopped.seconds.toFixed(1)} s${
            stopped.forced ? " (second SIGTERM sent)" : ""
          }`
        )
        if (stopped.timedOut) {
          serverFailure(
            "shutdown hang",
            `server ${server.id} still running ${Duration.format(limits.exitWithin)} after SIGTERM`,
            server.tail()
          )
        }
        // Graceful: 0. A second SIGTERM during the shutdown: 143 (or 0 if it had just finished).
        const expected = stopped.forced ? ["143", "0"] : ["0"]
        if (!stopped.timedOut && !expected.includes(status)) {
          serverFailure(
            "exit status",
            `server ${server.id} exited ${status}, expected ${expected.join(" or ")}`,
            server.tail()
          )
        }
        if (stopped.orphans.length > 0) {
          serverFailure(
            "orphan workers",
            `workers ${stopped.orphans.join(", ")} of server ${server.id} still running ${
              Duration.format(limits.orphansWithin)
            } after it exited (killed)`
          )
        }
      })

    monitor = (server) =>
      Effect.forkScoped(Effect.gen(function*() {
        const exited = yield* Deferred.await(server.exit)
        if (server.stopping) return
        serverFailure(
          "unexpected exit",
          `server ${server.id} exited ${exited.signal ?? exited.code} with no signal of ours`,
          server.tail()
        )
        bump(record.server.exits, exited.signal ?? String(exited.code))
        yield* control.withPermits(1)(Effect.gen(function*() {
          if (current !== server) return
          current = undefined
          yield* start(server.flags.proxyProtocol).pipe(
            Effect.catchAll((error) => Effect.sync(() => (record.aborted = error.message)))
          )
        }))
      })).pipe(Effect.asVoid)

    // --- Sampling: every process of the current server, every second.
    const roleOf = (server: Server.Server, pid: number): Role => (pid === server.pid ? "primary" : "worker")
    const processes = (server: Server.Server) => [server.pid, ...Server.children(server.pid)]
    yield* Effect.forkScoped(
      Effect.sync(() => {
        const server = current
        if (server === undefined) return
        const connected = Server.connectedInodes()
        for (const pid of processes(server)) {
          const sample = Server.sample(pid, connected)
          if (sample === undefined) continue
          const stats = record.samples[roleOf(server, pid)]
          stats.maxFds = Math.max(stats.maxFds, sample.fds)
          stats.rss.push(sample.rssBytes)
          stats.count++
        }
      }).pipe(Effect.andThen(Effect.sleep(limits.sampleEvery)), Effect.forever)
    )

    /** At rest: both workers back, every connection gone; then each process measured. */
    const rest = control.withPermits(1)(Effect.gen(function*() {
      const server = current
      if (server === undefined) return
      const workersDeadline = Date.now() + Duration.toMillis(limits.workersBackWithin)
      while (Server.children(server.pid).length < 2 && Date.now() < workersDeadline) yield* Effect.sleep("100 millis")
      if (Server.children(server.pid).length < 2) {
        serverFailure(
          "workers not back",
          `server ${server.id} has ${Server.children(server.pid).length} workers at rest`
        )
      }
      const quietDeadline = Date.now() + Duration.toMillis(limits.quietWithin)
      let samples: Array<readonly [number, Server.Sample]> = []
      while (true) {
        const connected = Server.connectedInodes()
        samples = processes(server).flatMap((pid) => {
          const sample = Server.sample(pid, connected)
          return sample === undefined ? [] : [[pid, sample] as const]
        })
        if (samples.every(([, s]) => s.connections === 0) || Date.now() >= quietDeadline) break
        yield* Effect.sleep("100 millis")
      }
      for (const [pid, s] of samples) {
        record.atRest.push({
          pid,
          role: roleOf(server, pid),
          at: now(record),
          fds: s.fds,
          connections: s.connections,
          rssBytes: s.rssBytes
        })
      }
    }))

    // --- Peers.
    const slots = yield* Effect.makeSemaphore(options.peers)
    const httpSlots = yield* Effect.makeSemaphore(limits.httpInFlight)
    const peers = yield* FiberSet.make<void, never>()
    let index = 0

    /** Runs `plan` against `server` and records what the peer saw, under `name` (its stream). */
    const peer = (plan: Peers.Plan, name: string, server: Server.Server) => {
      const startedAt = Date.now()
      const running = plan._tag === "Echo"
        ? Peers.runEcho(plan, server.port, Random.stream(options.seed, `${name}:reads`))
        : Peers.runHttp(plan, server.metricsPort)
      return Effect.map(running, (seen) => {
        record.peers++
        bump(record.outcomes, seen.outcome)
        const byKind = record.byKind.get(plan.kind) ?? new Map<Verdict.Outcome, number>()
        bump(byKind, seen.outcome)
        record.byKind.set(plan.kind, byKind)
        if (plan._tag === "Echo") {
          record.bytes.sent += plan.payload.length
          record.bytes.echoed += seen.received
          if (seen.outcome === "accepted") bump(record.accepted, plan.headerName)
        }
        if (!Verdict.failures.has(seen.outcome)) return
        const from = (startedAt - record.began) / 1000
        const to = from + seen.ms / 1000
        const during = record.events.filter((e) => e.at >= from - 0.1 && e.at <= to + 0.1)
        const chaos = new Set(during.map((e) => e.chaos))
        if (seen.outcome === "short+FIN" && chaos.has("kill")) {
          record.lostToSigkill++
          return
        }
        record.peerFailureCount++
        const cause = chaos.has("kill")
          ? "during a worker's SIGKILL"
          : chaos.has("twice")
          ? "during a forced exit"
          : chaos.has("term")
          ? "during a graceful shutdown"
          : "with no chaos"
        bump(record.peerFailuresByCause, `${seen.outcome} ${cause}`)
        if (record.peerFailures.length >= limits.examples) return
        record.peerFailures.push({
          peer: name,
          kind: plan.kind,
          outcome: seen.outcome,
          server: server.id,
          serverFlags: server.flags,
          startedAt: Number(from.toFixed(1)),
          seen,
          plan: plan._tag === "Echo"
            ? {
              header: plan.headerName,
              payload: plan.payload.length,
              writes: plan.writes.length,
              halfCloseAfterMs: plan.halfCloseAfterMs ?? "never",
              read: plan.read,
              resetAfterMs: plan.resetAfterMs ?? "never",
              boundMs: plan.boundMs
            }
            : { variant: plan.variant, boundMs: plan.boundMs },
          during: during.map((e) => `${e.at} s: ${e.what}`).slice(0, 8)
        })
      })
    }

    /** Keeps `options.peers` peers in flight until `until`. */
    const launch = (until: number) =>
      Effect.gen(function*() {
        while (Date.now() < until && record.aborted === undefined) {
          yield* slots.take(1)
          if (Date.now() >= until) {
            yield* slots.release(1)
            break
          }
          let server = current
          while (server === undefined && Date.now() < until && record.aborted === undefined) {
            yield* Effect.sleep("50 millis")
            server = current
          }
          if (server === undefined) {
            yield* slots.release(1)
            break
          }
          const i = ++index
          const isHttp = Peers.isHttp(Peers.kindOf(options.seed, i))
          if (isHttp) yield* httpSlots.take(1)
          const plan = Peers.plan(options.seed, i, server.flags.proxyProtocol, server.port)
          yield* FiberSet.run(
            peers,
            peer(plan, `peer:${i}`, server).pipe(
              Effect.ensuring(Effect.andThen(slots.release(1), isHttp ? httpSlots.release(1) : Effect.void))
            )
          )
        }
      })

    // --- Chaos.
    const chaosRandom = Random.stream(options.seed, "chaos")
    /** The request bytes every burst shares, made at the first burst. */
    let shared: Buffer | undefined
    /** One burst at a time: its peers and their bytes stay bounded. */
    let burstsInFlight = 0
    const chaos = (until: number) =>
      Effect.gen(function*() {
        while (record.aborted === undefined) {
          const gap = chaosRandom.int(...limits.chaosGapMs)
          if (Date.now() + gap >= until) return
          yield* Effect.sleep(Duration.millis(gap))
          // Drawn whatever is chosen, so that the stream does not depend on what was allowed.
          const drawn = chaosRandom.weighted<Chaos>([["kill", 2], ["term", 1], ["twice", 1]])
          const second = chaosRandom.int(...limits.secondSignalMs)
          const pick = chaosRandom.next()
          const withBurst = chaosRandom.chance(limits.burstChance)
          yield* control.withPermits(1)(Effect.gen(function*() {
            const server = current
            if (server === undefined) return
            const recent = (kills.get(server.id) ?? []).filter((at) => Date.now() - at < 60_000)
            // A kill past the rate (or not asked for) becomes a signal, if one is asked for.
            const allowed = options.chaos.filter((c) => c !== "kill" || recent.length < limits.killsPerMinute)
            const choice = allowed.includes(drawn) ? drawn : allowed.find((c) => c !== "kill")
            if (choice === undefined) return
            if (withBurst && burstsInFlight === 0) {
              const n = ++record.chaos.bursts
              const stallMs = limits.burstLeadMs + (choice === "twice" ? second : 0) + limits.burstAfterMs
              shared ??= Random.bytes(options.seed, "burst", Peers.burst.maxPayload)
              event(`burst ${n}: ${Peers.burst.peers} peers half-close and stall`)
              for (let j = 0; j < Peers.burst.peers; j++) {
                const plan = Peers.burstPlan(
                  options.seed,
                  n,
                  j,
                  shared,
                  server.flags.proxyProtocol,
                  server.port,
                  stallMs
                )
                burstsInFlight++
                yield* FiberSet.run(
                  peers,
                  peer(plan, `burst:${n}:${j}`, server).pipe(Effect.ensuring(Effect.sync(() => burstsInFlight--)))
                )
              }
              yield* Effect.sleep(Duration.millis(limits.burstLeadMs))
            }
            if (choice === "kill") {
              const pid = Server.killWorker(server, (n) => Math.floor(pick * n))
              if (pid === undefined) return
              kills.set(server.id, [...recent, Date.now()])
              record.chaos.workerKills++
              event(`SIGKILL to worker ${pid} of server ${server.id}`, "kill")
              return
            }
            yield* stop(server, choice === "twice" ? second : undefined, "chaos")
            yield* start(server.flags.proxyProtocol)
          }))
        }
      })

    // --- The phases.
    yield* start(proxyPhase(0))
    // The baseline: each role's descriptors before any peer connected.
    {
      const server = current!
      const connected = Server.connectedInodes()
      const primary = Server.sample(server.pid, connected)
      const workers = Server.children(server.pid).map((pid) => Server.sample(pid, connected)).filter((s) =>
        s !== undefined
      )
      record.baseline = {
        primary: primary?.fds ?? 0,
        worker: Math.max(0, ...workers.map((s) => s.fds))
      }
    }
    for (let phase = 0; phase < phaseCount && record.aborted === undefined; phase++) {
      const proxy = proxyPhase(phase)
      yield* control.withPermits(1)(Effect.gen(function*() {
        const server = current
        if (server !== undefined && server.flags.proxyProtocol === proxy) return
        if (server !== undefined) {
          record.chaos.modeChanges++
          yield* stop(server, undefined, proxy ? "to --proxy-protocol" : "from --proxy-protocol")
        }
        yield* start(proxy)
      })).pipe(Effect.catchAll((error) => Effect.sync(() => (record.aborted = error.message))))
      event(
        `phase ${phase + 1} of ${phaseCount}${chaosPhase(phase) ? ", with chaos" : ", calm"}${
          proxy ? ", PROXY protocol" : ""
        }`
      )
      const until = Date.now() + phaseSeconds * 1000
      yield* Effect.all([
        launch(until),
        chaosPhase(phase)
          ? chaos(until).pipe(Effect.catchAll((error) => Effect.sync(() => (record.aborted = error.message))))
          : Effect.void
      ], { concurrency: 2 })
      yield* FiberSet.awaitEmpty(peers)
      yield* rest
    }
    yield* control.withPermits(1)(Effect.gen(function*() {
      if (current !== undefined) yield* stop(current, undefined, "end of the run")
    }))
    record.loadEnd = os.loadavg()
    record.seconds = (Date.now() - record.began) / 1000
    return record
  })
