/**
 * The error a file system of a test's making fails with, on Effect 4: `effect/PlatformError`'s
 * `PlatformError` with a `SystemError` reason. Its twin, test/effect3/lib/fileSystem.ts, exports
 * the same names.
 */
import { PlatformError } from "effect"

/** A failed call `method` of `module` on `pathOrDescriptor`, for `reason`. */
export const systemError = (options: {
  readonly reason: "NotFound" | "PermissionDenied"
  readonly module: "FileSystem"
  readonly method: string
  readonly pathOrDescriptor: string
}): PlatformError.PlatformError => {
  const { reason, ...rest } = options
  return PlatformError.systemError({ _tag: reason, ...rest })
}
