#!/usr/bin/env bash
# `make run`: migrate the embedded database, load deterministic demo data, mint a
# token, serve, and print a curl line that works once the server is listening.
set -euo pipefail
cd "$(dirname "$0")/.."
business=${1:?business id}
bind=${2:-127.0.0.1:8080}
bin=target/release/pingback
export PINGBACK__SERVER__BIND="$bind"

"$bin" migrate
# The same seed produces the same ids: a second `make run` replaces, never duplicates.
ids=$("$bin" generate --business-id "$business" --conversations 25 --messages 40 --seed 7)
conversation=$(head -n 1 <<<"$ids")
token=$("$bin" token --business-id "$business" --sub demo-agent --ttl 86400)

"$bin" serve | while IFS= read -r line; do
  echo "$line"
  case "$line" in
    "listening on "*)
      url="${line#listening on }"
      echo
      echo "Pingback is serving the demo business $business (Ctrl-C to stop). Try:"
      echo
      echo "  curl -s $url/api/v1/conversations/$conversation -H \"Authorization: Bearer $token\""
      echo
      ;;
  esac
done
