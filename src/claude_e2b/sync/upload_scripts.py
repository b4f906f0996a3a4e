"""The scripts the sandbox runs to take an upload in: transfer, verify, baseline commit.

Like changes, this module only builds scripts; it runs nothing. The transfer
script takes the pieces in as they arrive (see pieces: packs are installed and
checked out, tar chunks extracted), the verify script names the files that fail
their sums, and the baseline script commits what arrived.
"""

from __future__ import annotations

import shlex

from claude_e2b.sync.formats import Codec

# Loose objects stored, not deflated: the baseline commit's `git add` spends most
# of its time in zlib otherwise (figures in BENCHMARKS.md); costs disk, not time.
BASELINE_GIT_CONFIG: tuple[str, ...] = ("core.looseCompression=0",)
BASELINE_NAME = "claude-e2b"
BASELINE_EMAIL = "claude-e2b@localhost"

# The script that receives the upload in the sandbox, run in the background while
# the pieces arrive (or once, after all of them, on the slow path). A piece counts
# once its sums file ends with "end"; PACKS and CHUNKS hold the number of packs and
# of tar chunks once all were sent (a number and a newline).
_TRANSFER_TEMPLATE = r"""set -euo pipefail
cd -- {remote}
repo={repo}
packs={packs}
raw={raw}
if [ {fresh} = 1 ]; then rm -rf -- "$repo"; fi
mkdir -p -- "$repo"
git -C "$repo" init -q -b claude-e2b-baseline
complete() {{  # read fails on a missing file or a line without its newline
  local line
  IFS= read -r line 2>/dev/null < "$1"
}}
{sums_functions}
wait_for() {{  # 0 once the sums file $1 is whole, 1 once count file $2 says fewer than $3
  until ended "$1"; do
    if complete "$2" && [ "$(< "$2")" -lt "$3" ]; then return 1; fi
    sleep 0.02
  done
}}
install_pack() {{  # hard links: the upload directory keeps its copy for a second try
  local to="$repo/.git/objects/pack/$1"
  ln -f -- "$1" "$to" 2> /dev/null || cp -f -- "$1" "$to"
}}
unpack_pack() {{  # a zpack: a pack of stored objects, sent through zstd
  zstd -dqf -o "$repo/.git/objects/pack/${{1%.zst}}" -- "$1"
}}
# Git re-hashes "racily clean" files, those written in the second the index was
# last written (Documentation/technical/racy-git.txt): here, the files it has just
# checked out itself, every time. Until the agent starts nobody else writes in the
# repository, so the index's time goes ahead while git writes and stats the files,
# and back to the real time after: from then on git checks every file written in
# the last second again, as it should.
trusting() {{
  (cd -- "$repo" && {trust_index})
  "$@"
  (cd -- "$repo" && {real_time})
}}
checkout() {{  # the entries in file $1 ("mode blob<TAB>path", NUL-terminated)
  # Both write the index: trusted, or git would mark the files just written as racy.
  trusting git -C "$repo" update-index -z --index-info < "$1"
  cut -z -f 2- < "$1" \
    | trusting git -C "$repo" {checkout_config} checkout-index -f -u -z --stdin
}}
packs() {{
  [ "$packs" = 1 ] || return 0
  local k=1 sums sum name entries
  # The runner sent as objects only files whose bytes are the blob's: no conversion.
  mkdir -p -- "$repo/.git/info"
  echo '* -text -eol -crlf -ident -filter -working-tree-encoding' > "$repo/.git/info/attributes"
  while :; do
    printf -v sums 'pack-%04d.sha256' "$k"
    wait_for "$sums" PACKS "$k" || break
    check "$sums"
    while read -r sum name; do
      case "$name" in
        *.pack.zst) unpack_pack "$name" ;;  # listed before its index, as a pack
        *.pack | *.idx) install_pack "$name" ;;  # the pack is listed before its index
        *.entries) entries=$name ;;
      esac
    done < "$sums"
    checkout "$entries"
    # The trees so far, while the next pack travels: the baseline's write-tree then
    # makes only those the later packs and the tar change (~750 trees: 0.2 s here).
    trusting git -C "$repo" {git_config} write-tree > /dev/null
    k=$((k + 1))
  done
  rm -f -- "$repo/.git/info/attributes"
}}
feed() {{
  local i=1 chunk
  while :; do
    printf -v chunk 'chunk-%06d' "$i"
    wait_for "$chunk.sha256" CHUNKS "$i" || return 0
    check "$chunk.sha256"
    cat -- "$chunk"
    i=$((i + 1))
  done
}}
# tar lists each member as it starts it, so a regular file is complete once the next
# one is listed: hashed then into the index, the baseline commit finds the work done.
# Only regular files ("-" lines; their C-quoted name ends the line): tar may create
# symlinks late, through placeholders. Best effort: a name git cannot take ends the
# hashing, and `git add` in the baseline commit does the rest.
regular() {{ awk '/^-/ {{ print substr($0, index($0, "\"")) }}'; }}
lagged() {{ awk 'NR > 1 {{ print prev }} {{ prev = $0 }} END {{ if (NR) print prev }}'; }}
hash_into_index() {{
  trusting git -C "$repo" {git_config} update-index --add --stdin 2>/dev/null || true
  cat > /dev/null
}}
tarball() {{
  [ "$raw" = 1 ] || return 0
  feed | {decompress} | tar -x -vv --quoting-style=c --no-same-owner -C "$repo" \
    | regular | lagged | hash_into_index
}}
packs
tarball
"""

