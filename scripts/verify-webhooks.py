#!/usr/bin/env python3
"""Verifies captured webhook deliveries with the Standard Webhooks reference library.

    verify-webhooks.py DELIVERIES.json SECRET

DELIVERIES.json holds [{"headers": {...}, "body": "<raw body string>"}, ...]. Every
delivery is checked with standardwebhooks.Webhook(SECRET).verify(body, headers), which
checks the signature over "<webhook-id>.<webhook-timestamp>.<body>" and that the
timestamp is within 5 minutes of now. Exits 0 when all verify, 1 naming the first that
does not (or when there is nothing to verify), 2 on a usage error. Run it through
scripts/verify-webhooks.sh, which provides the library.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, secret = argv[1], argv[2]
    with open(path, encoding="utf-8") as f:
        deliveries = json.load(f)
    if not isinstance(deliveries, list) or not deliveries:
        print(f"{path}: expected a non-empty array of deliveries", file=sys.stderr)
        return 1
    webhook = Webhook(secret)
    for index, delivery in enumerate(deliveries):
        headers = delivery.get("headers") or {}
        body = delivery.get("body")
        if not isinstance(body, str):
            print(f"delivery {index}: the body is not a string", file=sys.stderr)
            return 1
        try:
            webhook.verify(body, headers)
        except Exception as error:  # any failure is a verification failure
            webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id")
            print(
                f"delivery {index} (webhook-id {webhook_id!r}) fails verification: "
                f"{type(error).__name__}: {error}",
                file=sys.stderr,
            )
            return 1
    print(f"verified {len(deliveries)} deliveries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
