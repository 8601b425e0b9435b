#!/usr/bin/env bash
# pharmload-cron.sh: the cron job. Incrementally loads the newest scrape folder(s) with pharmload.
#
# Configuration comes only from the environment; the crontab line sources
# /etc/pharmload/pharmload.env (see pharmload.env.example next to this file):
#
#   SCRAPES_ROOT            required: the folder holding one folder per day (2025-08-04/, ...)
#   PHARMLOAD_TAG_MODE      date (default): each of the newest PHARMLOAD_NEWEST day folders is loaded
#                           as its own tag ${PHARMLOAD_TAG_PREFIX}<folder name>;
#                           fixed: the whole SCRAPES_ROOT is loaded into PHARMLOAD_TAG
#   PHARMLOAD_NEWEST        date mode: how many of the newest day folders to load (default 1)
#   PHARMLOAD_TAG_PREFIX    date mode: put before the folder name to make the tag (default empty)
#   PHARMLOAD_TAG           fixed mode: the tag (required there)
#   PHARMLOAD_HOME          the checkout holding .venv (default: two folders above this script)
#   PHARMLOAD_BIN           the pharmload command (default: $PHARMLOAD_HOME/.venv/bin/pharmload)
#   PHARMLOAD_LOG           log file, appended to (default /var/log/pharmload/pharmload.log);
#                           rotation is left to logrotate (logrotate.conf next to this file)
#   PHARMLOAD_LOCK_FILE     flock file (default /run/lock/pharmload-cron.lock, or /tmp/... without /run/lock)
#   PHARMLOAD_METRICS_FILE  optional: passed on as --metrics-file
#   PHARMLOAD_KEEP_DAYS     optional, date mode only (default: off, nothing is ever dropped): after the
#                           loads, drop every tag ${PHARMLOAD_TAG_PREFIX}YYYY-MM-DD in the database whose
#                           date is more than this many days before today (never one this run loaded),
#                           then run `pharmload gc` to delete the screenshots no dataset references
# Everything else pharmload reads (PHARMLOAD_BACKEND, PHARMLOAD_DSN, PG*, DATABASE_URL, SUPABASE_*,
# PHARMLOAD_IMAGE_DIR, ...) passes through to it unchanged.
#
# "Newest" day folders are the lexically greatest entries of SCRAPES_ROOT named YYYY-MM-DD that are
# folders; anything else there is ignored. They are loaded oldest first. Every load runs with
# --lock-wait fail, so a load of the same tag from another host or user fails at once (exit 3)
# instead of queueing; a second start of this script on the same host is stopped earlier by flock
# and exits 0 with one line in the log.
#
# Retention (PHARMLOAD_KEEP_DAYS) runs after the loads: the day's data comes first, so nothing about
# old data (a drop that waits or fails, a slow gc) can delay or stop it; and the gc then sees the
# rows the day's loads committed, so a screenshot that an old day and today share is kept rather
# than deleted and stored again. The tags come from the database (`pharmload status --report-json`,
# read with the Python next to pharmload), not from the folders, so a tag whose day folder was
# deleted is dropped too. Drops and gc run with --yes and --lock-wait fail; each step is logged, and
# a failed step is alerted and counts in the exit status, but stops neither the others nor the loads.
#
# Every line this script writes to the log starts with an ISO 8601 timestamp and
# "pharmload-cron[PID]"; pharmload's own output (timestamped log lines, then the end-of-run summary)
# is appended between them. Exit status: the worst (highest) pharmload exit status of the run's loads
# (0 loaded, 1 some files rejected, 2 configuration error, 3 load failed, 4 verify mismatch,
# 130 interrupted, 143 terminated); 2 when this script's own configuration is wrong; 0 when another
# run holds the lock.
# Lines about a run that ends with status 2 or more are also printed on stderr, so cron mails them
# to MAILTO; status 0 and 1 stay in the log only.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
PHARMLOAD_HOME=${PHARMLOAD_HOME:-$(cd -- "$script_dir/../.." && pwd)}
pharmload_bin=${PHARMLOAD_BIN:-$PHARMLOAD_HOME/.venv/bin/pharmload}
scrapes_root=${SCRAPES_ROOT:-}
tag_mode=${PHARMLOAD_TAG_MODE:-date}
newest=${PHARMLOAD_NEWEST:-1}
tag_prefix=${PHARMLOAD_TAG_PREFIX:-}
fixed_tag=${PHARMLOAD_TAG:-}
log_file=${PHARMLOAD_LOG:-/var/log/pharmload/pharmload.log}
metrics_file=${PHARMLOAD_METRICS_FILE:-}
keep_days=${PHARMLOAD_KEEP_DAYS:-}
if [[ -n ${PHARMLOAD_LOCK_FILE:-} ]]; then
    lock_file=$PHARMLOAD_LOCK_FILE
