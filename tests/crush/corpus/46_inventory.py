# Inventory bookkeeping with dict comprehensions and sorting by computed keys.

stock = {"bolts": 120, "nuts": 75, "washers": 0, "screws": 300, "rivets": 12}
prices = {"bolts": 0.25, "nuts": 0.1, "washers": 0.05, "screws": 0.02, "rivets": 0.4}

value = {item: round(stock[item] * prices[item], 2) for item in stock}
print(value)
low = [item for item, qty in stock.items() if qty < 50]
print("reorder:", sorted(low))
restock = {item: max(100 - qty, 0) for item, qty in stock.items() if qty < 100}
print(restock)
for item in sorted(stock, key=lambda i: (-value[i], i)):
    print(f"{item:<8}{stock[item]:>5} x {prices[item]:.2f} = {value[item]:>6.2f}")
print("total value:", round(sum(value.values()), 2))
stock.update({"washers": 500, "pins": 40})
removed = stock.pop("rivets")
print(removed, sorted(stock.items()), len(stock), "pins" in stock, stock.get("rivets", "gone"))
print(list(stock.keys())[:3], sorted(stock.values())[-2:])
