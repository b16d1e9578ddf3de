/**
 * What each operation of a scenario does, as an `Effect`, with its postcondition checked right
 * after it: the command contract both runners (loopback and simulation) sequence the same way.
 * A command acts on a {@link Run}: the server under test, its port, the peers opened so far, and
 * the shutdown once begun.
 */
import { Duration, Effect, Option, Schedule } from "effect"
import type { Conversation, Model, Operation, Peer, Protocol } from "../../TestKit.js"
import type { ShutdownViolation, ViolationReason } from "./verdict.js"
import * as Verdict from "./verdict.js"

/**
 * The durations a run is judged by, in milliseconds.
 *
 * @internal
 */
export interface Timing {
  readonly shutdownTimeout: number
  readonly cleanupTimeout: number
  readonly drainDelay: number
  /** How long any wait may take before it is a hang. */
  readonly margin: number
  /** How late past the deadline (drain delay, shutdown and cleanup timeouts) anything may end. */
  readonly deadlineMargin: number
}

/** @internal */
export const deadline = (timing: Timing): number => timing.drainDelay + timing.shutdownTimeout + timing.cleanupTimeout

/**
 * A peer of the run: its socket, the protocol's model of its conversation, and when the run last
 * made it read (an end it finds then happened while it was not reading).
 *
 * @internal
 */
export interface RunPeer {
  readonly index: number
  readonly peer: Peer
  readonly conversation: Conversation | undefined
  reading: boolean
  resumedAt: number
}

/**
 * The real side of a run.
 *
 * @internal
 */
export interface Run {
  readonly peers: Array<RunPeer>
  readonly protocol: Protocol | undefined
  readonly timing: Timing
  readonly now: () => number
  /**
   * Connects a peer that reads, and returns once the server's listener has accepted it (or its
   * connection ended): a shutdown right after a connect would otherwise find the handshake still
   * in the kernel's accept queue, where closing the listener resets it. `refused`: the server
   * cannot accept it (its descriptors ran out); returns once connected.
   */
  readonly open: (refused: boolean) => Effect.Effect<RunPeer, ShutdownViolation>
  /** Peers of a `Flood`: connecting, or connected and silent, until the run ends. */
  readonly crowd: (peers: number) => Effect.Effect<void>
  /** Runs the server's descriptors out, or gives them back (a simulation's fault). */
  readonly exhaust: (exhausted: boolean) => Effect.Effect<void, ShutdownViolation>
  /** Fails unless the server's port is free (bound by nothing). */
  readonly portFree: Effect.Effect<void, Error>
  readonly beginShutdown: Effect.Effect<void>
  /** The fiber that holds the server dies of a defect: its scope closes with it, which begins the shutdown. */
  readonly serverDefect: Effect.Effect<void>
  /**
   * The process's way out at once (a second signal, SIGQUIT, an exception no one catches): every
   * connection of the server whose answer is not whole reset now; then the shutdown, if it had
   * not begun, in place of the process's end.
   */
  readonly forceShutdown: Effect.Effect<void>
  /** Waits for the shutdown to return (beginning it if need be), and checks it did in time. */
  readonly awaitShutdown: Effect.Effect<void, ShutdownViolation>
  /** When shutdown began (the transport's clock), once it has. */
  readonly shutdownStartedAt: () => number | undefined
  /** When the server was forced to stop (the transport's clock), once it was. */
  readonly forcedAt: () => number | undefined
  /** What the run knows of the handler that served `peer`, to add to a violation about it. */
  readonly explain: (peer: RunPeer) => string
}

/**
 * Plays `op` (which applies in the model as it was before it: `phase`) on `run`; `target` is the
 * peer it names, if any. Postconditions, checked at once:
 * - `Send`: what the peer received so far is the start of an answer the protocol allows;
 * - `HalfClose` of a peer that reads, and `Exchange`, with a protocol: its complete answer
 *   arrives, then a FIN (the key invariant), or, once the deadline passed, a reset;
 * - `Shutdown`, `ServerDefect`: the port refuses connections by the drain delay plus the shutdown
 *   deadline;
 * - `Wait` that crosses the deadline: the shutdown has returned, and every connection has ended
 *   as the protocol allows (see {@link expectAllEnded}).
 *
 * @internal
 */