# Move the index's time an hour ahead, and back (see `trusting` in the transfer script).
_TRUST_INDEX = 'touch -c -d "@$(( $(date +%s) + 3600 ))" .git/index 2> /dev/null || true'
_REAL_TIME = "touch -c .git/index"

# Parallel checkout pays once a piece has this many files (git's own default is 100).
CHECKOUT_CONFIG: tuple[str, ...] = (
    "core.autocrlf=false",
    "checkout.workers=0",
    "checkout.thresholdForParallelism=100",
)


def _decompress(codec: Codec) -> str:
    return "zstd -dcq" if codec == "zstd" else "gzip -dc"


def transfer_script(
    remote_dir: str,
    repo_dir: str,
    codec: Codec,
    *,
    packs: bool = False,
    raw: bool = True,
    fresh: bool = False,
) -> str:
    """Script that checks each piece as it arrives and puts it into ``repo_dir``.

    Packs (``packs``: when files travel as objects) are installed, their entries
    added to the index and their files checked out, then the tar of the other files
    (``raw``) is extracted. ``fresh`` removes ``repo_dir`` first (for a second try).
    """
    return _TRANSFER_TEMPLATE.format(
        remote=shlex.quote(remote_dir),
        repo=shlex.quote(repo_dir),
        packs=int(packs),
        raw=int(raw),
        fresh=int(fresh),
        decompress=_decompress(codec),
        git_config=_git_config(),
        trust_index=_TRUST_INDEX,
        real_time=_REAL_TIME,
        sums_functions=SUMS_FUNCTIONS,
        checkout_config=" ".join(f"-c {shlex.quote(c)}" for c in CHECKOUT_CONFIG),
    )


_VERIFY_TEMPLATE = r"""cd -- {remote}
{sums_functions}
for sums in "$@"; do
  if ! ended "$sums"; then echo "$sums"; continue; fi
  while read -r sum name; do
    [ "$sum" = end ] && break
    [ "$(sum_all "$name" 2> /dev/null)" = "$sum *$name" ] || echo "$name"
  done < "$sums"
done
"""


def verify_script(remote_dir: str) -> str:
    """Script that prints the sums files (its arguments) not whole and the files failing a sum."""
    return _VERIFY_TEMPLATE.format(remote=shlex.quote(remote_dir), sums_functions=SUMS_FUNCTIONS)


# Shell functions on sums files, for the transfer and verify scripts. Only builtins in
# `ended`: the transfer script polls it. The sums lines read as "<sha256> *<name>"
# from `openssl dgst -r` (4x sha256sum's speed where the CPU has SHA-NI) and
# `sha256sum -b` alike.
SUMS_FUNCTIONS = r"""ended() {  # the last line of the sums file $1 is "end"
  local last="" line
  [ -f "$1" ] || return 1
  while IFS= read -r line || [ -n "$line" ]; do last=$line; done < "$1"
  [ "$last" = end ]
}
if command -v openssl > /dev/null 2>&1; then
  sum_all() { openssl dgst -sha256 -r "$@"; }
else
  sum_all() { sha256sum -b -- "$@"; }
fi
check() {  # all files of the sums file $1 match their sums
  local sum name want="" names=()
  while read -r sum name; do
    [ "$sum" = end ] && break
    want+="$sum *$name"$'\n'
    names+=("$name")
  done < "$1"
  [ "${#names[@]}" -gt 0 ] || return 0
  if [ "$(sum_all "${names[@]}")"$'\n' != "$want" ]; then
    echo "claude-e2b: a file of $1 failed its checksum" >&2
    return 3
  fi
}"""


def _git_config() -> str:
    return " ".join(f"-c {shlex.quote(c)}" for c in BASELINE_GIT_CONFIG)


def baseline_script(repo_dir: str, stat_cache: str = "") -> str:
    """Script for git init + add + commit with a fixed identity, printing the baseline sha.

    With ``stat_cache``, a copy of the index goes there: change detection uses it to
    hash only the files that changed.
    """
    # -p: the copy keeps the index's time, on which git's racy-file checks rely.
    keep = f"cp -p -- .git/index {shlex.quote(stat_cache)}; " if stat_cache else ""
    ident = f"-c user.name={BASELINE_NAME} -c user.email={BASELINE_EMAIL}"
    return (
        f"set -euo pipefail; cd {shlex.quote(repo_dir)}; "
        # The streamed transfer may have started the repository and filled its index.
        "[ -d .git ] || git init -q -b claude-e2b-baseline; "
        # Nothing but us has written here yet: see `trusting` in the transfer script.
        f"{_TRUST_INDEX}; "
        # -f: every uploaded file is tracked upstream, even one that .gitignore matches.
        f"git {_git_config()} add -A -f; {_REAL_TIME}; "
        # Plumbing: `git commit` would check every file written in the last second again.
        f"commit=$(git {ident} -c commit.gpgsign=false commit-tree -m baseline "
        '"$(git write-tree)"); '
        'git update-ref HEAD "$commit"; '
        f"{keep}git rev-parse HEAD"
    )
