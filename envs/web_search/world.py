"""A procedurally generated knowledge world: interlinked pages about people, cities, countries,
organisations and events, seeded and deterministic, built in O(n) so it scales to 100k+ pages.

Every relation is functional (a person has one birthplace, an organisation one founder, ...), so a chain
of relations from a uniquely described start entity has exactly one answer. Names are deliberately shared
(two or three people called "Alan Verdi", cities called "Port Ardel" in different countries), so one
search rarely suffices: the agent must open pages and check the distinguishing facts. Each relation is
written on the subject's page as one self-contained sentence that names the object and its page id, e.g.
``Alan Verdi was born in Port Ardel (city-000017).`` — that sentence is the hop's supporting statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agentgym.envs.web_search.corpus import Document

KINDS = ("person", "org", "city", "country", "event")
URL_BASE = "https://kb.agentgym.local/wiki/"

# relation -> (subject kind, object kind, statement template over subject/object names)
RELATIONS: dict[str, tuple[str, str, str]] = {
    "birthplace": ("person", "city", "{s} was born in {o}."),
    "employer": ("person", "org", "{s} works for {o}."),
    "mentor": ("person", "person", "{s} was mentored by {o}."),
    "headquarters": ("org", "city", "{s} is headquartered in {o}."),
    "founder": ("org", "person", "{s} was founded by {o}."),
    "country": ("city", "country", "{s} is a city in {o}."),
    "mayor": ("city", "person", "The mayor of {s} is {o}."),
    "capital": ("country", "city", "The capital of {s} is {o}."),
    "venue": ("event", "city", "{s} was held in {o}."),
    "organiser": ("event", "org", "{s} was organised by {o}."),
}

_FIRST = ("Alan Mira Tomas Ines Oskar Lena Ravi Sofia Pavel Amara Jonas Kira Milo Hana Emil Zara Luca Noor "
          "Felix Ada Iker Yara Anton Lina Bruno Maya Cyrus Elif Dario Nia Hugo Vera Idris Rosa Kenji Tala "
          "Marek Odile Sami Greta").split()
_SYL_A = "ka ver lo mir an tes bel dor ri sa vol ne ar quin hal to zer pa lun fen or gal mo cas".split()
_SYL_B = "di ra len vo ta mes ri no gan bi sel ro vik da lor ni pe ton".split()
_SYL_C = "n s th r l sk x m d ck".split() + [""]
_ORG_TAIL = ("Dynamics Holdings Institute Works Collective Labs Foundry Trust Guild Partners Company Society "
             "Press Observatory Bank Studios").split()
_CITY_PRE = ["", "", "", "Port ", "New ", "East ", "Upper ", "San "]
_PROFESSIONS = ("painter engineer chemist poet architect historian composer surgeon economist botanist "
                "sculptor astronomer journalist cartographer linguist").split()
_ORG_KINDS = "bank university publisher shipyard laboratory studio foundation brewery museum airline".split()
_EVENT_KINDS = "Festival Summit Congress Regatta Exposition Symposium Games Fair".split()
_TRAITS = ("collected rare maps", "kept a large garden", "spoke four languages", "wrote an unpublished memoir",
           "restored an old observatory", "was a keen chess player", "funded a public library",
           "travelled widely by train", "taught evening classes", "studied early printing presses")
_EVENT_FACTS = ("drew large crowds", "was broadcast on national radio", "ended a day late because of storms",
                "was reviewed in several newspapers", "sold out within a week", "introduced a new award")
_ORG_FACTS = ("employs several hundred people", "publishes an annual report", "moved offices twice",
              "sponsors a local football club", "keeps a public archive", "was once nearly bankrupt")
_CITY_FACTS = ("is known for its covered markets", "sits beside a wide river", "has a historic stone bridge",
               "hosts a weekly book fair", "is surrounded by vineyards", "has a large botanical garden")


def _word(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    parts = [_SYL_A[int(rng.integers(len(_SYL_A)))]] + [_SYL_B[int(rng.integers(len(_SYL_B)))] for _ in range(n - 1)]
    return ("".join(parts) + _SYL_C[int(rng.integers(len(_SYL_C)))]).capitalize()


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    year: int
    category: str = ""  # profession (person) or kind of organisation
    rel: dict[str, str] = field(default_factory=dict)  # relation -> object entity id

    def descriptor(self) -> str:
        """A description that singles this entity out, as a question names it."""
        if self.kind == "person":
            return f"{self.name} ({self.category}, born {self.year})"
        if self.kind == "org":
            return f"{self.name} ({self.category}, founded {self.year})"
        if self.kind == "city":
            return f"{self.name} (city founded {self.year})"
        if self.kind == "event":
            return f"{self.name} ({self.year})"
        return self.name

    def lead(self) -> str:
        """The page's first sentence: the same distinguishing facts as the descriptor."""
        if self.kind == "person":
            return f"{self.name} (born {self.year}) is a {self.category}."
        if self.kind == "org":
            return f"{self.name} is a {self.category} founded in {self.year}."
        if self.kind == "city":
            return f"{self.name} is a city founded in {self.year}."
        if self.kind == "event":
            return f"{self.name} took place in {self.year}."
        return f"{self.name} is a country."


