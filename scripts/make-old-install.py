#!/usr/bin/env python3
"""Builds an install of the older single-user Personal AI Agent, as people
have them, for `pai import-sqlite` to move in (issue 33).

    python3 scripts/make-old-install.py --out DIR [--users 3] [--emails 200] [--queries 50]
        [--documents N]

DIR/pai.db is the SQLite database of the migration plan's schema (users,
documents, queries, email_accounts, emails, email_attachments,
oauth_sessions: integer ids, timestamps as text, JSON as text);
DIR/data/uploads/{user_id}/ holds the PDFs (from testdata/pdf/dev) and the
mail attachments; DIR/data/vector_db/ the FAISS files the import does not
need. DIR/expected.json says what a complete import brings in and what it
must skip, with why.

The install is messy the way real ones are: a document whose file is gone,
NULLs where the old app allowed them, a second account whose address
differs from another's only in case, text that is not UTF-8 (latin-1
bytes), and timestamps in five formats. Passwords are bcrypt hashes of the
passwords in PASSWORDS below. Standard library only; the same arguments
build the same install.

Past the three people of PASSWORDS (--users 100, --documents 2000: the
import benchmark's size), users user4, user5, ... share bruno's password,
and the corpus PDFs are used again under numbered names.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import random
import shutil
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PDFS = ROOT / "testdata" / "pdf" / "dev"
EMAILS = ROOT / "testdata" / "email" / "dev"
FACTS = ROOT / "testdata" / "pdf" / "facts.tsv"

# (email, username, password, bcrypt hash of it, is_admin)
PASSWORDS = [
    ("alice@example.com", "alice", "lantern-harbour-1987",
     "$2b$10$/fGnxCXqbzLTM6QmdxmtM.aOHdK/tu6Kd9NTw9AcM4FyzTXrQC/bq", 1),
    ("bruno@example.com", "bruno", "quiet-meadow-2041",
     "$2b$10$Tvb5jOTZYcR4jPli4LKhF.9jC1b5O7xE0ls9mlMKRQEM5/3eVI/Ya", 0),
    ("chen@example.com", "chen", "copper-kettle-7733",
     "$2b$10$YH7ZKHS4soyEOtFTVnYsy.fRCrm6R9ba45cJ0UOgGBl2YcOHVsWZ2", 0),
]

SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, username TEXT, password_hash TEXT,
    is_admin INTEGER, is_active INTEGER, created_at TEXT, updated_at TEXT);
CREATE TABLE documents (id INTEGER PRIMARY KEY, user_id INTEGER, title TEXT, file_path TEXT,
    content TEXT, metadata TEXT, namespace TEXT, created_at TEXT, updated_at TEXT);
CREATE TABLE queries (id INTEGER PRIMARY KEY, user_id INTEGER, query_text TEXT, response TEXT,
    sources TEXT, created_at TEXT);
CREATE TABLE email_accounts (id INTEGER PRIMARY KEY, user_id INTEGER, email_address TEXT,
    access_token TEXT, refresh_token TEXT, created_at TEXT, updated_at TEXT);
CREATE TABLE emails (id INTEGER PRIMARY KEY, user_id INTEGER, email_account_id INTEGER,
    thread_id TEXT, subject TEXT, content TEXT, classification TEXT, created_at TEXT);
CREATE TABLE email_attachments (id INTEGER PRIMARY KEY, email_id INTEGER, filename TEXT,
    file_path TEXT, content_type TEXT, size INTEGER);
CREATE TABLE oauth_sessions (id INTEGER PRIMARY KEY, user_id INTEGER, state TEXT,
    created_at TEXT, expires_at TEXT);
"""

CLASSES = ["personal", "work", "financial", "newsletter", "notification", "spam"]


