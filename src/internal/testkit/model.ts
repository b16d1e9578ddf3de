/**
 * The model a scenario is played against: what each peer has done and where the server is in its
 * life (serving, draining, stopped). Pure: whether an operation applies in a state (its
 * precondition), and the state after it. A scenario replayed against the model alone says what a
 * generator produces, without a server.
 */
import type { Model, Operation, PeerModel } from "../../TestKit.js"

/** @internal */
export const initialModel = (deadlineMillis: number): Model => ({
  peers: [],
  phase: "serving",
  waitedMillis: 0,
  deadlineMillis,
  exhausted: false
})

/**
 * The peer `peer` names (modulo the peers opened so far), if any is.
 *
 * @internal
 */
export const peerIndex = (model: Model, peer: number): number | undefined =>
  model.peers.length === 0 ? undefined : peer % model.peers.length

const peerOf = (model: Model, peer: number): PeerModel | undefined => {
  const i = peerIndex(model, peer)
  return i === undefined ? undefined : model.peers[i]
}

/** @internal */
export const applies = (model: Model, op: Operation): boolean => {
  switch (op._tag) {
    case "Open":
    case "Wait":
      return true
    case "Descriptors":
      return model.exhausted !== op.exhausted
    case "Flood":
    case "Exchange":
    case "Shutdown":
    case "ServerDefect":
      return model.phase === "serving"
    // The process can end at once while it serves (SIGQUIT, a crash) or drains (a second signal).
    case "ForceShutdown":
      return model.phase !== "stopped"
    case "Send":
    case "HalfClose": {
      const peer = peerOf(model, op.peer)
      return peer !== undefined && !peer.reset && peer.halfClosed === "no"
    }
    case "Read":
    case "Stall":
    case "Reset":
    case "Close": {
      const peer = peerOf(model, op.peer)
      return peer !== undefined && !peer.reset &&
        (op._tag === "Reset" || op._tag === "Close" || (op._tag === "Read") !== peer.reading)
    }
  }
}

/** @internal */
export const step = (model: Model, op: Operation): void => {
  const peer = "peer" in op ? peerOf(model, op.peer) : undefined
  switch (op._tag) {
    case "Open":
      if (model.phase === "serving") model.peers.push(newPeer(0, "no", model.exhausted))
      return
    case "Exchange":
      model.peers.push(newPeer(op.data.length, "while serving", model.exhausted))
      return
    case "Flood":
      return
    case "Descriptors":
      model.exhausted = op.exhausted
      return
    case "Send":
      peer!.sent += op.data.length
      return
    case "HalfClose":
      peer!.halfClosed = model.phase === "serving" ? "while serving" : "while draining"
      // A peer that reads while the server serves must get its whole answer at once: checked then
      // (and counted as such only when there was something to answer).
      if (peer!.reading && model.phase === "serving" && peer!.sent > 0 && !peer!.refused) peer!.verified = true
      return
    case "Read":
      peer!.reading = true
      return
    case "Stall":
      peer!.reading = false
      return
    case "Reset":
    case "Close":
      peer!.reset = true
      return
    case "Shutdown":
    case "ServerDefect":
      model.phase = "draining"
      return
    // Every connection is reset at once: nothing is owed after it, but how each one ended.
    case "ForceShutdown":
      model.phase = "stopped"
      return
    case "Wait":
      if (model.phase !== "draining") return
      model.waitedMillis += op.millis
      if (model.waitedMillis >= model.deadlineMillis) model.phase = "stopped"
      return
  }
}

const newPeer = (sent: number, halfClosed: PeerModel["halfClosed"], refused: boolean): PeerModel => ({
  sent,
  halfClosed,
  reading: true,
  reset: false,
  // An exchange half-closes while it reads: its whole answer is checked at once.
  verified: halfClosed === "while serving" && sent > 0 && !refused,
  refused
})