class World:
    """The generated entities and their pages. ``World(n_pages, seed)`` is deterministic."""

    def __init__(self, n_pages: int = 3000, seed: int = 0):
        if n_pages < 50:
            raise ValueError(f"a world needs at least 50 pages, got n_pages={n_pages}")
        self.n_pages, self.seed = n_pages, seed
        rng = np.random.default_rng([seed, 7])
        counts = {"country": max(6, n_pages // 150), "city": n_pages * 15 // 100, "org": n_pages * 15 // 100,
                  "event": n_pages // 10}
        counts["person"] = n_pages - sum(counts.values())
        self.entities: dict[str, Entity] = {}
        self.by_kind: dict[str, list[str]] = {k: [] for k in KINDS}
        for kind in ("country", "city", "org", "event", "person"):
            self._make_kind(kind, counts[kind], rng)
        self._link(rng)

    # ---- generation -------------------------------------------------------------------------------
    def _make_kind(self, kind: str, n: int, rng: np.random.Generator) -> None:
        # Names come from a pool smaller than n (except countries), so most names are shared by 2-3 entities;
        # (name, year, category) stays unique so a descriptor names exactly one entity.
        pool_size = n if kind == "country" else max(1, n * 2 // 5)
        pool = self._name_pool(kind, pool_size, rng)
        seen: set[tuple[str, int, str]] = set()
        for i in range(n):
            name = pool[i] if kind == "country" or i < pool_size else pool[int(rng.integers(pool_size))]
            category = ""
            if kind == "person":
                category = _PROFESSIONS[int(rng.integers(len(_PROFESSIONS)))]
            elif kind == "org":
                category = _ORG_KINDS[int(rng.integers(len(_ORG_KINDS)))]
            year = int(rng.integers(1800, 2020))
            while (name, year, category) in seen:
                year = 1800 + (year - 1799) % 220
            seen.add((name, year, category))
            ent = Entity(id=f"{kind}-{i:06d}", kind=kind, name=name, year=year, category=category)
            self.entities[ent.id] = ent
            self.by_kind[kind].append(ent.id)

    def _name_pool(self, kind: str, n: int, rng: np.random.Generator) -> list[str]:
        names: list[str] = []
        used: set[str] = set()
        while len(names) < n:
            if kind == "person":
                name = f"{_FIRST[int(rng.integers(len(_FIRST)))]} {_word(rng)}"
            elif kind == "org":
                name = f"{_word(rng)} {_ORG_TAIL[int(rng.integers(len(_ORG_TAIL)))]}"
            elif kind == "city":
                name = _CITY_PRE[int(rng.integers(len(_CITY_PRE)))] + _word(rng)
            elif kind == "event":
                name = f"{_word(rng)} {_EVENT_KINDS[int(rng.integers(len(_EVENT_KINDS)))]}"
            else:
                name = _word(rng) + ("ia" if rng.random() < 0.5 else "land")
            if name not in used:
                used.add(name)
                names.append(name)
        return names

    def _link(self, rng: np.random.Generator) -> None:
        ids = {k: np.array(v) for k, v in self.by_kind.items()}
        for rel, (subj, obj, _) in RELATIONS.items():
            subjects, objects = ids[subj], ids[obj]
            choice = rng.integers(len(objects), size=len(subjects))
            for s, j in zip(subjects, choice):
                o = str(objects[j])
                if o == s:  # nobody mentors themselves
                    o = str(objects[(j + 1) % len(objects)])
                self.entities[str(s)].rel[rel] = o

    # ---- reading ----------------------------------------------------------------------------------
    def statement(self, subject_id: str, relation: str) -> str:
        """The sentence on the subject's page that states `relation` (the hop's evidence)."""
        s = self.entities[subject_id]
        o = self.entities[s.rel[relation]]
        return RELATIONS[relation][2].format(s=s.name, o=f"{o.name} ({o.id})")

    def url(self, entity_id: str) -> str:
        return URL_BASE + entity_id

    def page_text(self, ent: Entity) -> str:
        rng = np.random.default_rng([self.seed, int(ent.id.rsplit("-", 1)[1]), KINDS.index(ent.kind)])
        sentences = [self.statement(ent.id, rel) for rel in ent.rel]
        facts = {"person": _TRAITS, "event": _EVENT_FACTS, "org": _ORG_FACTS}.get(ent.kind, _CITY_FACTS)
        label = {"org": "organisation"}.get(ent.kind, ent.kind)
        for j in rng.choice(len(facts), size=3, replace=False):
            subject = ent.name if ent.kind == "person" else f"The {label} {ent.name}"
            sentences.append(f"{subject} {facts[int(j)]}.")
        order = rng.permutation(len(sentences))
        return " ".join([ent.lead()] + [sentences[int(i)] for i in order])

    def documents(self) -> list[Document]:
        return [Document(id=e.id, title=e.name, text=self.page_text(e), url=self.url(e.id))
                for e in self.entities.values()]
