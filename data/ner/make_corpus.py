"""Makes `ner_dataset.csv`, the embedded NER corpus, deterministically.

Sentences come from templates whose slots are filled with entities of all
eight GMB types (geo, org, per, gpe, tim, art, eve, nat), several of them
multi-token, and written in the GMB/Kaggle `ner_dataset.csv` format:
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
        "Pakistan", "Mumbai", "Jerusalem", "Latin America", "South Africa",
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

TEMPLATES = [
    "{per} met {per} in {geo} on {tim} .",
    "The {org} said {tim} that {gpe} troops had entered {geo} .",
    "{per} , the {gpe} leader , visited {geo} {tim} .",
    "Officials from the {org} attended the {eve} in {geo} .",
    "The {art} was shown in {geo} during the {eve} .",
    "{nat} struck {geo} {tim} , killing dozens of people .",
    "{gpe} officials warned that {nat} could spread across {geo} .",
    "Thousands of demonstrators marched through {geo} on {tim} to protest the war .",
    "{org} spokesman {per} told {org} the talks would resume {tim} .",
    "The {gpe} government has rejected a {org} report on {geo} .",
    "{per} won the {eve} {tim} in {geo} .",
    "Police in {geo} arrested {per} after the attack on {tim} .",
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
]

POS = {".": ".", ",": ",", "the": "DT", "The": "DT", "a": "DT", "A": "DT", "in": "IN",
       "of": "IN", "on": "IN", "to": "TO", "and": "CC", "said": "VBD", "that": "IN"}


def _fill(template: str, rng: random.Random):
    """Tokens and IOB tags of one sentence."""
    tokens, tags = [], []
    for word in template.split():
        if word.startswith("{") and word.endswith("}"):
            kind = word[1:-1]
            entity = rng.choice(ENTITIES[kind]).split()
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
