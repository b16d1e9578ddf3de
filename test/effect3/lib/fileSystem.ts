/**
 * The error a file system of a test's making fails with, on Effect 3: `@effect/platform`'s
 * `SystemError`. Its twin, test/effect4/lib/fileSystem.ts, exports the same names.
 */
import { SystemError } from "@effect/platform/Error"

/** A failed call `method` of `module` on `pathOrDescriptor`, for `reason`. */
export const systemError = (options: {
  readonly reason: "NotFound" | "PermissionDenied"
  readonly module: "FileSystem"
  readonly method: string
  readonly pathOrDescriptor: string
}): SystemError => new SystemError(options)