export const act = (
  op: Operation,
  phase: Model["phase"],
  target: RunPeer | undefined,
  model: Model,
  run: Run
): Effect.Effect<void, ShutdownViolation> =>
  Effect.gen(function*() {
    switch (op._tag) {
      case "Open": {
        if (phase !== "serving") {
          // The Shutdown step checked that the port refuses connections: one that connects now
          // reached another listener that took the port since (another test's), not this server.
          return
        }
        yield* run.open(model.peers[model.peers.length - 1]!.refused)
        return
      }
      case "Exchange": {
        const opened = yield* run.open(model.peers[model.peers.length - 1]!.refused)
        yield* send(opened, op.data)
        yield* opened.peer.halfClose
        if (run.protocol === undefined) return
        return yield* awaitEnd(opened, model, run, "a peer that half-closed never saw its answer end")
      }
      case "Send":
        yield* send(target!, op.data)
        return yield* expectConsistent(target!, model, run)
      case "HalfClose": {
        yield* target!.peer.halfClose
        if (!target!.reading || phase === "stopped" || run.protocol === undefined) return
        return yield* awaitEnd(target!, model, run, "a peer that half-closed never saw its answer end")
      }
      case "Read":
        yield* resume(target!, run)
        return yield* target!.peer.startReading
      case "Stall":
        target!.reading = false
        return yield* target!.peer.stopReading
      case "Reset":
        return yield* target!.peer.reset
      case "Close":
        return yield* target!.peer.close
      case "Flood":
        return yield* run.crowd(op.peers)
      case "Descriptors":
        return yield* run.exhaust(op.exhausted)
      case "ForceShutdown":
        // Every end after it is judged as after a forced stop (see `judge`).
        return yield* run.forceShutdown
      case "Shutdown":
      case "ServerDefect": {
        yield* op._tag === "Shutdown" ? run.beginShutdown : run.serverDefect
        // The listener is the first thing shutdown closes, after the drain delay.
        const { drainDelay, shutdownTimeout } = run.timing
        return yield* timed(
          Effect.retry(run.portFree, Schedule.spaced("5 millis")).pipe(
            Effect.mapError((error) => Verdict.violation("PortOpen", error.message))
          ),
          drainDelay + shutdownTimeout,
          "PortOpen",
          "the port still accepted connections at the shutdown deadline"
        )
      }
      case "Wait":
        yield* Effect.sleep(op.millis)
        if (phase !== "draining" || model.phase !== "stopped") return
        yield* run.awaitShutdown
        yield* expectAllEnded(model, run)
        return
    }
  })

/** Sends `data` and feeds it to the peer's conversation, unless the peer can no longer send. */
const send = (target: RunPeer, data: Uint8Array) =>
  Effect.suspend(() => {
    const socket = target.peer.socket
    if (socket.destroyed || socket.writableEnded) return Effect.void
    target.conversation?.feed(data)
    return target.peer.send(data)
  })

/** Makes a stalled peer read again, noting when: an end found now may have come while it did not read. */
const resume = (target: RunPeer, run: Run) =>
  Effect.sync(() => {
    if (target.reading) return
    target.reading = true
    target.resumedAt = run.now()
  })

/**
 * Fails with `reason` and `message` unless `effect` completes within `millis`.
 *
 * @internal
 */
export const timed = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  millis: number,
  reason: ViolationReason,
  message: string
): Effect.Effect<A, E | ShutdownViolation, R> =>
  Effect.flatMap(
    Effect.timeoutOption(effect, Duration.millis(millis)),
    Option.match({ onNone: () => Effect.fail(Verdict.violation(reason, message)), onSome: Effect.succeed })
  )

const intoShutdown = (run: Run, at: number | undefined) => {
  const started = run.shutdownStartedAt()
  return started === undefined || at === undefined || at < started ? undefined : at - started
}

/** Whether an end seen `at` came at or after a forced stop. */
const afterForce = (run: Run, at: number | undefined) => {
  const forced = run.forcedAt()
  return forced !== undefined && at !== undefined && at >= forced
}

const factsOf = (target: RunPeer, model: Model, run: Run, at: number | undefined): Verdict.Facts => {
  const state = model.peers[target.index]!
  return {
    halfClosed: state.halfClosed !== "no",
    leftItself: state.reset,
    refused: state.refused,
    intoShutdown: intoShutdown(run, at),
    forced: afterForce(run, at)
  }
}

const withPeer = (target: RunPeer, run: Run, found: ShutdownViolation): ShutdownViolation =>
  Verdict.violation(found.reason, `${found.detail} (peer ${target.index}${run.explain(target)})`)

