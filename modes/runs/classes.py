"""Classes: a teacher's join code, the learners in it, and which of their runs the class sees.

A class is a few rows in the durable store (modes/runs/store.py: `classes`, `members`), kept in memory
and written through on every change, so a restart keeps every class, learner, name and experiment. With
several processes on one database, each reads the classes back at most every second (a teacher's board on
one replica shows the learners who joined on another), a class's row is written only at the revision it
was read at (two replicas changing one class at once both keep their change), and failed joins are
counted in the database, across every replica.

- The teacher gets a 6-character join code (31 unambiguous symbols: about 30 bits) and a teacher key
  (128 bits). Only the key's sha256 is kept; it is compared in constant time, and a wrong key and an
  unknown code get the same refusal.
- A learner joins with the code and gets a generated display name (an adjective and an animal, in their
  language) they may change. Names are plain text: at most 24 characters, control characters stripped.
- A learner's runs made while they are in the class are shared with it, unless they unshare a run;
  the teacher can take a run off the board. Nobody in a class ever sees another learner's samples,
  adapter or data: the board (modes/classes/board.py) carries settings and numbers only.
- Failed joins are limited per client address (modes/runs/joinlimit.py: 60 in 10 minutes, 3 while the app is
  guessed at from many addresses); successful joins are not counted, so 40 students behind one school address,
  with typos, all get in.
- A class experiment assigns each learner the next value of one setting (LoRA r = 1, 2, 4 ...).
- A class is forgotten (its rows too) once unused for the store's retention (HML_KEEP_DAYS).
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import secrets
import threading
import time
from typing import Callable

from modes.runs.joinlimit import JoinLimit
from modes.runs.rooms import (
    _DUMMY_HASH,
    ALPHABET,
    CODE_LEN,
    MAX_LEARNERS,
    MAX_NAME,
    MAX_VALUES,
    NAMES,
    ClassError,
    Experiment,
    Member,
    Room,
    StoreSide,
    _hash,
    clean_name,
    normal_code,
)
from modes.runs.store import Conflict

log = logging.getLogger(__name__)


class Classes(StoreSide):
    def __init__(self, store=None, ttl_s: float = 7 * 86400, clock: Callable[[], float] = time.time):
        self.store = store  # the durable store (or None: memory only)
        self.ttl_s = ttl_s
        self.clock = clock  # wall-clock seconds (tests move it by hand)
        self.rooms: dict[str, Room] = {}
        self.of_owner: dict[str, str] = {}  # owner -> the code of the class they are in
        # Failed joins per client address (modes/runs/joinlimit.py): in the database with other processes on it.
        self.limit = JoinLimit(store if store is not None and getattr(store, "shared", False) else None)
        self._lock = threading.RLock()
        self._rng = random.Random()
        self._synced_at = -1e9
        if store is not None:
            self._restore()

    # ---- the teacher's side ------------------------------------------------------------------------
    def create(self) -> tuple[str, str]:
        """A new class: (join code, teacher key). The key is shown once; only its hash is kept."""
        key = secrets.token_urlsafe(16)  # 128 random bits
        with self._lock:
            self.expire()
            code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))
            while code in self.rooms:
                code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))
            now = self.clock()
            room = Room(code=code, key_hash=_hash(key), created=now, seen_at=now)
            self.rooms[code] = room
            self._save(room)
        return code, key

    def _change(self, room: Room, fn) -> None:
        """Apply `fn(room)` and write the room; when another process wrote it since we read it, read it again and
        apply `fn` to that (a few times at most: a class is changed by a teacher's click or a learner's join)."""
        with self._lock:
            for _ in range(8):
                fn(room)
                try:
                    self._save(room)
                    return
                except Conflict:
                    self._reload(room.code)
            log.error("class %s: gave up writing after repeated conflicts", room.code)

    def teacher(self, code, key) -> Room:
        """The class when `key` is its teacher key; else ClassError("cl_refused"), the same for an unknown code
        (the key's hash is compared in constant time against a stand-in)."""
        room = self._room(code)
        ok = hmac.compare_digest(_hash(key), room.key_hash if room else _DUMMY_HASH)
        if room is None or not ok:
            raise ClassError("cl_refused")
        if self.clock() - room.seen_at > 60:  # the board polls every few seconds: its last use is kept to the minute
            now = self.clock()
            self._change(room, lambda r: setattr(r, "seen_at", now))
        return room

    def set_experiment(self, room: Room, kind: str, setting: str, values: list) -> None:
        """Give every learner (in join order, then each newcomer) the next value of `setting`."""
        if not values or len(values) > MAX_VALUES:
            raise ClassError("cl_exp_values", max=MAX_VALUES)

        def assign(r: Room) -> None:
            r.experiment, r.next_value = Experiment(kind, setting, list(values)), 0
            for member in r.members.values():
                member.value = self._next_value(r)

        with self._lock:
            self._change(room, assign)
            room = self.rooms.get(room.code, room)
            for member in room.members.values():
                self._save_member(room, member)

    def stop_experiment(self, room: Room) -> None:
        def clear(r: Room) -> None:
            r.experiment = None
            for member in r.members.values():
                member.value = None

        with self._lock:
            self._change(room, clear)
            room = self.rooms.get(room.code, room)
            for member in room.members.values():
                self._save_member(room, member)

    def set_names_shown(self, room: Room, shown: bool) -> None:
        self._change(room, lambda r: setattr(r, "show_names", bool(shown)))

    def remove_run(self, room: Room, run_id: str) -> None:
        self._change(room, lambda r: r.removed.add(str(run_id).lstrip("#")))

    def close(self, room: Room) -> None:
        now = self.clock()
        self._change(room, lambda r: setattr(r, "closed_at", r.closed_at if r.closed_at is not None else now))

    # ---- the learner's side ------------------------------------------------------------------------
    def join(self, code, owner: str, name, lang: str = "en", client: str = "") -> Member:
        """Put `owner` in the class (leaving any other): a generated name unless they gave one. Refusals:
        cl_slow_down (too many failed joins from this address), cl_refused (no such class), cl_closed, cl_full."""
        with self._lock:
            self._check_rate(client)
            room = self._room(code, fresh=True)
            if room is None:
                self._fail(client)
                raise ClassError("cl_refused")
            if room.closed_at is not None:
                raise ClassError("cl_closed")
            member = room.members.get(owner)
            if member is None and len(room.members) >= MAX_LEARNERS:
                raise ClassError("cl_full", max=MAX_LEARNERS)
            self.leave(owner, keep=room.code)
            wanted = clean_name(name)
            if member is None:
                member = Member(owner=owner, name=self._unique(room, wanted or self.generated_name(lang)), joined=self.clock())
                room.members[owner] = member

                def hand_out(r: Room) -> None:  # the next experiment value, at the class's revision
                    member.value = self._next_value(r) if r.experiment is not None else None
                    r.members.setdefault(owner, member)

                self._change(room, hand_out)
                room = self.rooms.get(room.code, room)
            elif wanted:
                member.name = self._unique(room, wanted, owner)
            self.of_owner[owner] = room.code
            room.seen_at = self.clock()
            self._save_member(room, member)
            return member

    def _room(self, code, fresh: bool = False) -> Room | None:
        """The class with this code. With other processes: read from the database when this process does not know
        it yet (created on another replica a moment ago) or when `fresh` (a join: its members and next value as every
        replica has them now)."""
        code = normal_code(code)
        self.sync()
        room = self.rooms.get(code)
        if code and self._shared() and (fresh or room is None):
            try:
                room = self._reload(code)
            except Exception:
                log.exception("class %s could not be read; using this process's copy", code)
        return room

    def membership(self, owner) -> tuple[Room, Member] | None:
        self.sync()
        if self._shared() and owner and owner not in self.of_owner:
            self.sync(force=True)  # joined on another replica a moment ago
        code = self.of_owner.get(owner or "")
        room = self.rooms.get(code or "")
        if room is None or owner not in room.members:
            return None
        return room, room.members[owner]

    def rename(self, owner: str, name) -> Member:
        found = self.membership(owner)
        if found is None:
            raise ClassError("cl_not_in_class")
        room, member = found
        wanted = clean_name(name)
        if not wanted:
            raise ClassError("cl_name_empty")
        with self._lock:
            member.name = self._unique(room, wanted, owner)
            self._save_member(room, member)
        return member

    def share(self, owner: str, run_id: str, shared: bool) -> None:
        found = self.membership(owner)
        if found is None:
            raise ClassError("cl_not_in_class")
        room, member = found
        (member.unshared.discard if shared else member.unshared.add)(str(run_id).lstrip("#"))
        self._save_member(room, member)

    def leave(self, owner: str, keep: str | None = None) -> None:
        """Leave the owner's class (their runs stay theirs, and leave the board)."""
        with self._lock:
            code = self.of_owner.pop(owner, None)
            room = self.rooms.get(code or "")
            if room is None or code == keep:
                return
            room.members.pop(owner, None)
            room.version += 1
            self._write(self.store and self.store.delete_member, code, owner)

    def generated_name(self, lang: str) -> str:
        table = json.loads(NAMES.read_text(encoding="utf-8"))
        words = table.get(lang) or table["en"]
        return f"{self._rng.choice(words['adjectives'])} {self._rng.choice(words['animals'])}"

    # ---- keeping ---------------------------------------------------------------------------------
    def expire(self) -> None:
        """Forget classes unused for the retention (HML_KEEP_DAYS), their rows too."""
        now = self.clock()
        with self._lock:
            for code in [c for c, r in self.rooms.items() if now - r.seen_at > self.ttl_s]:
                room = self.rooms.pop(code)
                for owner in room.members:
                    if self.of_owner.get(owner) == code:
                        del self.of_owner[owner]
                self._write(self.store and self.store.delete_class, code)

    def _shared(self) -> bool:
        return self.store is not None and getattr(self.store, "shared", False)

    def _check_rate(self, client: str) -> None:
        try:
            ok = self.limit.allowed(client)
        except Exception:  # the database went away for a moment: let the join be tried (a failure is still counted)
            log.exception("failed joins could not be counted")
            ok = True
        if not ok:
            raise ClassError("cl_slow_down")

    def _fail(self, client: str) -> None:
        try:
            self.limit.failed(client)
        except Exception:
            log.exception("a failed join could not be counted")

    def _next_value(self, room: Room):
        values = room.experiment.values
        value = values[room.next_value % len(values)]
        room.next_value += 1
        return value

    def _unique(self, room: Room, name: str, owner: str | None = None) -> str:
        taken = {m.name for o, m in room.members.items() if o != owner}
        if name not in taken:
            return name
        n = 2
        while f"{name[:MAX_NAME - 3]} {n}" in taken:
            n += 1
        return f"{name[:MAX_NAME - 3]} {n}"
