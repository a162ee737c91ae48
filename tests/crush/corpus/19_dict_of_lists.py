# Grouping records into a dict of lists, then summarising each group.

orders = [("alice", "books", 12.5), ("bob", "games", 59.99), ("alice", "games", 19.99),
          ("carol", "books", 7.25), ("bob", "books", 30.0), ("alice", "music", 9.99),
          ("carol", "music", 15.0), ("dave", "games", 5.0)]

by_customer = {}
by_category = {}
for customer, category, amount in orders:
    by_customer.setdefault(customer, []).append(amount)
    if category not in by_category:
        by_category[category] = []
    by_category[category].append(customer)

for customer in sorted(by_customer):
    amounts = by_customer[customer]
    print(f"{customer:<6} n={len(amounts)} total={sum(amounts):7.2f} max={max(amounts):6.2f}")
for category, customers in sorted(by_category.items()):
    unique = sorted(list({c: 1 for c in customers}))
    print(category, customers, unique)
inverted = {}
for customer, amounts in by_customer.items():
    for a in amounts:
        inverted[a] = customer
print(sorted(inverted.items())[:4])
print({k: len(v) for k, v in by_customer.items()})
