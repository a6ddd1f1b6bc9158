"""Makes `ner_dataset.csv`, the embedded NER corpus, deterministically.

Sentences come from templates whose slots are filled with entities of all
eight GMB types (geo, org, per, gpe, tim, art, eve, nat), several of them
multi-token. Half the names are composed at random (people from first and
last names, places and organisations from invented words), so most held-out
sentences hold entities never seen in training and a model must read context
and word shape; some slots take entities of several types in the same
context, some words are entities of different types or none ("May",
"Jordan"), and some sentences have no entity. Written in the
GMB/Kaggle `ner_dataset.csv` format:
`Sentence #,Word,POS,Tag`, the sentence number only on a sentence's first row,
Latin-1 like the original file. The same seed always gives the same file.

    python data/ner/make_corpus.py [--sentences N] [--out PATH]
"""

import argparse
import csv
import os
import random

SEED = 20261123
DEFAULT_SENTENCES = 2500

ENTITIES = {
    "per": [
        "John Smith", "Maria Garcia", "Ahmed Hassan", "Li Wei", "Anna Müller",
        "George Bush", "Tony Blair", "Vladimir Putin", "Angela Merkel", "Kofi Annan",
        "Hugo Chávez", "Condoleezza Rice", "Ban Ki-moon", "Pervez Musharraf", "Mahmoud Abbas",
        "Sarah Johnson", "David Cameron", "Jacques Chirac", "Nelson Mandela", "Yasser Arafat",
        "Ehud Olmert", "Hamid Karzai", "Luiz Inácio Lula", "Kim Jong-il", "Gordon Brown",
    ],
    "geo": [
        "London", "Paris", "Baghdad", "New York", "Washington", "Iraq", "Afghanistan",
        "Beijing", "Moscow", "Gaza", "Tehran", "Kabul", "Berlin", "Tokyo", "Cairo",
        "São Paulo", "Zürich", "Darfur", "Europe", "Middle East", "North Korea",
        "Pakistan", "Mumbai", "Jerusalem", "Latin America", "South Africa", "Jordan",
    ],
    "org": [
        "United Nations", "European Union", "NATO", "World Bank", "Reuters", "Hamas",
        "Taleban", "Red Cross", "International Monetary Fund", "Associated Press",
        "World Health Organization", "al-Qaida", "Security Council", "Congress",
        "Microsoft", "Toyota", "African Union", "Supreme Court", "Hezbollah", "OPEC",
    ],
    "gpe": [
        "Iraqi", "American", "British", "French", "Chinese", "Russian", "Israeli",
        "Palestinian", "Iranian", "Afghan", "Pakistani", "German", "Japanese",
        "Egyptian", "Indian", "Syrian", "Turkish", "Kurdish", "Shi'ite", "Sunni",
    ],
    "tim": [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
        "Monday evening", "Friday night", "2005", "2006", "January", "March 2004",
        "last year", "October 12", "the 1990s", "Sunday morning", "December",
    ],
    "art": [
        "Mona Lisa", "Titanic", "Harry Potter", "Windows Vista", "Da Vinci Code",
        "Nobel Prize", "Koran", "Bible", "Star Wars", "iPod",
    ],
    "eve": [
        "World Cup", "Olympic Games", "Second World War", "Ramadan", "Christmas",
        "Tour de France", "Cold War", "Wimbledon", "Super Bowl", "Hajj",
    ],
    "nat": [
        "Hurricane Katrina", "H5N1", "bird flu", "Hurricane Rita", "tsunami",
        "Hurricane Wilma", "SARS", "Ebola", "avian influenza", "El Niño",
    ],
}

FIRST = ["John", "Maria", "Ahmed", "Li", "Anna", "Pedro", "Fatima", "Ivan", "Chen", "Olga",
         "Samuel", "Aisha", "Carlos", "Yuki", "Omar", "Elena", "Raj", "Grace", "Tomas", "Leila"]
LAST = ["Smith", "Garcia", "Hassan", "Wei", "Kovacs", "Novak", "Okafor", "Tanaka", "Rossi",
        "Petrov", "Haddad", "Silva", "Nguyen", "Jordan", "Brennan", "Mbeki", "Sato", "Larsen"]
