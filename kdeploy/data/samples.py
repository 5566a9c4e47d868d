"""Texts for checks that need some input when no data is at hand (the export parity check,
latency runs without --data): varied lengths, casing, punctuation, non-ASCII, empty."""

FALLBACK_TEXTS = [
    "a warm, funny and quietly moving film about two brothers and a failing bakery",
    "dull.", "It's not a bad film, but it is not a good one either!", "ok",
    "Überraschend gut — a surprisingly good film, with a cast that clearly enjoyed itself.",
    "the plot was thin, the acting wooden, and the ending made no sense at all " * 3,
    "I laughed, I cried, I checked my watch twice.", "",
]
