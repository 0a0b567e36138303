"""The simulated phone's data: what its apps store. Task checks compare this state, never the actions.

`seed_world` fills a phone with seeded, plausible data (contacts, conversations, events, alarms, files,
notes, settings) so every episode starts on a different but reproducible device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FIRST_NAMES = ["Ana", "Bob", "Chen", "Dara", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jonas", "Kai", "Lena",
               "Maya", "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomás", "Uma", "Vera", "Wen", "Yara", "Zoe"]
LAST_NAMES = ["Lopez", "Smith", "Wang", "Okafor", "Yilmaz", "Adeyemi", "Kim", "Martin", "Silva", "Berg",
              "Tanaka", "Novak", "Patel", "Müller", "Haddad", "Costa", "Ivanova", "Reyes", "Nakamura", "Olsen"]
PHRASES = ["See you at noon", "Running ten minutes late", "Can you call me back", "Thanks for the help",
           "Dinner is at eight", "The package arrived", "Happy birthday", "Meeting moved to Friday",
           "Bring the blue folder", "Tickets are booked", "Where did you park", "Lunch tomorrow",
           "I left my keys at home", "Good luck with the exam", "The train is delayed", "Call the plumber"]
EVENT_TITLES = ["Dentist", "Team sync", "Yoga class", "Parent meeting", "Flight to Lisbon", "Book club",
                "Car service", "Piano lesson", "Project review", "Lunch with Sam", "Gym", "Doctor visit",
                "Haircut", "Budget planning", "Movie night", "Visa interview"]
FILE_STEMS = ["invoice", "holiday", "report", "resume", "receipt", "scan", "slides", "recipe", "contract",
              "boarding_pass", "photo", "budget", "notes", "manual", "ticket", "letter", "draft", "map"]
FILE_EXTS = [".pdf", ".jpg", ".docx", ".png", ".txt", ".xlsx", ".mp3"]
NOTE_TITLES = ["Groceries", "Ideas", "Packing list", "Books to read", "Gift ideas", "Workout", "Passwords hint",
               "Garden", "Recipes", "Weekend plan", "Call list", "Meeting notes"]
NOTE_WORDS = ["milk", "eggs", "call mom", "pay rent", "buy stamps", "water plants", "oil change", "apples",
              "sunscreen", "charger", "renew passport", "book flights", "tea", "bread", "batteries"]
TIMEOUTS = ["15 seconds", "30 seconds", "1 minute", "2 minutes", "5 minutes", "10 minutes", "30 minutes"]


@dataclass
class Contact:
    name: str
    phone: str
    email: str = ""
    favorite: bool = False


@dataclass
class Message:
    outgoing: bool
    text: str
    time: str


@dataclass
class Conversation:
    peer: str  # a contact's name, or a phone number
    messages: list[Message] = field(default_factory=list)


@dataclass
class Event:
    title: str
    date: str  # YYYY-MM-DD
    start: str  # HH:MM
    location: str = ""


@dataclass
class Alarm:
    hour: int
    minute: int
    label: str = ""
    enabled: bool = True

    @property
    def time(self) -> str:
        return f"{self.hour}:{self.minute:02d}"


@dataclass
class Settings:
    airplane_mode: bool = False
    wifi: bool = True
    mobile_data: bool = True
    bluetooth: bool = False
    dark_theme: bool = False
    do_not_disturb: bool = False
    screen_timeout: str = "30 seconds"
    hotspot: bool = False
    nfc: bool = False
    adaptive_brightness: bool = True
    auto_rotate: bool = False
    vibrate_for_calls: bool = True
    battery_saver: bool = False
    location: bool = True


@dataclass
class File:
    name: str
    size_kb: int


@dataclass
class Note:
    title: str
    body: str


@dataclass
class PhoneState:
    clock: str = "09:41"
    today: str = "2026-03-02"
    contacts: list[Contact] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    files: list[File] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    answer: str | None = None  # the agent's `answer` action, for question tasks

    def contact(self, name: str) -> Contact | None:
        return next((c for c in self.contacts if c.name.casefold() == name.casefold()), None)

    def conversation(self, peer: str) -> Conversation | None:
        return next((c for c in self.conversations if c.peer.casefold() == peer.casefold()), None)

    def send_message(self, recipient: str, text: str) -> str:
        """Append an outgoing message to the conversation with `recipient` (a contact's name, any case, or a
        number), creating the conversation if needed; returns its peer."""
        contact = self.contact(recipient)
        peer = contact.name if contact else recipient
        conv = self.conversation(peer)
        if conv is None:
            conv = Conversation(peer)
            self.conversations.append(conv)
        conv.messages.append(Message(True, text, self.clock))
        return peer

    def comparable(self) -> tuple:
        """The state with the order of unordered collections removed, for exact task checks."""
        return (sorted(map(repr, self.contacts)), sorted(map(repr, self.conversations)), sorted(map(repr, self.events)),
                sorted(map(repr, self.alarms)), repr(self.settings), sorted(map(repr, self.files)),
                sorted(map(repr, self.notes)))


def pick(rng: np.random.Generator, items: list, k: int | None = None):
    if k is None:
        return items[int(rng.integers(len(items)))]
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]


def phone_number(rng: np.random.Generator) -> str:
    return f"555-{int(rng.integers(100, 10000)):04d}"


def time_str(rng: np.random.Generator, lo: int = 7, hi: int = 21) -> str:
    return f"{int(rng.integers(lo, hi)):02d}:{pick(rng, [0, 15, 30, 45]):02d}"


def seed_world(rng: np.random.Generator) -> PhoneState:
    firsts = pick(rng, FIRST_NAMES, 16)
    names = [f"{f} {pick(rng, LAST_NAMES)}" for f in firsts]
    contacts = [Contact(n, phone_number(rng), email=f"{n.split()[0].lower()}@example.com" if rng.random() < 0.3 else "")
                for n in names]
    conversations = []
    for name in pick(rng, names, 5):
        msgs = [Message(bool(rng.random() < 0.5), pick(rng, PHRASES), time_str(rng)) for _ in range(int(rng.integers(1, 4)))]
        conversations.append(Conversation(name, sorted(msgs, key=lambda m: m.time)))
    day = int(rng.integers(2, 20))
    events = [Event(t, f"2026-03-{day + int(rng.integers(0, 9)):02d}", time_str(rng))
              for t in pick(rng, EVENT_TITLES, 7)]
    alarms = []
    for _ in range(4):
        h, m = int(rng.integers(5, 23)), int(pick(rng, [0, 10, 15, 20, 30, 40, 45, 50]))
        if all((a.hour, a.minute) != (h, m) for a in alarms):
            alarms.append(Alarm(h, m, enabled=bool(rng.random() < 0.6)))
    stems = pick(rng, FILE_STEMS, 11)
    files = [File(s + pick(rng, FILE_EXTS), int(rng.integers(12, 9000))) for s in stems]
    notes = [Note(t, ", ".join(pick(rng, NOTE_WORDS, 3))) for t in pick(rng, NOTE_TITLES, 5)]
    settings = Settings(wifi=bool(rng.random() < 0.8), bluetooth=bool(rng.random() < 0.4),
                        dark_theme=bool(rng.random() < 0.3), screen_timeout=pick(rng, TIMEOUTS[:4]))
    return PhoneState(clock=time_str(rng, 8, 12), today="2026-03-02", contacts=contacts, conversations=conversations,
                      events=events, alarms=alarms, settings=settings, files=files, notes=notes)
