"""A class's parts as data: the join code's alphabet, a learner (Member), an experiment, the class (Room), and how
a class is read back from the database (StoreSide, which Classes inherits; it writes a class through too): every class at most once a second
when other processes share the database, one class at once before a join or after a write conflict.
Names and codes are cleaned here: a display name is plain text, a typed code ignores case, spaces and dashes."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from modes.runs.store import Conflict

log = logging.getLogger(__name__)
SYNC_EVERY = 1.0  # seconds: the longest a read may lag another process's change of a class

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed from a projector
CODE_LEN = 6  # 31**6 ~ 8.9e8 codes, about 30 bits
MAX_LEARNERS = 200  # per class
MAX_NAME = 24  # characters of a display name
MAX_VALUES = 40  # values in one class experiment
NAMES = Path(__file__).resolve().parents[2] / "assets" / "data" / "names.json"
_DUMMY_HASH = hashlib.sha256(b"no such class").hexdigest()  # compared against when the code is unknown


class ClassError(Exception):
    """A refusal the learner or teacher is shown: `key` is its UI string, `fmt` fills it."""

    def __init__(self, key: str, **fmt):
        super().__init__(key)
        self.key, self.fmt = key, fmt


@dataclass
class Experiment:
    kind: str  # the tab id whose runs it compares (pretrain, finetune)
    setting: str  # the config field every learner is given a value of
    values: list  # in the order learners are assigned them

    def as_dict(self) -> dict:
        return {"kind": self.kind, "setting": self.setting, "values": list(self.values)}


@dataclass
class Member:
    owner: str
    name: str
    joined: float  # wall-clock seconds: the learner's runs created from then on are shared
    value: object = None  # the experiment value assigned to this learner, if there is an experiment
    unshared: set = field(default_factory=set)  # run ids the learner took back from the class

    def doc(self) -> dict:
        return {"name": self.name, "value": self.value, "unshared": sorted(self.unshared)}


@dataclass
class Room:
    """One class."""

    code: str
    key_hash: str
    created: float
    seen_at: float  # wall-clock seconds of its last use (retention)
    show_names: bool = True  # False: the board says "Learner 3" (for projecting it)
    closed_at: float | None = None  # closed: nobody joins, nothing new is shared; learners keep their runs
    experiment: Experiment | None = None
    next_value: int = 0  # index of the next experiment value to hand out
    removed: set = field(default_factory=set)  # run ids the teacher took off the board
    members: dict = field(default_factory=dict)  # owner -> Member, in join order
    version: int = 0  # bumped on every change of the class or a member (a drawn board is reused until it moves)
    drawn: tuple | None = field(default=None, repr=False, compare=False)  # (fingerprint, board): the last board built
    rev: int | None = None  # the database row's revision this was read or written at (None: not written yet)
    members_seen: tuple = field(default=(), repr=False, compare=False)  # the member rows last read (a mirror's)

    def doc(self) -> dict:
        return {"show_names": self.show_names, "closed_at": self.closed_at, "seen_at": self.seen_at,
                "experiment": self.experiment.as_dict() if self.experiment else None, "next_value": self.next_value,
                "removed": sorted(self.removed)}

    def shared(self, member: Member, run) -> bool:
        """Whether the class sees this run of this member."""
        end = self.closed_at if self.closed_at is not None else float("inf")
        return (run.owner == member.owner and member.joined <= run.created <= end and run.id not in member.unshared
                and run.id not in self.removed)

    def display(self, member: Member) -> str:
        """The name the board shows: the learner's own, or "Learner N" while names are hidden."""
        if self.show_names:
            return member.name
        return f"Learner {list(self.members).index(member.owner) + 1}"


def clean_name(text) -> str:
    """A display name as plain text: control and format characters stripped, spaces collapsed, 24 characters."""
    if not isinstance(text, str):
        return ""
    kept = "".join(" " if ch.isspace() else ch for ch in text if ch.isspace() or not unicodedata.category(ch).startswith("C"))
    return " ".join(kept.split())[:MAX_NAME].strip()


