/**
 * The file system the kernel's limits are read through: `@effect/platform`'s `FileSystem` (the
 * service, its type, `layerNoop` for tests). This is the Effect 3 side (`#line/platform`);
 * src/effect4/platform.ts exports the same names. Node's implementation, `NodeFileSystem.layer`,
 * has the same module name on both lines (`@effect/platform-node/NodeFileSystem`), so the program
 * imports it directly and a library user who never asks for it does not load it.
 */
export * as FileSystem from "@effect/platform/FileSystem"
