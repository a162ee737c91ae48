# Grouping anagrams by a canonical key; counting letters with a dict.

words = ["listen", "silent", "enlist", "google", "gooegl", "cat", "act", "tac", "dog", "god", "odg", "bird",
         "inlets", "banana"]
groups = {}
for w in words:
    key = "".join(sorted(w))
    groups.setdefault(key, []).append(w)
for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
    print(key, groups[key])


def letter_counts(word):
    counts = {}
    for c in word:
        counts[c] = counts.get(c, 0) + 1
    return counts


def is_anagram(a, b):
    return letter_counts(a.replace(" ", "").lower()) == letter_counts(b.replace(" ", "").lower())


print(is_anagram("Dormitory", "Dirty room"), is_anagram("hello", "world"), letter_counts("banana"))
