#!/bin/bash
# Set up (Debian packages, venv) and run the test suite: first the layers that need no
# root (tests/unit, tests/inprocess) as an unprivileged user (uid 65534), then the whole
# suite as root. Arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/setup.sh
ROOT=$PWD
NOBODY=65534
PYTEST_OPTS=(-q -p no:cacheprovider)

# ---------------------------------------------------------------- as an unprivileged user
layers=()
for layer in tests/unit tests/inprocess; do
  # a layer that does not exist yet, or has no test files, is legitimately empty
  if [ -n "$(find "$layer" -name 'test_*.py' -print -quit 2>/dev/null)" ]; then
    layers+=("$layer")
  fi
done

clean_env=(HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
           PYTHONDONTWRITEBYTECODE=1 TERM="${TERM:-dumb}")
[ -z "${CI+set}" ] || clean_env+=(CI="$CI")
as_nobody() {
  setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups env -i "${clean_env[@]}" "$@"
}

# Can uid 65534 read this checkout and its venv? CI may clone under /root or a 0700 dir.
readable_here() {
  [ -z "$(as_nobody find "$ROOT/core" "$ROOT/plugins" "$ROOT/tests" "$ROOT/contrib" \
            "$ROOT/pyproject.toml" "$ROOT/README.md" \
            \( ! -readable -o -type d ! -executable \) -print -quit 2>&1)" ] &&
    as_nobody "$ROOT/.venv/bin/python" -c 'import lxctl, lxctl_plugins, pytest' 2>/dev/null
}

copy=""
remove_copy() { [ -z "$copy" ] || rm -rf "$copy"; copy=""; }
trap remove_copy EXIT

if [ ${#layers[@]} -gt 0 ]; then
  where=$ROOT
  if ! readable_here; then
    # Run from a copy it can read: the sources, the tests and the venv, with the venv's
    # editable links (lxctl -> core, lxctl_plugins -> plugins; see setup.sh) and its
    # scripts re-pointed to the copy.
    copy=$(mktemp -d /tmp/lxctl-test-nonroot.XXXXXX)
    chmod 755 "$copy"
    cp -a core plugins tests pyproject.toml README.md .venv "$copy"/
    mkdir "$copy/contrib" && cp -a contrib/example-plugin "$copy/contrib/"
    chmod -R a+rX "$copy"
    site=$("$copy/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    case $site in "$copy"/*) ;; *) echo "test.sh: copied venv reports $site" >&2; exit 1;; esac
    ln -sfn "$copy/core" "$site/lxctl"
    ln -sfn "$copy/plugins" "$site/lxctl_plugins"
    old=$(printf '%s' "$ROOT/.venv" | sed 's/[][\.*^$|]/\\&/g')
    for f in "$copy"/.venv/bin/*; do  # shebangs and the client's launcher
      if [ -f "$f" ] && [ ! -L "$f" ] && grep -qIF "$ROOT/.venv" "$f"; then
        sed -i "s|$old|$copy/.venv|g" "$f"
      fi
    done
    where=$copy
    echo "test.sh: $ROOT is not readable by uid $NOBODY; non-root tests run from $copy"
  fi
  echo "test.sh: ${layers[*]} as uid $NOBODY"
  # exit 5 (nothing collected) fails too: these layers have test files
  (cd "$where" && as_nobody "$where/.venv/bin/python" -m pytest "${PYTEST_OPTS[@]}" \
     "${layers[@]}" "$@")
  remove_copy
else
  echo "test.sh: no unit or in-process tests to run as uid $NOBODY"
fi

# ---------------------------------------------------------------- as root: everything
echo "test.sh: the whole suite as root"
exec .venv/bin/python -m pytest "${PYTEST_OPTS[@]}" tests "$@"
