#!/usr/bin/env bash
# Removes the RabbitMQ queues that test, benchmark and browser-test stacks
# leave behind when they are killed (each declares 21 quorum queues on an
# events exchange of its own: `pai.test.*`, `pai.bench.*`, `pai.web.*`, ...).
# Hundreds of leftover quorum queues make a single-node broker crawl, and a
# test run then hangs on its first queue declaration.
#
#   rabbitmq-tidy.sh            every leftover set: a set (the queues of one
#                               exchange) is removed only when none of its
#                               queues has a consumer, so running stacks keep
#                               theirs
#   rabbitmq-tidy.sh EXCHANGE   the queues of EXCHANGE (its stack stopped)
#
# Needs the local broker's rabbitmqctl (as root, which holds the Erlang
# cookie); does nothing otherwise. A broker that does not answer a queue
# listing within a minute is restarted.
set -uo pipefail

say() { echo "rabbitmq-tidy: $*"; }

command -v rabbitmqctl >/dev/null || exit 0
[ "$(id -u)" -eq 0 ] || exit 0

list() { timeout 60 rabbitmqctl -q list_queues --no-table-headers name consumers 2>/dev/null; }

restart() {
  say "the broker did not list its queues within 60 s: restarting it"
  timeout 60 rabbitmqctl stop >/dev/null 2>&1 || true
  pkill -9 -f beam.smp 2>/dev/null || true
  sleep 2
  rabbitmq-server -detached >/dev/null 2>&1 || service rabbitmq-server start >/dev/null 2>&1
  timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
}

if ! listing=$(list); then
  restart
  listing=$(list) || { say "the broker still does not answer"; exit 1; }
fi

# The exchange a queue belongs to: its name up to the set's id (a 32-digit
# hex id or a process id), e.g. pai.test.<id>.documents.ingest.retry.
doomed=$(awk -v only="${1:-}" '
  {
    name = $1; consumers = $2
    if (only != "") {
      if (index(name, only ".") == 1 || name == only) print name
      next
    }
    if (!match(name, /^pai\.(test|bench|web|fuzz|bench-web)(\.[a-z]+)?\.([0-9a-f]{32}|[0-9]+)/)) next
    set = substr(name, 1, RLENGTH)
    queues[set] = queues[set] " " name
    if (consumers > 0) busy[set] = 1
  }
  END {
    for (set in queues) if (!(set in busy)) {
      n = split(queues[set], names, " ")
      for (i = 1; i <= n; i++) print names[i]
    }
  }' <<<"$listing")

[ -n "$doomed" ] || exit 0
count=$(wc -l <<<"$doomed")
say "deleting $count leftover queue(s)"
while read -r queue; do
  # rabbitmqctl reads stdin: keep it off the list being read.
  timeout 30 rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1 || say "could not delete $queue"
done <<<"$doomed"