elif [[ -d /run/lock && -w /run/lock ]]; then
    lock_file=/run/lock/pharmload-cron.lock
else
    lock_file=/tmp/pharmload-cron.lock
fi

# -- logging -------------------------------------------------------------------------------------

log() {
    local line
    line="$(date -Iseconds) pharmload-cron[$$] $*"
    if ! printf '%s\n' "$line" 2>/dev/null >>"$log_file" || [[ -t 2 ]]; then
        printf '%s\n' "$line" >&2  # the log is unwritable (disk full?), or run by hand: show it here
    fi
}

# A line that needs a human: into the log, and on stderr for cron to mail.
alert() {
    log "$*"
    if [[ ! -t 2 ]]; then
        printf 'pharmload-cron: %s\n' "$*" >&2
    fi
}

# This script's own configuration is wrong: nothing was loaded.
config_error() {
    alert "configuration error: $*; nothing loaded"
    alert "cron run finished: exit 2"
    exit 2
}

if ! mkdir -p -- "$(dirname -- "$log_file")" 2>/dev/null || ! { : >>"$log_file"; } 2>/dev/null; then
    printf 'pharmload-cron: cannot write the log file %s (set PHARMLOAD_LOG); nothing loaded\n' "$log_file" >&2
    exit 2
fi

# -- configuration -------------------------------------------------------------------------------

[[ -n $scrapes_root ]] || config_error "SCRAPES_ROOT is not set (the folder holding one folder per day, e.g. 2025-08-04/)"
[[ -d $scrapes_root ]] || config_error "SCRAPES_ROOT $scrapes_root: not a folder"
scrapes_root=$(cd -- "$scrapes_root" && pwd)
case $tag_mode in
    date)
        [[ $newest =~ ^[1-9][0-9]*$ ]] || config_error "PHARMLOAD_NEWEST '$newest': not a positive whole number"
        ;;
    fixed)
        [[ -n $fixed_tag ]] || config_error "PHARMLOAD_TAG_MODE=fixed needs PHARMLOAD_TAG"
        [[ -z $keep_days ]] || config_error "PHARMLOAD_KEEP_DAYS works in date mode only (a fixed tag is never dropped)"
        ;;
    *)
        config_error "PHARMLOAD_TAG_MODE '$tag_mode': use 'date' or 'fixed'"
        ;;
esac
[[ -z $keep_days || $keep_days =~ ^[1-9][0-9]*$ ]] || config_error "PHARMLOAD_KEEP_DAYS '$keep_days': not a positive whole number"
[[ -x $pharmload_bin ]] || config_error "pharmload not found at $pharmload_bin (run 'make install' in PHARMLOAD_HOME, or set PHARMLOAD_HOME)"

# -- single instance -----------------------------------------------------------------------------

# Opened for appending (never truncated); the lock lives as long as this process, not the file.
if ! { exec 9>>"$lock_file"; } 2>/dev/null; then
    config_error "cannot open the lock file $lock_file (set PHARMLOAD_LOCK_FILE)"
fi
if ! flock -n 9; then
    log "another pharmload cron run is still active (lock $lock_file); this start exits"
    exit 0
fi

# -- what to load --------------------------------------------------------------------------------

tags=()
dirs=()
if [[ $tag_mode == fixed ]]; then
    tags=("$fixed_tag")
    dirs=("$scrapes_root")
else
    days=()
    for dir in "$scrapes_root"/[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]/; do
        if [[ -d $dir ]]; then  # an unmatched pattern stays as it is and is no folder
            days+=("$(basename -- "$dir")")
        fi
    done
    if ((${#days[@]} == 0)); then
        config_error "SCRAPES_ROOT $scrapes_root has no day folder named YYYY-MM-DD (PHARMLOAD_TAG_MODE=fixed loads the whole folder)"
    fi
    mapfile -t days < <(printf '%s\n' "${days[@]}" | LC_ALL=C sort | tail -n "$newest")
    for day in "${days[@]}"; do
        tags+=("$tag_prefix$day")
        dirs+=("$scrapes_root/$day")
    done
fi

meaning() {
    case $1 in
        0) echo "ok" ;;
        1) echo "loaded, some files rejected" ;;
        2) echo "usage or configuration error, nothing done" ;;
        3) echo "load failed, database unchanged" ;;
        4) echo "loaded, but --verify-writes found a mismatch" ;;
        130) echo "interrupted (SIGINT), see pharmload's last line for whether it committed" ;;
        143) echo "terminated (SIGTERM), see pharmload's last line for whether it committed" ;;
        *) echo "unexpected exit status" ;;
    esac
}

