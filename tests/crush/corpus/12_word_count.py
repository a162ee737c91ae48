# Word frequencies in a text: counting with a dict, ties broken alphabetically.

text = """It was the best of times, it was the worst of times, it was the age of wisdom,
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity,
it was the season of Light, it was the season of Darkness, it was the spring of hope,
it was the winter of despair."""

counts = {}
for raw in text.split():
    word = raw.strip(".,;:!?").lower()
    if word:
        counts[word] = counts.get(word, 0) + 1

ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
print(len(counts), "distinct words,", sum(counts.values()), "in all")
for word, n in ranked[:8]:
    print(f"{word:>10} {n:3} {'#' * n}")
lengths = {}
for word in counts:
    lengths.setdefault(len(word), []).append(word)
for size in sorted(lengths):
    print(size, sorted(lengths[size]))
