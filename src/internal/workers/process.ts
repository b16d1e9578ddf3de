/**
 * One worker process as the primary sees it, from fork to exit: its state, what it answers, and
 * the two ways it is told to end (its own graceful shutdown, or a signal). The cluster worker's
 * events drive it; nothing here decides when to restart or stop it.
 */
import { deferredDone, deferredUnsafe, timeoutFail } from "#line/runtime"
import { Data, Deferred, Duration, Effect, Exit, Option } from "effect"
import type * as Listener from "../../Listener.js"
import type * as MetricsWire from "../metricsWire.js"
import * as Protocol from "./protocol.js"

/** How a worker process ended. @internal */
export interface Ended {
  readonly code: number | null
  readonly signal: string | null
}

/** `exited with code 1`, `was killed by SIGKILL`. @internal */
export const describe = (ended: Ended): string =>
  ended.signal !== null ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`

/**
 * Where a worker is in its life. Listening carries its address, since when (on the Effect clock),
 * and whether its server accepts (until a suspend it applied); Exited, how it ended, the words
 * for it (what it reported before it exited, if it did) and since when it had listened, if it had.
 *
 * @internal
 */
export type State = Data.TaggedEnum<{
  Starting: Record<never, never>
  Listening: { readonly address: Listener.Address; readonly since: number; readonly accepting: boolean }
  Stopping: { readonly since: number | undefined }
  Exited: { readonly ended: Ended; readonly detail: string; readonly since: number | undefined }
}>

/** @internal */
export type Exited = Data.TaggedEnum.Value<State, "Exited">

/** @internal */
export const State = Data.taggedEnum<State>()

/**
 * What a process needs of its `node:cluster` worker: the seam that tests fake.
 *
 * @internal
 */
export interface Channel {
  readonly process: { readonly pid?: number | undefined; kill(signal: NodeJS.Signals): boolean }
  send(message: Protocol.ToWorker): boolean
  isConnected(): boolean
  on(event: "message", listener: (message: unknown) => void): unknown
  on(event: "error", listener: (error: Error) => void): unknown
  once(event: "exit", listener: (code: number | null, signal: string | null) => void): unknown
}

/**
 * A worker process. `onChange` is called after every change of state (the primary's gauge of
 * workers listening follows it); `now` reads the Effect clock.
 *
 * @internal
 */
export class WorkerProcess {
  #state: State = State.Starting()
  /** What it reported before it exited, if it could not go on: the words for its end. */
  #reported: string | undefined
  readonly #listening = deferredUnsafe<Listener.Address, string>()
  readonly #exited = deferredUnsafe<Exited>()
  readonly #scrapes = new Protocol.Requests<ReadonlyArray<MetricsWire.Series>>()
  /** The worker's refusal, or undefined once it applied the control (or is gone). */
  readonly #controls = new Protocol.Requests<string | undefined>()

  constructor(
    readonly id: number,
    readonly channel: Channel,
    private readonly now: () => number,
    private readonly onChange: () => void
  ) {
    channel.on("message", (message) => this.#receive(message))
    // A send to a worker that just died: its exit tells the rest.
    channel.on("error", () => {})
    channel.once("exit", (code, signal) => this.#exit({ code, signal }))
  }

  get pid(): number {
    return this.channel.process.pid ?? -1
  }

  get state(): State {
    return this.#state
  }

  /** Whether it listens and its server accepts. */
  get accepting(): boolean {
    return this.#state._tag === "Listening" && this.#state.accepting
  }

  /** Waits for it to exit: how it ended. */
  get exited(): Effect.Effect<Exited> {
    return Deferred.await(this.#exited)
  }

  /** Waits for it to listen at most `timeout` (then kills it): its address, or why it did not. */
  listening(timeout: Duration.Duration): Effect.Effect<Listener.Address, string> {
    return Deferred.await(this.#listening).pipe(
      timeoutFail({
        duration: timeout,
        onTimeout: () => `did not listen within ${Duration.format(timeout)}, and was killed`
      }),
      Effect.tapError(() => Effect.sync(() => this.kill()))
    )
  }

  /** Whether it can be asked anything: it listens, and its channel is open. */
  get reachable(): boolean {
    return this.#state._tag === "Listening" && this.channel.isConnected()
  }

  /**
   * Its metrics, or `None` if it did not answer within `timeout` (an empty list if it died
   * meanwhile); undefined, without asking, when it cannot be asked.
   */
  scrape(timeout: Duration.Duration): Effect.Effect<Option.Option<ReadonlyArray<MetricsWire.Series>> | undefined> {
    if (!this.reachable) return Effect.succeed(undefined)
    return this.#scrapes.ask((request) => this.#send({ [Protocol.tag]: "metrics", request }), timeout)
  }

  /**
   * Applies `control` in the worker, waiting for its answer at most `timeout`: why not, or
   * undefined once applied. A worker not listening, or gone meanwhile, has nothing to apply.
   */
  control(control: Protocol.Control, timeout: Duration.Duration): Effect.Effect<string | undefined> {
    if (!this.reachable) return Effect.succeed(undefined)
    return Effect.map(
      this.#controls.ask((request) => this.#send({ [Protocol.tag]: "control", request, control }), timeout),
      Option.match({
        onNone: () => `did not answer within ${Duration.format(timeout)}`,
        onSome: (refused) => {
          if (refused === undefined) this.#applied(control)
          return refused
        }
      })
    )
  }

  /**
   * Tells it to end: a worker that listens runs its own graceful shutdown; one still starting
   * holds no connection, and may not listen for messages yet, so it gets SIGTERM.
   */
  stop(): void {
    const state = this.#state
    if (state._tag === "Exited" || state._tag === "Stopping") return
    if (state._tag === "Listening" && this.channel.isConnected()) {
      this.#send({ [Protocol.tag]: "shutdown" })
    } else this.channel.process.kill("SIGTERM")
    this.#become(State.Stopping({ since: this.#since }))
  }

  /**
   * Asks it to go (SIGTERM), unless it has exited: this process is exiting. `serve`'s worker
   * already shutting down takes it as a second signal (it resets the connections it still holds,
   * and exits at once), any other as the start of its shutdown; SIGKILL would let the kernel
   * close its connections as if every answer were whole.
   */
  orphan(): void {
    if (this.#state._tag !== "Exited") this.channel.process.kill("SIGTERM")
  }

  /** Ends it at once (SIGKILL), unless it has exited. */
  kill(): void {
    if (this.#state._tag !== "Exited") this.channel.process.kill("SIGKILL")
  }

  #send(message: Protocol.ToWorker): void {
    this.channel.send(message)
  }

  /** Since when it listened, if it did. */
  get #since(): number | undefined {
    const state = this.#state
    // Stryker disable next-line ConditionalExpression: equivalent (Starting has no since: reading it gives undefined; Exited's is the same); the check narrows the type
    return state._tag === "Listening" || state._tag === "Stopping" ? state.since : undefined
  }

  #become(state: State): void {
    this.#state = state
    this.onChange()
  }

  /** What a control makes of its state, once it applied it. */
  #applied(control: Protocol.Control): void {
    const state = this.#state
    if (state._tag !== "Listening" || control.action === "setMaxConnections") return
    this.#become(State.Listening({ ...state, accepting: control.action === "resume" }))
  }

  #receive(message: unknown): void {
    if (!Protocol.isMessage(message)) return
    switch (message[Protocol.tag]) {
      case "listening":
        if ("address" in message && this.#state._tag === "Starting") {
          this.#become(State.Listening({ address: message.address, since: this.now(), accepting: true }))
          deferredDone(this.#listening, Exit.succeed(message.address))
        }
        return
      case "failed":
        if ("message" in message) this.#reported = message.message
        return
      case "metrics":
        if ("series" in message) this.#scrapes.answer(message.request, message.series)
        return
      case "controlled":
        this.#controls.answer(message.request, message.error)
        return
    }
  }

  #exit(ended: Ended): void {
    const detail = this.#reported ?? describe(ended)
    const exited = State.Exited({ ended, detail, since: this.#since })
    this.#become(exited)
    deferredDone(this.#listening, Exit.fail(detail))
    deferredDone(this.#exited, Exit.succeed(exited))
    this.#scrapes.answerAll([])
    // A worker that died has nothing left to apply: its restart gets the controls in force.
    this.#controls.answerAll(undefined)
  }
}
