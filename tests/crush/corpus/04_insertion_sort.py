# Insertion sort of records by several keys, and a stability check.

people = [
    {"name": "Ada", "age": 36, "city": "London"},
    {"name": "Grace", "age": 45, "city": "New York"},
    {"name": "Linus", "age": 28, "city": "Helsinki"},
    {"name": "Alan", "age": 41, "city": "London"},
    {"name": "Barbara", "age": 36, "city": "Boston"},
]


def insertion_sort(items, key):
    out = []
    for item in items:
        k = key(item)
        pos = len(out)
        while pos > 0 and key(out[pos - 1]) > k:
            pos -= 1
        out.insert(pos, item)
    return out


for field in ["name", "age", "city"]:
    ordered = insertion_sort(people, lambda p: p[field])
    print(field + ":", ", ".join([p["name"] for p in ordered]))

by_age_then_name = insertion_sort(people, lambda p: (p["age"], p["name"]))
for p in by_age_then_name:
    print(f"{p['name']:<8}{p['age']:>4}  {p['city']}")
