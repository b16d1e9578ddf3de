/**
 * The one place where Node's errno codes become the reasons users match on.
 */

// The reasons are part of the public errors' types (Listener.ListenErrorReason,
// Connection.ConnectionErrorReason, Client's ConnectError): not marked internal, so that the
// published declarations keep them.

/** Why listening failed, from its errno. */
export type ListenReason = "AddressInUse" | "PermissionDenied" | "AddressNotAvailable" | "Unknown"

/** Why a connection failed, from its errno. */
export type ConnectionReason = "Reset" | "BrokenPipe" | "Timeout" | "Unknown"

/** Why connecting failed, from its errno. */
export type ConnectReason = "Refused" | "Timeout" | "Unknown"

/** @internal */
export const errnoCode = (error: unknown): string | undefined => {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}

/** @internal */
export const errnoSyscall = (error: unknown): string | undefined => {
  const syscall = typeof error === "object" && error !== null ? (error as { syscall?: unknown }).syscall : undefined
  return typeof syscall === "string" ? syscall : undefined
}

/** @internal */
export const listenReason = (code: string | undefined): ListenReason => {
  switch (code) {
    case "EADDRINUSE":
      return "AddressInUse"
    case "EACCES":
    case "EPERM":
      return "PermissionDenied"
    case "EADDRNOTAVAIL":
      return "AddressNotAvailable"
    default:
      return "Unknown"
  }
}

/** @internal */
export const connectionReason = (code: string | undefined): ConnectionReason => {
  switch (code) {
    case "ECONNRESET":
    case "ECONNABORTED":
      return "Reset"
    case "EPIPE":
    case "ERR_STREAM_DESTROYED":
    case "ERR_STREAM_WRITE_AFTER_END":
      return "BrokenPipe"
    case "ETIMEDOUT":
      return "Timeout"
    default:
      return "Unknown"
  }
}

/** @internal */
export const connectReason = (code: string | undefined): ConnectReason => {
  switch (code) {
    case "ECONNREFUSED":
      return "Refused"
    case "ETIMEDOUT":
      return "Timeout"
    default:
      return "Unknown"
  }
}
