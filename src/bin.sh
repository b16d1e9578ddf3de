#!/bin/sh
# The `effect-tcp-echo` command (package.json's bin): Node with the binary, dist/src/bin.js, once
# the open-files limit lets Node start at all. Below the few dozen descriptors Node needs to load
# (more on newer versions), it dies while it loads, with a stack or a crash and no word on why;
# this says so in one line instead. 32 covers Node 20, 22 and 24; from there on, the binary
# reports what it cannot open itself, also in one line.
# Copied to dist/src/effect-tcp-echo by `npm run build`; `exec`, so that signals reach Node.
need=32
limit=$(ulimit -n)
if [ "$limit" != unlimited ] && [ "$limit" -lt "$need" ]; then
  echo "effect-tcp-echo: the open-files limit is $limit, and Node needs at least $need to start; raise it (ulimit -n 1024)" >&2
  exit 1
fi
# bin.js lies beside this script, which npm links from node_modules/.bin (a relative link, or a
# chain of them): followed one link at a time (`readlink -f` is not everywhere).
self=$0
while [ -L "$self" ]; do
  target=$(readlink -- "$self")
  case $target in
    /*) self=$target ;;
    *) self=$(dirname -- "$self")/$target ;;
  esac
done
dir=$(cd -P -- "$(dirname -- "$self")" && pwd) || exit 1
exec node "$dir/bin.js" "$@"