def normal_code(text) -> str:
    """A typed join code: case, spaces and dashes ignored ("abc-23k" is "ABC23K")."""
    return "".join(ch for ch in str(text or "").upper() if ch.isalnum())[:16]


def _hash(key) -> str:
    return hashlib.sha256(str(key or "").encode("utf-8", "replace")).hexdigest()




class StoreSide:
    """Classes' half that keeps them in the database: reading every class back, writing one through at the revision
    it was read at (self.rooms, self.of_owner, self.store and self._lock are Classes')."""

    # ---- reading back ----------------------------------------------------------------------------
    def sync(self, force: bool = False) -> None:
        """With other processes on the database: every class as the database has it (at most every second)."""
        if not self._shared() or (not force and time.monotonic() - self._synced_at < SYNC_EVERY):
            return
        try:
            rows = self.store.load_classes()
        except Exception:
            log.exception("the classes could not be read back; serving what this process has")
            return
        with self._lock:
            self._synced_at = time.monotonic()
            codes = {row["code"] for row in rows}
            for row in rows:
                self._apply(row)
            for code in [c for c in self.rooms if c not in codes and self.rooms[c].rev is not None]:
                del self.rooms[code]  # expired by another process
            self.of_owner = {o: c for c, r in self.rooms.items() for o in r.members}

    def _reload(self, code: str) -> Room | None:
        """One class read again from the database (after a conflict, or before a join)."""
        rows = self.store.load_classes(code)
        with self._lock:
            if not rows:
                self.rooms.pop(code, None)
                return None
            room = self._apply(rows[0])
            for o in room.members:
                self.of_owner[o] = code
            return room

    def _apply(self, row: dict) -> Room:
        """Make or update the room of a database row in place (a board's cache and a caller's handle stay valid)."""
        d = row["doc"]
        exp = d.get("experiment")
        room = self.rooms.get(row["code"])
        if room is None:
            room = self.rooms[row["code"]] = Room(code=row["code"], key_hash=row["key_hash"], created=row["created"], seen_at=0.0)
        seen = tuple((m["owner"], m["joined"], json.dumps(m["doc"], sort_keys=True)) for m in row["members"])
        if room.rev == row["rev"] and room.members_seen == seen:
            return room
        room.seen_at, room.show_names, room.closed_at = d.get("seen_at", row["created"]), d.get("show_names", True), d.get("closed_at")
        room.experiment = Experiment(**exp) if exp else None
        room.next_value, room.removed, room.rev = d.get("next_value", 0), set(d.get("removed", ())), row["rev"]
        room.members = {m["owner"]: Member(owner=m["owner"], name=m["doc"]["name"], joined=m["joined"], value=m["doc"].get("value"),
                                           unshared=set(m["doc"].get("unshared", ()))) for m in row["members"]}
        room.members_seen = seen
        room.version += 1
        return room

    def _restore(self) -> None:
        for row in self.store.load_classes():
            room = self._apply(row)
            for o in room.members:
                self.of_owner[o] = room.code
        self._synced_at = time.monotonic()
        self.expire()

    # ---- writing through -------------------------------------------------------------------------
    def _save(self, room: Room) -> None:
        """Write the room at the revision it was read at; Conflict (from the store) when another process wrote it."""
        room.version += 1
        if not self.store:
            return
        try:
            room.rev = self.store.put_class(room.code, room.key_hash, room.created, room.doc(), room.rev)
        except Conflict:
            raise
        except Exception:  # a failed write: the class goes on from memory (as History does)
            log.exception("the store could not save a class; serving it from memory")

    def _save_member(self, room: Room, member: Member) -> None:
        room.version += 1
        self._write(self.store and self.store.put_member, room.code, member.owner, member.joined, member.doc())

    def _write(self, fn, *args) -> None:
        if not fn:
            return
        try:
            fn(*args)
        except Exception:  # a failed write: the class goes on from memory (as History does)
            log.exception("the store could not save a class; serving it from memory")