/** What the peer received so far is the start of an answer the protocol allows. */
const expectConsistent = (target: RunPeer, model: Model, run: Run) =>
  Effect.suspend(() => {
    if (run.protocol === undefined || target.conversation === undefined) return Effect.void
    const answer = Verdict.answerOf(run.protocol, target.conversation)
    const wrong = Verdict.inconsistency(
      answer,
      target.peer.received(),
      factsOf(target, model, run, run.shutdownStartedAt() === undefined ? undefined : run.now())
    )
    return wrong === undefined
      ? Effect.void
      : Effect.fail(withPeer(target, run, Verdict.violation("NotAnAnswer", `after a send: ${wrong}`)))
  })

/** Reads until the peer's connection ends (within the margin), then judges the end. */
const awaitEnd = (target: RunPeer, model: Model, run: Run, never: string) =>
  Effect.flatMap(
    timed(target.peer.readToEnd, run.timing.margin, "Hang", never),
    (how) => judge(target, how, model, run)
  )

/**
 * When a connection's end was seen, as the deadline check needs it: when the shutdown began, when
 * the server was forced to stop (if it was), and when the peer last started to read again.
 *
 * @internal
 */
export interface EndTimes {
  readonly endedAt: number
  readonly startedAt: number
  readonly forcedAt: number | undefined
  readonly resumedAt: number
}

/**
 * Whether an end came too late, as a `Late` violation (`undefined` when in time). An end seen
 * after a forced stop, which waits for nothing, is due at once: by the forced stop plus the
 * margin. Any other is due by the deadline after the shutdown began plus the margin. Either way,
 * a peer that was not reading sees its end only once it reads again: not before `resumedAt`.
 *
 * @internal
 */
export const lateness = (times: EndTimes, timing: Timing): ShutdownViolation | undefined => {
  const { endedAt, forcedAt, resumedAt, startedAt } = times
  const { deadlineMargin } = timing
  if (forcedAt !== undefined && endedAt >= forcedAt) {
    return endedAt > Math.max(forcedAt, resumedAt) + deadlineMargin
      ? Verdict.violation(
        "Late",
        `a connection ended ${Math.round(endedAt - forcedAt)} ms after a forced stop, which resets every ` +
          `connection at once (plus ${deadlineMargin} ms)`
      )
      : undefined
  }
  return endedAt > Math.max(startedAt + deadline(timing), resumedAt) + deadlineMargin
    ? Verdict.violation(
      "Late",
      `a connection ended ${Math.round(endedAt - startedAt)} ms into shutdown, past its deadline of ${
        deadline(timing)
      } ms plus ${deadlineMargin} ms`
    )
    : undefined
}

/**
 * The verdict on one peer's end (see `Verdict.judgeEnd`), and that it came in time (see
 * {@link lateness}); a peer that left by itself, or an end before the shutdown, is not timed.
 */
const judge = (target: RunPeer, how: "eof" | "reset" | "closed", model: Model, run: Run) =>
  Effect.suspend(() => {
    const endedAt = target.peer.endedAt()
    const answer = run.protocol === undefined || target.conversation === undefined
      ? undefined
      : Verdict.answerOf(run.protocol, target.conversation)
    const found = Verdict.judgeEnd(
      answer,
      target.peer.received(),
      how,
      factsOf(target, model, run, endedAt),
      run.timing.drainDelay + run.timing.shutdownTimeout
    )
    if (found !== undefined) return Effect.fail(withPeer(target, run, found))
    const startedAt = run.shutdownStartedAt()
    // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (an undefined time compares as false in lateness)
    if (startedAt === undefined || endedAt === undefined) return Effect.void
    // A peer that left by itself ended when it did so.
    if (model.peers[target.index]!.reset) return Effect.void
    const late = lateness(
      { endedAt, startedAt, forcedAt: run.forcedAt(), resumedAt: target.resumedAt },
      run.timing
    )
    return late === undefined ? Effect.void : Effect.fail(withPeer(target, run, late))
  })

/**
 * Every peer's connection ends (a stalled peer reads again to see it), each as the protocol
 * allows and in time. Returns how each ended.
 *
 * @internal
 */
export const expectAllEnded = (
  model: Model,
  run: Run
): Effect.Effect<ReadonlyArray<"eof" | "reset" | "closed">, ShutdownViolation> =>
  Effect.gen(function*() {
    for (const target of run.peers) yield* resume(target, run)
    const endings = yield* timed(
      Effect.forEach(run.peers, (target) => target.peer.readToEnd, { concurrency: "unbounded" }),
      run.timing.margin,
      "Hang",
      "a peer never saw its connection end"
    )
    for (const target of run.peers) yield* judge(target, endings[target.index]!, model, run)
    return endings
  })
