"""NER example features, limits and slices: the one place their names live."""

# Features of the examples the NER ExampleGen writes.
TOKENS_KEY = "tokens"          # the sentence's tokens, as written
TAGS_KEY = "tags"              # one IOB tag per token (the label)
POS_KEY = "pos"                # one part-of-speech tag per token, where the data has them
NUM_TOKENS_KEY = "num_tokens"  # sentence length
LENGTH_BUCKET_KEY = "length_bucket"  # sentence length class, for sliced metrics

# Training examples are cut to this many tokens (counted and logged by the
# ExampleGen); serving tags sentences of any length.
MAX_TOKENS = 128

# Upper bounds of the sentence-length buckets the Evaluator slices by.
LENGTH_BUCKETS = (10, 20, 30)

# Token shape classes the model sees besides the lower-cased token.
SHAPES = ("pad", "lower", "title", "upper", "digit", "punct", "mixed")

# Characters of each token the model reads (longer tokens are cut), and the
# number of hash buckets their ids fall in.
CHARS_PER_TOKEN = 12
CHAR_BUCKETS = 512

# Transformed features.
TOKEN_IDS = "token_ids"
SHAPE_IDS = "shape_ids"
SUFFIX_IDS = "suffix_ids"
CHAR_IDS = "char_ids"  # CHARS_PER_TOKEN ids per token, flattened
TAG_IDS = "tag_ids"
POS_IDS = "pos_ids"  # a second training target only: serving never needs POS tags
ENTITY_CODES = "entity_codes"  # vocabulary-independent IOB codes, for TFMA


def length_bucket(num_tokens: int) -> str:
    """The slice a sentence of `num_tokens` tokens falls in, e.g. '11-20'."""
    low = 1
    for high in LENGTH_BUCKETS:
        if num_tokens <= high:
            return f"{low:02d}-{high:02d}"
        low = high + 1
    return f"{low:02d}+"
