# Accounts as dicts; transfers validated with exceptions; an audit log.

accounts = {"alice": 100, "bob": 50, "carol": 0}
audit = []


def transfer(src, dst, amount):
    if amount <= 0:
        raise ValueError(f"amount must be positive, got {amount}")
    if src not in accounts:
        raise KeyError(src)
    if dst not in accounts:
        raise KeyError(dst)
    if accounts[src] < amount:
        raise RuntimeError(f"insufficient funds: {src} has {accounts[src]}, needs {amount}")
    accounts[src] -= amount
    accounts[dst] += amount
    audit.append((src, dst, amount))


requests = [("alice", "bob", 30), ("bob", "carol", 100), ("carol", "dave", 5), ("bob", "alice", -5),
            ("bob", "carol", 80), ("alice", "carol", 70)]
for src, dst, amount in requests:
    try:
        transfer(src, dst, amount)
        print(f"ok    {src:>5} -> {dst:<5} {amount:4}")
    except KeyError as e:
        print(f"fail  unknown account {e}")
    except (ValueError, RuntimeError) as e:
        print(f"fail  {e}")
print(accounts, sum(accounts.values()))
print(audit)
