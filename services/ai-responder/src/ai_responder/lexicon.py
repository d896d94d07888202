"""What the assistant knows of the language of customer support before any tenant writes a word.

`GENERIC_SYNONYMS` are groups of Italian and English words customers use for the same thing when
they ask a business about its tickets, hours, place, visit or contacts. They are the default
glossary of every tenant (a tenant's `synonyms.yaml` adds its own), so a plain knowledge base that
says "costs" finds "how much", "ticket office" finds "biglietteria" and "car park" finds "parking",
with no keyword list in any article. Only words that mean the same thing in every business belong
here; anything about one tenant belongs in its glossary.

`QUALIFIERS` are words that refine a question without changing its topic ("the *exact* address",
"where *exactly*"): retrieval ignores them, so they neither help nor hurt.

`PARTY_WORDS` say who the customer comes with ("siamo una famiglia di 4, quanto spendiamo?"): they
count when the knowledge base mentions them (a family ticket), but in a question about prices a
knowledge base that never does still answers with its price list.
"""

from __future__ import annotations

from ai_responder.text import word_set

GENERIC_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("biglietto", "biglietti", "ticket", "tickets", "ingresso", "admission", "entry", "entrance fee"),
    ("prezzo", "prezzi", "costo", "costa", "costano", "tariffa", "tariffe", "price", "prices", "cost", "costs", "fee"),
    ("pagare", "paga", "pagano", "pagamento", "pagamenti", "pay", "paying", "payment", "payments"),
    ("carta", "carte", "bancomat", "card", "cards", "credit", "debit", "contanti", "cash"),
    ("gratis", "gratuito", "gratuita", "gratuiti", "free"),
    ("sconto", "sconti", "ridotto", "riduzione", "riduzioni", "discount", "discounts", "reduced", "concession"),
    ("anziani", "anziano", "pensionato", "pensionati", "senior", "seniors", "pensioner", "pensioners", "elderly"),
    ("studente", "studenti", "universitari", "universitario", "student", "students", "university"),
    ("bambini", "bambino", "figli", "figlio", "piccoli", "children", "child", "kids", "kid", "toddler", "toddlers"),
    ("ragazzi", "ragazzo", "giovani", "teenagers", "teenager", "teens", "young"),
    ("famiglia", "famiglie", "family", "families"),
    ("adulti", "adulto", "intero", "interi", "adult", "adults", "full", "standard"),
    ("orario", "orari", "hours", "times", "schedule", "timetable"),
    # Open and closed are one topic: a question about closing time is answered by the opening hours,
    # and "closed on Mondays" answers "are you open on Monday?".
    (
        "aperto",
        "aperti",
        "aperta",
        "apertura",
        "aprite",
        "apre",
        "aprono",
        "chiuso",
        "chiusi",
        "chiusura",
        "chiude",
        "chiudete",
        "chiudono",
        "open",
        "opens",
        "opening",
        "closed",
        "closing",
        "close",
        "closes",
    ),
    (
        "prenotare",
        "prenotazione",
        "prenotazioni",
        "prenotiamo",
        "book",
        "booking",
        "bookings",
        "reserve",
        "reservation",
    ),
    ("comprare", "acquistare", "acquisto", "comprano", "buy", "purchase", "sold", "sell"),
    ("online", "internet", "sito", "website", "web"),
    ("dove", "indirizzo", "posizione", "where", "address", "location", "located"),
    ("arrivare", "arrivo", "raggiungere", "raggiungervi", "arrive", "reach", "directions", "route"),
    ("treno", "treni", "stazione", "train", "trains", "station", "railway"),
    ("traghetto", "traghetti", "battello", "battelli", "barca", "ferry", "ferries", "boat", "boats"),
    ("auto", "macchina", "car", "drive", "driving"),
    ("parcheggio", "parcheggiare", "parcheggi", "posteggio", "parking", "park"),
    ("disabili", "disabile", "disabilita", "disabled", "disability", "disabilities", "handicap"),
    ("accessibile", "accessibili", "accessibilita", "accessible", "accessibility", "barriere", "step"),
    ("carrozzina", "rotelle", "wheelchair", "wheelchairs"),
    ("ascensore", "lift", "elevator"),
    ("cane", "cani", "animali", "animale", "dog", "dogs", "pet", "pets", "animals"),
    ("foto", "fotografie", "fotografare", "fotografia", "photo", "photos", "pictures", "picture", "photography"),
    ("guardaroba", "armadietti", "armadietto", "cloakroom", "locker", "lockers", "luggage"),
    ("zaino", "zaini", "valigia", "valigie", "borsa", "backpack", "backpacks", "suitcase", "suitcases", "bag", "bags"),
    ("lasciare", "lascio", "leave", "left", "deposit"),
    ("dura", "durata", "durano", "tempo", "long", "duration", "last", "lasts"),
    ("entrare", "entra", "entrano", "entrata", "ingresso", "enter", "entry", "entrance", "admission"),
    ("sera", "sere", "serata", "serale", "stasera", "evening", "evenings", "tonight", "night"),
    ("evento", "eventi", "manifestazione", "event", "events"),
    ("finisce", "termina", "until", "end", "ends"),
    ("estate", "estivo", "estiva", "luglio", "agosto", "summer", "july", "august"),
    ("weekend", "settimana", "sabato", "domenica", "saturday", "sunday", "weekends"),
    ("bar", "caffe", "caffetteria", "cafe", "coffee", "snack"),
    ("negozio", "bookshop", "souvenir", "shop", "store"),
    ("wifi", "internet", "wireless"),
    ("audioguida", "audioguide", "audio"),
    ("contattare", "contattarvi", "contatti", "contatto", "contact", "reach you"),
    ("telefono", "telefonare", "chiamare", "numero", "phone", "call", "telephone", "number"),
    ("email", "mail", "posta", "e-mail"),
    ("visita", "visite", "visitare", "visit", "visits", "visiting", "tour", "tours"),
    ("guida", "guidata", "guidate", "guided", "guide"),
    ("laboratorio", "laboratori", "workshop", "workshops", "activities", "activity", "attivita"),
    ("mostra", "mostre", "esposizione", "exhibition", "exhibitions", "exhibit"),
    ("buono", "buoni", "voucher", "vouchers", "gift card"),
    ("regalo", "regalare", "gift", "present"),
    ("rimborso", "rimborsi", "rimborsabili", "refund", "refunds", "refundable"),
    ("mangiare", "bere", "cibo", "eat", "eating", "drink", "drinking", "food"),
    (
        "navetta",
        "bus",
        "autobus",
        "shuttle",
        "pullman",
        "coach",
        "trasporto",
        "trasporti",
        "mezzi",
        "transport",
        "pubblici",
        "public",
    ),
    ("gruppo", "gruppi", "comitiva", "group", "groups", "party"),
    ("scuola", "scuole", "classe", "scolaresca", "school", "schools", "class"),
)

QUALIFIERS: frozenset[str] = word_set(
    """
    esatto esatta esatti esatte esattamente preciso precisa precisi precisamente precisione
    specifico specifica specificamente circa approssimativamente indicativamente veramente davvero
    effettivamente praticamente esattezza magari eventualmente comunque dunque tuttavia invece
    exact exactly precise precisely specific specifically approximately roughly actually really
    basically anyway somewhere anywhere something anything someone somebody kindly possibly
    probably perhaps maybe please currently usually normally generally typically current now ongoing
    attuale attualmente adesso ora momento quanto quanta quanti quante much
    prendere prendo trovare trovo usare take find use dentro inside within stare restare rimanere stay
    passa passare mattina mattino morning pomeriggio afternoon nearby vicino vicini friendly offer offrite
    provide fornite necessario necessaria necessari necessarie obbligatorio obbligatoria required necessary
    mandatory compulsory tanto tanta tanti tante molta molti lots fino
    """
)

PARTY_WORDS: frozenset[str] = word_set(
    """
    famiglia famiglie family families coppia coppie couple couples
    """
)