SYLLABLES = ["ka", "lor", "bre", "vin", "ta", "mo", "ru", "sen", "dal", "qui", "zor", "ne", "pa", "el"]
PLACE_ENDS = ["ia", "stan", "ville", "grad", "ton", "burg", "polis"]
ORG_KINDS = ["Bank", "Party", "Ministry", "Institute", "University", "Corporation", "Council", "Front"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _composed(kind: str, rng: random.Random) -> str:
    """A name of type `kind` that no list holds; a third of people, places and
    organisations are bare invented words, whose type only context can tell."""
    if kind in ("per", "geo", "org") and rng.random() < 1 / 3:
        return _word(rng)
    if kind == "per":
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if kind == "geo":
        return _word(rng) + rng.choice(PLACE_ENDS)
    if kind == "org":
        return rng.choice([f"{_word(rng)} {rng.choice(ORG_KINDS)}",
                           "".join(rng.choice("ABCDEFGHKLMNPRSTU") for _ in range(rng.randint(3, 4)))])
    if kind == "gpe":
        return _word(rng) + rng.choice(["ian", "ese", "i"])
    if kind == "tim":
        return rng.choice([f"{rng.choice(MONTHS)} {rng.randint(1, 28)}", str(rng.randint(1980, 2012)),
                           f"{rng.choice(MONTHS)} {rng.randint(1980, 2012)}"])
    if kind == "art":
        return f"{_word(rng)} {rng.choice(['Code', 'Diaries', 'Prize', 'Chronicles'])}"
    if kind == "eve":
        return f"{rng.randint(1990, 2012)} {rng.choice(['Olympics', 'World Cup', 'Summit', 'Games'])}"
    return f"Hurricane {_word(rng)}"


TEMPLATES = [
    "{per} met {per|org} in {geo|tim} on {tim} .",
    "The {org|per} said {tim} that {gpe} troops had entered {geo} .",
    "{per} , the {gpe} leader , visited {geo} {tim} .",
    "Officials from the {org} attended the {eve} in {geo} .",
    "The {art} was shown in {geo} during the {eve} .",
    "{nat} struck {geo} {tim} , killing dozens of people .",
    "{gpe} officials warned that {nat} could spread across {geo} .",
    "Thousands of demonstrators marched through {geo} on {tim} to protest the war .",
    "{org|gpe} spokesman {per} told {org|per} the talks would resume {tim} .",
    "The {gpe} government has rejected a {org} report on {geo} .",
    "{per} won the {eve} {tim} in {geo} .",
    "Police in {geo|tim} arrested {per|org} after the attack on {tim|geo} .",
    "A copy of the {art} was sold in {geo} for a record price .",
    "Health experts in {geo} are monitoring {nat} cases reported {tim} .",
    "{gpe} and {gpe} leaders will meet in {geo} before the {eve} .",
    "The {org} has approved new aid for {geo} .",
    "{per} said the economy of {geo} grew faster than expected in {tim} .",
    "Rebels attacked a convoy near {geo} , the {org} said .",
    "Prices rose sharply after {nat} hit {geo} .",
    "{per} is expected to travel to {geo} {tim} for talks with {per} .",
    "The {eve} ended {tim} with a ceremony in {geo} .",
    "Critics say the {art} offended many {gpe} citizens .",
    "Oil prices fell on {tim} as {org} agreed to raise output .",
    "{gpe} forces killed three militants in {geo} , officials said .",
    "Voters in {geo} go to the polls on {tim} .",
    "The minister said the {org} would not negotiate with {org} .",
    "He said the plan will be presented to {per} in {geo} .",
    "Most people here have never heard of the {art} .",
    "The talks may resume next week , officials said .",
    "Prices of wheat and rice rose again in the markets .",
    "Elections are due in {tim} , and {per} may stand again .",
    "Michael Jordan is not the {per} who spoke in {geo} .",
    "{per|org|gpe} said the vote in {geo|tim} was delayed until {tim} .",
    "Reports from {geo|org|per} about the {eve|art|nat} surprised many .",
    "Troops from {gpe} units crossed into {geo} overnight .",
    "The {org} signed an agreement with the {org} in {geo} .",
]

POS = {".": ".", ",": ",", "the": "DT", "The": "DT", "a": "DT", "A": "DT", "in": "IN",
       "of": "IN", "on": "IN", "to": "TO", "and": "CC", "said": "VBD", "that": "IN"}


def _fill(template: str, rng: random.Random):
    """Tokens and IOB tags of one sentence."""
    tokens, tags = [], []
    if template.startswith("Michael Jordan"):
        tokens, tags = ["Michael", "Jordan"], ["B-per", "I-per"]
        template = template[len("Michael Jordan ") :]
    for word in template.split():
        if word.startswith("{") and word.endswith("}"):
            kind = rng.choice(word[1:-1].split("|"))
            name = rng.choice(ENTITIES[kind]) if rng.random() < 0.5 else _composed(kind, rng)
            entity = name.split()
            tokens += entity
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    return tokens, tags


def sentences(count: int, seed: int = SEED):
    """`count` (tokens, tags) pairs, the same for the same seed."""
    rng = random.Random(seed)
    return [_fill(rng.choice(TEMPLATES), rng) for _ in range(count)]


def write(path: str, count: int = DEFAULT_SENTENCES, seed: int = SEED) -> None:
    """Writes the corpus in the GMB `ner_dataset.csv` format, Latin-1."""
    with open(path, "w", encoding="latin-1", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Sentence #", "Word", "POS", "Tag"])
        for number, (tokens, tags) in enumerate(sentences(count, seed), start=1):
            for position, (token, tag) in enumerate(zip(tokens, tags)):
                pos = "NNP" if tag != "O" else POS.get(token, "NN")
                writer.writerow([f"Sentence: {number}" if position == 0 else "", token, pos, tag])


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=DEFAULT_SENTENCES)
    p.add_argument("--out", default=os.path.join(here, "ner_dataset.csv"))
    args = p.parse_args()
    write(args.out, args.sentences)
    print(f"wrote {args.sentences} sentences to {args.out}")


if __name__ == "__main__":
    main()
