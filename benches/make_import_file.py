#!/usr/bin/env python3
"""Writes an import file in the GET response shape: CONVERSATIONS conversations of
MESSAGES messages each (defaults 1,000 × 1,000 = 1,000,000 messages), streamed so the
generator itself stays small. Deterministic: the same arguments give the same file."""
import json
import random
import sys
import uuid

def main(path, conversations=1000, messages=1000, business="b2c3d4e5-f6a7-8901-bcde-f12345678901"):
    rng = random.Random(42)
    def uid():
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    words = "hello order refund shipping thanks please account invoice update delivery help".split()
    with open(path, "w") as out:
        out.write("[")
        for c in range(conversations):
            cid = uid()
            customer = {"id": uid(), "business_id": business, "name": f"Customer {c}",
                        "email": f"c{c}@example.com", "phone": None, "external_id": None,
                        "created_at": "2024-01-01T00:00:00Z"}
            msgs = []
            for m in range(messages):
                msgs.append({
                    "id": uid(), "conversation_id": cid,
                    "sender_type": "customer" if m % 2 == 0 else "agent", "sender_id": None,
                    "content": " ".join(rng.choice(words) for _ in range(rng.randint(3, 40))),
                    "attachments": [] if m % 20 else [{"id": uid(), "file_name": "a.png",
                        "content_type": "image/png", "byte_size": 1234, "url": "https://files.example/a.png"}],
                    "created_at": f"2024-01-{1 + m // 86400 % 28:02d}T{m // 3600 % 24:02d}:{m // 60 % 60:02d}:{m % 60:02d}Z",
                })
            doc = {"id": cid, "business_id": business, "customer_id": customer["id"], "assignee_id": None,
                   "status": "open", "channel_type": "email", "channel_id": None,
                   "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z",
                   "first_response_at": None, "customer": customer, "messages": msgs}
            if c:
                out.write(",")
            json.dump(doc, out, separators=(",", ":"))
        out.write("]")

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: make_import_file.py PATH [CONVERSATIONS [MESSAGES]]")
    main(args[0], *(int(a) for a in args[1:3]))
