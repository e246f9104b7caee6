"""English for the counts that messages print."""


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 epoch', '2 epochs', '0 epochs'; `plural` for nouns that don't take an s."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