def timestamp(rng: random.Random, n: int):
    """A moment in 2023, written in one of the five formats the old app's
    versions used (or an integer epoch)."""
    day, hour = 1 + n % 28, n % 24
    month = 1 + (n // 28) % 12
    return [
        f"2023-{month:02d}-{day:02d} {hour:02d}:15:00",
        f"2023-{month:02d}-{day:02d}T{hour:02d}:15:00Z",
        f"2023-{month:02d}-{day:02d}T{hour:02d}:15:00.123456+02:00",
        f"{month:02d}/{day:02d}/2023 {hour:02d}:15",
        1672531200 + n * 86_400 + rng.randrange(3600),
    ][n % 5]


def message_text(path: Path) -> tuple[str | None, str]:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
    subject = msg.get("Subject")
    body = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            try:
                body = payload.decode(part.get_content_charset() or "latin-1", errors="replace")
            except LookupError:  # a charset Python does not know
                body = payload.decode("latin-1")
            break
    return (str(subject) if subject is not None else None), body[:4000]


def people_for(users: int) -> list:
    """PASSWORDS, then users sharing bruno's password."""
    people = list(PASSWORDS[:users])
    for n in range(len(PASSWORDS) + 1, users + 1):
        people.append((f"user{n}@example.com", f"user{n}", PASSWORDS[1][2], PASSWORDS[1][3], 0))
    return people


def build(out: Path, users: int, emails_wanted: int, queries_wanted: int,
          documents_wanted: int | None = None) -> dict:
    rng = random.Random(33)
    if out.exists():
        shutil.rmtree(out)
    uploads = out / "data" / "uploads"
    (out / "data" / "vector_db").mkdir(parents=True)
    db = sqlite3.connect(out / "pai.db")
    db.executescript(SCHEMA)
    expected: dict = {"users": [], "skipped": []}

    people = people_for(users)
    for uid, (address, username, password, hashed, admin) in enumerate(people, start=1):
        db.execute("INSERT INTO users VALUES (?,?,?,?,?,?,?,?)",
                   (uid, address, username, hashed, admin, 1, timestamp(rng, uid), timestamp(rng, uid + 1)))
        expected["users"].append({"old_id": uid, "email": address, "username": username,
                                  "password": password, "is_admin": bool(admin),
                                  "documents": [], "emails": 0, "queries": 0})
        (uploads / str(uid)).mkdir(parents=True)
        (out / "data" / "vector_db" / f"{uid}.faiss").write_bytes(rng.randbytes(512))
    # The same address as the first user's, in other case: pai's addresses
    # are unique without regard to case, so this one cannot come in.
    dup = len(people) + 1
    db.execute("INSERT INTO users VALUES (?,?,?,?,?,?,?,?)",
               (dup, people[0][0].upper(), people[0][1] + "_old", people[0][3], 0, 0, None, None))
    expected["skipped"].append({"table": "users", "old_id": dup,
                                "reason": "email differs from user 1's only in case"})

    # Documents: every corpus PDF, owners in turn, and one whose file is gone.
    pdfs = sorted(PDFS.glob("*.pdf"))
    wanted = documents_wanted or len(pdfs)
    for n in range(1, wanted + 1):
        pdf = pdfs[(n - 1) % len(pdfs)]
        owner = 1 + (n - 1) % len(people)
        name = pdf.name if n <= len(pdfs) else f"{pdf.stem}_{n}.pdf"
        target = uploads / str(owner) / name
        shutil.copyfile(pdf, target)
        title = None if n == 3 else pdf.stem.replace("_", " ")
        metadata = None if n % 4 == 0 else json.dumps({"pages": None, "source": "upload"})
        db.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                   (n, owner, title, str(target.relative_to(out)), None, metadata, "default",
                    timestamp(rng, n), timestamp(rng, n + 7)))
        expected["users"][owner - 1]["documents"].append(name)
    gone = wanted + 1
    db.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
               (gone, 1, "scanned receipt", "data/uploads/1/scanned_receipt.pdf", "", "{}", "default",
                timestamp(rng, gone), timestamp(rng, gone)))
    expected["skipped"].append({"table": "documents", "old_id": gone, "reason": "its file is missing"})

    # Mail: one or two accounts each, the corpus messages in turn, repeated
    # to the count wanted; some content as latin-1 bytes, some subjects NULL.
    accounts = []
    for uid, (address, *_rest) in enumerate(people, start=1):
        for k in range(1 + (uid % 2)):
            aid = len(accounts) + 1
            db.execute("INSERT INTO email_accounts VALUES (?,?,?,?,?,?,?)",
                       (aid, uid, address if k == 0 else f"{address.split('@')[0]}.work@mail.example",
                        f"ya29.old-access-{aid}", f"1//old-refresh-{aid}", timestamp(rng, aid), None))
            accounts.append((aid, uid))
    messages = sorted(EMAILS.glob("*.eml"))
    attachment_pdf = pdfs[0]
    for n in range(1, emails_wanted + 1):
        path = messages[(n - 1) % len(messages)]
        subject, body = message_text(path)
        aid, uid = accounts[(n - 1) % len(accounts)]
        content: str | bytes = body
        if n % 17 == 0:
            content = (body[:200] + " caf\u00e9 na\u00efve").encode("latin-1", errors="replace")
        classification = CLASSES[n % len(CLASSES)] if n % 11 else None
        db.execute("INSERT INTO emails VALUES (?,?,?,?,?,?,?,?)",
                   (n, uid, aid, f"thread-{aid}-{n // 3}", None if n % 13 == 0 else subject, content,
                    classification, timestamp(rng, n)))
        expected["users"][uid - 1]["emails"] += 1
        if "_pdf_" in path.name:
            folder = uploads / str(uid) / "attachments"
            folder.mkdir(exist_ok=True)
            target = folder / f"{n}_{attachment_pdf.name}"
            shutil.copyfile(attachment_pdf, target)
            db.execute("INSERT INTO email_attachments VALUES (?,?,?,?,?,?)",
                       (n, n, attachment_pdf.name, str(target.relative_to(out)), "application/pdf",
                        None if n % 2 else target.stat().st_size))

    # Query history: the corpus questions, some unanswered (NULL response).
    questions = [line.split("\t")[1] for line in FACTS.read_text().splitlines()[1:] if "\t" in line]
    for n in range(1, queries_wanted + 1):
        uid = 1 + (n - 1) % len(people)
        response = None if n % 9 == 0 else f"An answer from the old app ({n})."
        sources = json.dumps([{"document_id": 1 + (n % len(pdfs)), "page": 1}]) if n % 3 else None
        db.execute("INSERT INTO queries VALUES (?,?,?,?,?,?)",
                   (n, uid, questions[(n - 1) % len(questions)], response, sources, timestamp(rng, n)))
        expected["users"][uid - 1]["queries"] += 1

    # An OAuth flow someone began and never finished: nothing to import.
    db.execute("INSERT INTO oauth_sessions VALUES (1, 2, 'abandoned-state', ?, ?)",
               (timestamp(rng, 40), timestamp(rng, 41)))
    db.commit()
    db.close()
    expected["counts"] = {"users": len(people) + 1, "documents": wanted + 1,
                          "emails": emails_wanted, "queries": queries_wanted,
                          "email_accounts": len(accounts)}
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    return expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--documents", type=int, default=None,
                        help="PDFs (default: each corpus PDF once)")
    parser.add_argument("--emails", type=int, default=200)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    if args.users < 1:
        parser.error("--users must be at least 1")
    expected = build(args.out, args.users, args.emails, args.queries, args.documents)
    print(f"make-old-install: {args.out}: {json.dumps(expected['counts'])}, "
          f"{len(expected['skipped'])} rows a complete import skips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
