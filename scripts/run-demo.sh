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
      # A reply needs a conversation that is not closed (closed is final).
      open_conversation=$conversation
      if command -v curl >/dev/null; then
        for id in $ids; do
          if ! curl -s "$url/api/v1/conversations/$id" -H "Authorization: Bearer $token" \
            | grep -q '"status":"closed"'; then
            open_conversation=$id
            break
          fi
        done
      fi
      echo
      echo "Pingback is serving the demo business $business (Ctrl-C to stop). Try:"
      echo
      echo "  # read a conversation (its complete history)"
      echo "  curl -s $url/api/v1/conversations/$conversation -H \"Authorization: Bearer $token\""
      echo
      echo "  # reply to it (safe to retry with the same Idempotency-Key)"
      echo "  curl -s -X POST $url/api/v1/conversations/$open_conversation/messages -H \"Authorization: Bearer $token\" \\"
      echo "    -H 'Content-Type: application/json' -H \"Idempotency-Key: demo-\$RANDOM\" \\"
      echo "    -d '{\"sender_type\": \"agent\", \"content\": \"Thanks, we are on it.\"}'"
      echo
      ;;
  esac
done