# -- the loads -----------------------------------------------------------------------------------

if [[ $tag_mode == fixed ]]; then
    log "cron run started: mode fixed, tag '$fixed_tag', scrapes $scrapes_root, pharmload $pharmload_bin"
else
    log "cron run started: mode date, newest $newest, tag prefix '$tag_prefix', scrapes $scrapes_root, pharmload $pharmload_bin"
fi

worst=0
count=${#tags[@]}
for i in "${!tags[@]}"; do
    tag=${tags[i]}
    dir=${dirs[i]}
    args=(load --states-dir "$dir" --tag "$tag" --lock-wait fail)
    if [[ -n $metrics_file ]]; then
        args+=(--metrics-file "$metrics_file")
    fi
    log "load $((i + 1))/$count: tag '$tag' from $dir"
    started=$SECONDS
    rc=0
    # fd 9 (the flock) is not passed on: a process pharmload leaves behind cannot hold the lock.
    "$pharmload_bin" "${args[@]}" </dev/null >>"$log_file" 2>&1 9>&- || rc=$?
    line="load $((i + 1))/$count finished: tag '$tag' exit $rc ($(meaning "$rc")) in $((SECONDS - started))s"
    if ((rc >= 2)); then alert "$line"; else log "$line"; fi
    if ((rc > worst)); then
        worst=$rc
    fi
    if ((rc >= 128)); then
        alert "pharmload was interrupted; the remaining loads of this run are skipped"
        break
    fi
done

# -- retention -----------------------------------------------------------------------------------

# A drop's or gc's exit status in words.
step_meaning() {
    case $1 in
        0) echo "ok" ;;
        2) echo "usage or configuration error, nothing done" ;;
        3) echo "failed, see the lines above" ;;
        130) echo "interrupted" ;;
        *) echo "unexpected exit status" ;;
    esac
}

# Run one retention step (pharmload with these arguments), log it, and count its exit status.
step() {
    local what=$1 rc=0 started=$SECONDS line
    shift
    log "retention: $what"
    "$pharmload_bin" "$@" </dev/null >>"$log_file" 2>&1 9>&- || rc=$?
    line="retention: $what finished: exit $rc ($(step_meaning "$rc")) in $((SECONDS - started))s"
    if ((rc >= 2)); then alert "$line"; else log "$line"; fi
    if ((rc > worst)); then
        worst=$rc
    fi
    return "$rc"
}

# The tags of the database (NUL-separated) that this cron's prefix made for days before $1.
old_tags() {
    local status_json=$1 cutoff=$2 python
    python=$(dirname -- "$pharmload_bin")/python
    [[ -x $python ]] || python=python3
    "$python" - "$status_json" "$tag_prefix" "$cutoff" <<'PY'
import json, re, sys
path, prefix, cutoff = sys.argv[1:]
for d in json.load(open(path))["datasets"]:
    day = d["tag"][len(prefix):] if d["tag"].startswith(prefix) else ""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) and day < cutoff:
        sys.stdout.write(d["tag"] + "\0")
PY
}

if [[ -n $keep_days && $worst -lt 128 ]]; then
    cutoff=$(date -d "-$keep_days days" +%F)
    status_json=$(mktemp "${TMPDIR:-/tmp}/pharmload-status.XXXXXX")
    trap 'rm -f -- "$status_json"' EXIT
    if step "list the tags (PHARMLOAD_KEEP_DAYS=$keep_days: drop days before $cutoff)" \
            status --report-json "$status_json"; then
        drops=()
        while IFS= read -r -d '' tag; do
            for loaded in "${tags[@]}"; do
                if [[ $tag == "$loaded" ]]; then
                    log "retention: keeping tag '$tag', which this run loaded"
                    continue 2
                fi
            done
            drops+=("$tag")
        done < <(old_tags "$status_json" "$cutoff")
        metrics=()
        if [[ -n $metrics_file ]]; then
            metrics=(--metrics-file "$metrics_file")
        fi
        for i in "${!drops[@]}"; do
            step "drop $((i + 1))/${#drops[@]}: tag '${drops[i]}'" drop --tag "${drops[i]}" --yes --lock-wait fail \
                "${metrics[@]}" || true
        done
        step "gc (${#drops[@]} tags dropped)" gc --lock-wait fail "${metrics[@]}" || true
    fi
fi

log "cron run finished: exit $worst"
if ((worst >= 2)) && [[ ! -t 2 ]]; then
    printf 'pharmload-cron: cron run finished: exit %s; see %s\n' "$worst" "$log_file" >&2
fi
exit "$worst"
