# Levenshtein distance with two rows, and spelling suggestions.


def distance(a, b):
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            insert = current[j - 1] + 1
            delete = previous[j] + 1
            replace = previous[j - 1] + (ca != cb)
            current.append(min(insert, delete, replace))
        previous = current
    return previous[-1]


words = ["apple", "apply", "ample", "maple", "applet", "people", "pupil", "appeal"]
for a, b in [("kitten", "sitting"), ("flaw", "lawn"), ("", "abc"), ("abc", "abc"), ("intention", "execution")]:
    print(a, b, distance(a, b))
for typo in ["appel", "pepole", "mapel"]:
    ranked = sorted(words, key=lambda w: (distance(typo, w), w))
    print(typo, "->", ranked[:3], [distance(typo, w) for w in ranked[:3]])
